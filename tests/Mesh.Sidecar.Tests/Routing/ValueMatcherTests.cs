using Mesh.Sidecar.Configuration;
using Mesh.Sidecar.Routing;
using Microsoft.Extensions.Primitives;

namespace Mesh.Sidecar.Tests.Routing;

public class ValueMatcherTests
{
    [Fact]
    public void Name_IsTakenFromOptions()
    {
        Assert.Equal("x-user", new ValueMatcher(new ValueMatchOptions { Name = "x-user", Exact = "1" }).Name);
    }

    [Fact]
    public void Matches_Exact_IsCaseSensitiveWholeValue()
    {
        var matcher = new ValueMatcher(new ValueMatchOptions { Name = "x-env", Exact = "canary" });

        Assert.True(matcher.Matches(new StringValues("canary")));
        Assert.False(matcher.Matches(new StringValues("Canary")));
        Assert.False(matcher.Matches(new StringValues("canary-2")));
        Assert.False(matcher.Matches(StringValues.Empty));
    }

    [Fact]
    public void Matches_ExactWithSeveralValues_OneMatchingValueIsEnough()
    {
        var matcher = new ValueMatcher(new ValueMatchOptions { Name = "x-env", Exact = "canary" });

        Assert.True(matcher.Matches(new StringValues(["stable", "canary"])));
        Assert.False(matcher.Matches(new StringValues(["stable", "beta"])));
    }

    [Fact]
    public void Matches_ExactEmptyString_MatchesOnlyEmptyValue()
    {
        var matcher = new ValueMatcher(new ValueMatchOptions { Name = "x-env", Exact = "" });

        Assert.True(matcher.Matches(new StringValues("")));
        Assert.False(matcher.Matches(new StringValues("a")));
        Assert.False(matcher.Matches(StringValues.Empty));
    }

    [Fact]
    public void Matches_Prefix_IsCaseSensitiveStart()
    {
        var matcher = new ValueMatcher(new ValueMatchOptions { Name = "x-version", Prefix = "v2" });

        Assert.True(matcher.Matches(new StringValues("v2")));
        Assert.True(matcher.Matches(new StringValues("v2.1")));
        Assert.True(matcher.Matches(new StringValues(["v1", "v2.3"])));
        Assert.False(matcher.Matches(new StringValues("V2")));
        Assert.False(matcher.Matches(new StringValues("xv2")));
        Assert.False(matcher.Matches(StringValues.Empty));
    }

    [Fact]
    public void Matches_Regex_IsNotAnchored()
    {
        var matcher = new ValueMatcher(new ValueMatchOptions { Name = "user-agent", Regex = "Mobile|Android" });

        Assert.True(matcher.Matches(new StringValues("Mozilla/5.0 (Linux; Android 14)")));
        Assert.True(matcher.Matches(new StringValues(["curl/8", "Mobile Safari"])));
        Assert.False(matcher.Matches(new StringValues("curl/8")));
        Assert.False(matcher.Matches(StringValues.Empty));
    }

    [Fact]
    public void Matches_AnchoredRegex_MatchesWholeValue()
    {
        var matcher = new ValueMatcher(new ValueMatchOptions { Name = "id", Regex = "^[0-9]+$" });

        Assert.True(matcher.Matches(new StringValues("12345")));
        Assert.False(matcher.Matches(new StringValues("123a")));
    }

    [Fact]
    public void Matches_PresentTrue_NeedsAnyValue()
    {
        var matcher = new ValueMatcher(new ValueMatchOptions { Name = "x-debug", Present = true });

        Assert.True(matcher.Matches(new StringValues("1")));
        Assert.True(matcher.Matches(new StringValues("")));
        Assert.True(matcher.Matches(new StringValues(["a", "b"])));
        Assert.False(matcher.Matches(StringValues.Empty));
    }

    [Fact]
    public void Matches_PresentFalse_NeedsNoValue()
    {
        var matcher = new ValueMatcher(new ValueMatchOptions { Name = "x-debug", Present = false });

        Assert.True(matcher.Matches(StringValues.Empty));
        Assert.False(matcher.Matches(new StringValues("1")));
        Assert.False(matcher.Matches(new StringValues("")));
    }

    [Fact]
    public void Matches_SingleValueOverload_NullMeansAbsent()
    {
        var exact = new ValueMatcher(new ValueMatchOptions { Name = "a", Exact = "1" });
        var prefix = new ValueMatcher(new ValueMatchOptions { Name = "a", Prefix = "1" });
        var regex = new ValueMatcher(new ValueMatchOptions { Name = "a", Regex = "1" });
        var present = new ValueMatcher(new ValueMatchOptions { Name = "a", Present = true });
        var absent = new ValueMatcher(new ValueMatchOptions { Name = "a", Present = false });

        Assert.True(exact.Matches("1"));
        Assert.False(exact.Matches((string?)null));
        Assert.True(prefix.Matches("12"));
        Assert.False(prefix.Matches((string?)null));
        Assert.True(regex.Matches("a1b"));
        Assert.False(regex.Matches((string?)null));
        Assert.True(present.Matches(""));
        Assert.False(present.Matches((string?)null));
        Assert.True(absent.Matches((string?)null));
        Assert.False(absent.Matches(""));
    }
}
