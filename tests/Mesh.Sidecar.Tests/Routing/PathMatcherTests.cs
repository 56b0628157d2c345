using Mesh.Sidecar.Configuration;
using Mesh.Sidecar.Routing;

namespace Mesh.Sidecar.Tests.Routing;

public class PathMatcherTests
{
    [Theory]
    [InlineData("/api", true)]
    [InlineData("/api/", true)]
    [InlineData("/api/users/42", true)]
    [InlineData("/apiary", true)]
    [InlineData("/API", false)]
    [InlineData("/ap", false)]
    [InlineData("/", false)]
    [InlineData("/v1/api", false)]
    public void Matches_Prefix_IsPlainCaseSensitiveStringPrefix(string path, bool expected)
    {
        var matcher = PathMatcher.Create(new PathMatchOptions { Prefix = "/api" });

        Assert.Equal(expected, matcher.Matches(path));
    }

    [Theory]
    [InlineData("/api/", true)]
    [InlineData("/api/x", true)]
    [InlineData("/api", false)]
    [InlineData("/apiary", false)]
    public void Matches_PrefixWithTrailingSlash_MatchesOnlyBelow(string path, bool expected)
    {
        var matcher = PathMatcher.Create(new PathMatchOptions { Prefix = "/api/" });

        Assert.Equal(expected, matcher.Matches(path));
    }

    [Theory]
    [InlineData("/health", true)]
    [InlineData("/health/", false)]
    [InlineData("/Health", false)]
    [InlineData("/healthz", false)]
    [InlineData("/health/live", false)]
    public void Matches_Exact_IsWholeCaseSensitivePath(string path, bool expected)
    {
        var matcher = PathMatcher.Create(new PathMatchOptions { Exact = "/health" });

        Assert.Equal(expected, matcher.Matches(path));
    }

    [Theory]
    [InlineData("/")]
    [InlineData("/anything")]
    [InlineData("/a/b/c")]
    public void Create_NoKindGiven_MatchesEveryPath(string path)
    {
        var matcher = PathMatcher.Create(new PathMatchOptions());

        Assert.True(matcher.Matches(path));
    }

    [Theory]
    [InlineData("/users/42", true)]
    [InlineData("/users/42/", true)]
    [InlineData("/users/abc-def", true)]
    [InlineData("/users/", false)]
    [InlineData("/users", false)]
    [InlineData("/users//", false)]
    [InlineData("/users/42/orders", false)]
    [InlineData("/users/42//", false)]
    [InlineData("/Users/42", false)]
    [InlineData("/usersx/42", false)]
    [InlineData("users/42", false)]
    [InlineData("", false)]
    public void Matches_PatternWithParameter_MatchesOneNonEmptySegment(string path, bool expected)
    {
        var matcher = PathMatcher.Create(new PathMatchOptions { Pattern = "/users/{id}" });

        Assert.Equal(expected, matcher.Matches(path));
    }

    [Theory]
    [InlineData("/users/42/orders/7", true)]
    [InlineData("/users/42/orders/7/", true)]
    [InlineData("/users/42/orders", false)]
    [InlineData("/users//orders/7", false)]
    [InlineData("/users/42/items/7", false)]
    public void Matches_PatternWithLiteralsBetweenParameters_ChecksEverySegment(string path, bool expected)
    {
        var matcher = PathMatcher.Create(new PathMatchOptions { Pattern = "/users/{id}/orders/{order}" });

        Assert.Equal(expected, matcher.Matches(path));
    }

    [Theory]
    [InlineData("/files", true)]
    [InlineData("/files/", true)]
    [InlineData("/files/a", true)]
    [InlineData("/files/a/b/c.txt", true)]
    [InlineData("/files//x", true)]
    [InlineData("/filesystem", false)]
    [InlineData("/file", false)]
    [InlineData("/other/files/a", false)]
    public void Matches_PatternWithCatchAll_TakesTheRestPossiblyNothing(string path, bool expected)
    {
        var matcher = PathMatcher.Create(new PathMatchOptions { Pattern = "/files/{**rest}" });

        Assert.Equal(expected, matcher.Matches(path));
    }

    [Theory]
    [InlineData("/users/42/orders", true)]
    [InlineData("/users/42/orders/2024/01", true)]
    [InlineData("/users//orders/1", false)]
    [InlineData("/users/42", false)]
    public void Matches_PatternWithParameterAndCatchAll_NeedsTheParameter(string path, bool expected)
    {
        var matcher = PathMatcher.Create(new PathMatchOptions { Pattern = "/users/{id}/orders/{**rest}" });

        Assert.Equal(expected, matcher.Matches(path));
    }

    [Theory]
    [InlineData("/", true)]
    [InlineData("/a", false)]
    public void Matches_RootPattern_MatchesOnlyRoot(string path, bool expected)
    {
        var matcher = PathMatcher.Create(new PathMatchOptions { Pattern = "/" });

        Assert.Equal(expected, matcher.Matches(path));
    }

    [Theory]
    [InlineData("/anything", true)]
    [InlineData("/", true)]
    [InlineData("/a/b", true)]
    public void Matches_OnlyCatchAll_MatchesEveryPath(string path, bool expected)
    {
        var matcher = PathMatcher.Create(new PathMatchOptions { Pattern = "/{**all}" });

        Assert.Equal(expected, matcher.Matches(path));
    }

    [Theory]
    [InlineData("/")]
    [InlineData("/users")]
    [InlineData("/users/{id}")]
    [InlineData("/users/{id}/orders/{**rest}")]
    [InlineData("/{**rest}")]
    [InlineData("/a//b")]
    public void Validate_GoodPattern_ReturnsNull(string pattern)
    {
        Assert.Null(PathMatcher.Validate(pattern));
    }

    [Theory]
    [InlineData("users/{id}")]
    [InlineData("")]
    [InlineData("{id}")]
    public void Validate_NoLeadingSlash_ReportsMustStartWithSlash(string pattern)
    {
        Assert.Equal("must start with '/'", PathMatcher.Validate(pattern));
    }

    [Theory]
    [InlineData("/a/x{id}", "x{id}")]
    [InlineData("/a/{id}x", "{id}x")]
    [InlineData("/a/{id", "{id")]
    [InlineData("/a/id}", "id}")]
    [InlineData("/a/{}", "{}")]
    [InlineData("/a/}{", "}{")]
    public void Validate_BadSegment_NamesTheSegment(string pattern, string segment)
    {
        Assert.Equal($"segment '{segment}' must be a literal, '{{name}}' or '{{**name}}'", PathMatcher.Validate(pattern));
    }

    [Theory]
    [InlineData("/a/{**rest}/b", "{**rest}")]
    [InlineData("/{**rest}/{id}", "{**rest}")]
    [InlineData("/{**rest}/", "{**rest}")]
    public void Validate_CatchAllNotLast_ReportsCatchAll(string pattern, string segment)
    {
        Assert.Equal($"catch-all '{segment}' must be the last segment", PathMatcher.Validate(pattern));
    }
}
