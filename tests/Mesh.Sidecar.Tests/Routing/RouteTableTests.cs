using Mesh.Sidecar.Configuration;
using Mesh.Sidecar.Routing;
using Mesh.Sidecar.Upstream;

namespace Mesh.Sidecar.Tests.Routing;

public class RouteTableTests
{
    [Fact]
    public void Match_SeveralRoutesMatch_FirstInOrderWins()
    {
        var table = new RouteTable([
            Route("api-host", hosts: ["api.example.com"]),
            Route("users-path", path: new PathMatchOptions { Prefix = "/users/" }),
            Route("default"),
        ]);

        Assert.Equal("api-host", table.Match(Request(host: "api.example.com", path: "/users/42"))?.Name);
        Assert.Equal("users-path", table.Match(Request(host: "www.example.com", path: "/users/42"))?.Name);
        Assert.Equal("default", table.Match(Request(host: "www.example.com", path: "/about"))?.Name);
    }

    [Fact]
    public void Match_CatchAllFirst_ShadowsLaterRoutes()
    {
        var table = new RouteTable([
            Route("default"),
            Route("api-host", hosts: ["api.example.com"]),
        ]);

        Assert.Equal("default", table.Match(Request(host: "api.example.com"))?.Name);
    }

    [Fact]
    public void Match_NothingMatches_ReturnsNull()
    {
        var table = new RouteTable([Route("api-host", hosts: ["api.example.com"])]);

        Assert.Null(table.Match(Request(host: "www.example.com")));
    }

    [Fact]
    public void Match_EmptyTable_ReturnsNull()
    {
        Assert.Null(RouteTable.Empty.Match(Request()));
        Assert.Empty(RouteTable.Empty.Routes);
    }

    [Fact]
    public void Matches_HostWithPort_ComparesWithoutPortCaseInsensitively()
    {
        var route = Route("r", hosts: ["api.example.com", "*.internal"]);

        Assert.True(route.Matches(Request(host: "API.example.com:8080")));
        Assert.True(route.Matches(Request(host: "svc.internal:15001")));
        Assert.False(route.Matches(Request(host: "internal")));
    }

    [Theory]
    [InlineData("api.example.com:15001", "api")]
    [InlineData("API.example.com:80", "api")]
    [InlineData("api.example.com", "api")]
    [InlineData("[::1]:15001", "loopback-v6")]
    [InlineData("[::1]", "loopback-v6")]
    [InlineData("127.0.0.1:15001", "loopback-v4")]
    [InlineData("api.example.com.evil:15001", "default")]
    [InlineData("", "default")]
    public void Match_HostHeaderWithPort_MatchesTheRouteForTheHostAlone(string host, string expected)
    {
        // Clients send "Host: name:port" for any port but their scheme's default; routes name the host only.
        var table = new RouteTable([
            Route("api", hosts: ["api.example.com"]),
            Route("loopback-v6", hosts: ["::1"]),
            Route("loopback-v4", hosts: ["127.0.0.1"]),
            Route("default"),
        ]);

        Assert.Equal(expected, table.Match(Request(host: host))?.Name);
    }

    [Theory]
    [InlineData("api.example.com:15001", "api.example.com")]
    [InlineData("[::1]:15001", "::1")]
    [InlineData("[::1]", "::1")]
    [InlineData("[::1", "[::1")]
    [InlineData("host", "host")]
    [InlineData("host:", "host")]
    [InlineData(":80", "")]
    [InlineData("", "")]
    [InlineData(null, "")]
    public void HostWithoutPort_HostHeader_IsTheHostPart(string? value, string expected)
    {
        Assert.Equal(expected, CompiledRoute.HostWithoutPort(value).ToString());
    }

    [Fact]
    public void Matches_Methods_AreCaseInsensitive()
    {
        var route = Route("r", methods: ["GET", "put"]);

        Assert.True(route.Matches(Request(method: "get")));
        Assert.True(route.Matches(Request(method: "PUT")));
        Assert.False(route.Matches(Request(method: "POST")));
    }

    [Fact]
    public void Matches_EveryConditionMustHold_OneFailingConditionFallsThrough()
    {
        var strict = Route("strict", hosts: ["api.example.com"], path: new PathMatchOptions { Prefix = "/v2/" }, methods: ["POST"]);
        var table = new RouteTable([strict, Route("fallback")]);

        Assert.Equal("strict", table.Match(Request(host: "api.example.com", path: "/v2/items", method: "POST"))?.Name);
        Assert.Equal("fallback", table.Match(Request(host: "api.example.com", path: "/v2/items", method: "GET"))?.Name);
        Assert.Equal("fallback", table.Match(Request(host: "api.example.com", path: "/v1/items", method: "POST"))?.Name);
        Assert.Equal("fallback", table.Match(Request(host: "web.example.com", path: "/v2/items", method: "POST"))?.Name);
    }

    [Fact]
    public void Matches_HeaderCondition_UsesCaseInsensitiveHeaderName()
    {
        var route = Route("r", headers: [new ValueMatchOptions { Name = "X-Env", Exact = "canary" }]);
        var request = Request();
        request.Headers["x-env"] = "canary";

        Assert.True(route.Matches(request));
        Assert.False(route.Matches(Request()));
    }

    [Fact]
    public void Matches_HeaderAbsentCondition_FailsWhenHeaderSent()
    {
        var route = Route("r", headers: [new ValueMatchOptions { Name = "x-debug", Present = false }]);
        var request = Request();
        request.Headers["x-debug"] = "1";

        Assert.True(route.Matches(Request()));
        Assert.False(route.Matches(request));
    }

    [Fact]
    public void Matches_QueryCondition_ReadsQueryString()
    {
        var route = Route("r", query: [new ValueMatchOptions { Name = "version", Exact = "2" }]);

        Assert.True(route.Matches(Request(query: "?version=2")));
        Assert.True(route.Matches(Request(query: "?version=1&version=2")));
        Assert.False(route.Matches(Request(query: "?version=1")));
        Assert.False(route.Matches(Request()));
    }

    [Fact]
    public void Matches_CookieCondition_ReadsCookieHeader()
    {
        var route = Route("r", cookies: [new ValueMatchOptions { Name = "beta", Prefix = "on" }]);
        var request = Request();
        request.Headers.Cookie = "theme=dark; beta=on-2024";
        var other = Request();
        other.Headers.Cookie = "theme=dark";

        Assert.True(route.Matches(request));
        Assert.False(route.Matches(other));
    }

    [Fact]
    public void Matches_NoConditions_MatchesAnyRequest()
    {
        var route = Route("r");

        Assert.True(route.Matches(Request(host: "anything", path: "/x/y", method: "DELETE")));
    }

    private static CompiledRoute Route(
        string name,
        string[]? hosts = null,
        PathMatchOptions? path = null,
        string[]? methods = null,
        ValueMatchOptions[]? headers = null,
        ValueMatchOptions[]? query = null,
        ValueMatchOptions[]? cookies = null) => new()
        {
            Name = name,
            ClusterId = "cluster-" + name,
            ServiceName = "svc-" + name,
            Transformer = RouteTransformer.None,
            Hosts = [.. (hosts ?? []).Select(h => new HostMatcher(h))],
            Path = path is null ? null : PathMatcher.Create(path),
            Methods = methods ?? [],
            Headers = [.. (headers ?? []).Select(h => new ValueMatcher(h))],
            Query = [.. (query ?? []).Select(q => new ValueMatcher(q))],
            Cookies = [.. (cookies ?? []).Select(c => new ValueMatcher(c))],
        };

    private static HttpRequest Request(string host = "www.example.com", string path = "/", string method = "GET", string query = "")
    {
        var context = new DefaultHttpContext();
        context.Request.Host = new HostString(host);
        context.Request.Path = new PathString(path);
        context.Request.Method = method;
        context.Request.QueryString = new QueryString(query.Length == 0 ? null : query);
        return context.Request;
    }
}
