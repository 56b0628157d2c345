using Mesh.Sidecar.Routing;

namespace Mesh.Sidecar.Tests.Routing;

public class HostMatcherTests
{
    [Theory]
    [InlineData("api.example.com", true)]
    [InlineData("API.Example.COM", true)]
    [InlineData("www.api.example.com", false)]
    [InlineData("api.example.co", false)]
    [InlineData("example.com", false)]
    [InlineData("", false)]
    public void Matches_ExactName_IsCaseInsensitive(string host, bool expected)
    {
        Assert.Equal(expected, new HostMatcher("api.example.com").Matches(host));
    }

    [Theory]
    [InlineData("api.example.com", true)]
    [InlineData("a.b.example.com", true)]
    [InlineData("API.EXAMPLE.COM", true)]
    [InlineData("example.com", false)]
    [InlineData(".example.com", false)]
    [InlineData("badexample.com", false)]
    [InlineData("example.com.evil", false)]
    public void Matches_SuffixWildcard_MatchesSubdomainsButNotBareSuffix(string host, bool expected)
    {
        Assert.Equal(expected, new HostMatcher("*.example.com").Matches(host));
    }

    [Theory]
    [InlineData("api.example.com")]
    [InlineData("localhost")]
    [InlineData("127.0.0.1")]
    [InlineData("")]
    public void Matches_Star_MatchesAnyHost(string host)
    {
        Assert.True(new HostMatcher("*").Matches(host));
    }
}
