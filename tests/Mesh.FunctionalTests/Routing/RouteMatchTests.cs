// Every route match kind, transforms and the no-match 404, through the real sidecar to a real backend.
using System.Net;
using Mesh.FunctionalTests.Infrastructure;

namespace Mesh.FunctionalTests.Routing;

public sealed class RouteMatchFixture : IAsyncLifetime
{
    public TestBackend Backend { get; private set; } = null!;

    public TestSidecar Sidecar { get; private set; } = null!;

    public HttpClient Client { get; } = Clients.Http1();

    public async Task InitializeAsync()
    {
        Backend = await TestBackend.StartAsync("routes");
        static object Tagged(string name, object match) => TestConfig.Route(name, "svc", match, new { responseHeaders = new { set = new Dictionary<string, string> { ["x-route"] = name } } });
        var routes = new[]
        {
            Tagged("host-exact", new { hosts = new[] { "exact.test" } }),
            Tagged("host-wildcard", new { hosts = new[] { "*.wild.test" } }),
            Tagged("path-exact", new { hosts = new[] { "p.test" }, path = new { exact = "/exact" } }),
            Tagged("path-prefix", new { hosts = new[] { "p.test" }, path = new { prefix = "/prefix/" } }),
            Tagged("path-pattern", new { hosts = new[] { "p.test" }, path = new { pattern = "/users/{id}/orders" } }),
            Tagged("path-catch-all", new { hosts = new[] { "p.test" }, path = new { pattern = "/files/{**rest}" } }),
            Tagged("method", new { hosts = new[] { "m.test" }, methods = new[] { "DELETE", "PUT" } }),
            Tagged("header-exact", new { hosts = new[] { "h.test" }, headers = new[] { new { name = "x-env", exact = "canary" } } }),
            Tagged("header-prefix", new { hosts = new[] { "h.test" }, headers = new[] { new { name = "x-user", prefix = "admin-" } } }),
            Tagged("header-regex", new { hosts = new[] { "h.test" }, headers = new[] { new { name = "x-version", regex = "^v[0-9]+$" } } }),
            Tagged("header-present", new { hosts = new[] { "h.test" }, headers = new[] { new { name = "x-debug", present = true } } }),
            Tagged("query", new { hosts = new[] { "q.test" }, query = new[] { new { name = "beta", exact = "1" } } }),
            Tagged("cookie", new { hosts = new[] { "c.test" }, cookies = new[] { new { name = "session", prefix = "vip-" } } }),
            TestConfig.Route("transforms", "svc", new { hosts = new[] { "t.test" } }, new
            {
                stripPrefix = "/api",
                requestHeaders = new { set = new Dictionary<string, string> { ["x-set"] = "set-value" }, add = new Dictionary<string, string> { ["x-added"] = "added" }, remove = new[] { "x-secret" } },
                responseHeaders = new { set = new Dictionary<string, string> { ["x-route"] = "transforms" }, remove = new[] { "x-backend" } },
            }),
            TestConfig.Route("strip", "svc", new { hosts = new[] { "strip.test" } }, new { stripPrefix = "/api" }),
            TestConfig.Route("strip-slash", "svc", new { hosts = new[] { "strip-slash.test" } }, new { stripPrefix = "/api/" }),
        };
        Sidecar = await TestSidecar.StartAsync(TestConfig.Outbound(routes, new Dictionary<string, object> { ["svc"] = TestConfig.Service([Backend]) }));
    }

    public async Task DisposeAsync()
    {
        Client.Dispose();
        await Sidecar.DisposeAsync();
        await Backend.DisposeAsync();
    }
}

public sealed class RouteMatchTests(RouteMatchFixture fixture) : IClassFixture<RouteMatchFixture>
{
    private async Task<HttpResponseMessage> SendAsync(string host, string path, HttpMethod? method = null, params (string Name, string Value)[] headers)
    {
        var request = new HttpRequestMessage(method ?? HttpMethod.Get, new Uri(fixture.Sidecar.Listener(), path));
        request.Headers.Host = host;
        foreach (var (name, value) in headers)
        {
            request.Headers.TryAddWithoutValidation(name, value);
        }

        return await fixture.Client.SendAsync(request);
    }

    private static string? RouteOf(HttpResponseMessage response) =>
        response.Headers.TryGetValues("x-route", out var values) ? values.Single() : null;

    [Theory]
    [InlineData("exact.test", "host-exact")]
    [InlineData("EXACT.test", "host-exact")]
    [InlineData("a.wild.test", "host-wildcard")]
    [InlineData("deep.a.wild.test", "host-wildcard")]
    public async Task Host_Matches_RoutesByHost(string host, string expected)
    {
        using var response = await SendAsync(host, "/");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(expected, RouteOf(response));
    }

    [Theory]
    [InlineData("exact.test:15001", "host-exact")]
    [InlineData("EXACT.test:80", "host-exact")]
    [InlineData("a.wild.test:8443", "host-wildcard")]
    public async Task Host_WithPort_RoutesByTheHostAlone(string host, string expected)
    {
        // Clients put the port in Host whenever it is not their scheme's default.
        using var response = await SendAsync(host, "/");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(expected, RouteOf(response));
        Assert.Equal(host, (await TestBackend.ReadEchoAsync(response)).Host);
    }

    [Theory]
    [InlineData("wild.test")]
    [InlineData("other.test")]
    [InlineData("exact.test.evil")]
    [InlineData("other.test:15001")]
    public async Task Host_NoMatch_Returns404WithTheDocumentedBody(string host)
    {
        using var response = await SendAsync(host, "/some/path?q=1");
        Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
        Assert.Equal("text/plain; charset=utf-8", response.Content.Headers.ContentType?.ToString());
        Assert.Equal($"no route matched GET {host}/some/path on listener 'outbound'\n", await response.Content.ReadAsStringAsync());
    }

    [Theory]
    [InlineData("strip.test", "/api", "/")]
    [InlineData("strip.test", "/api/", "/")]
    [InlineData("strip.test", "/api/v1/items", "/v1/items")]
    [InlineData("strip.test", "/api/v1/items/", "/v1/items/")]
    [InlineData("strip.test", "/apix", "/apix")]
    [InlineData("strip.test", "/apix/v1", "/apix/v1")]
    [InlineData("strip.test", "/API/v1", "/API/v1")]
    [InlineData("strip.test", "/v1/api", "/v1/api")]
    [InlineData("strip.test", "/", "/")]
    [InlineData("strip-slash.test", "/api", "/")]
    [InlineData("strip-slash.test", "/api/v1", "/v1")]
    [InlineData("strip-slash.test", "/apix", "/apix")]
    public async Task StripPrefix_AtItsEdges_RemovesOnlyAWholeLeadingSegment(string host, string path, string upstream)
    {
        // The prefix goes only as whole segments (/api, /api/...), never out of /apix; nothing
        // left becomes "/", and a prefix written with a trailing slash means the same.
        using var response = await SendAsync(host, path + "?id=7");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var echo = await TestBackend.ReadEchoAsync(response);
        Assert.Equal(upstream, echo.Path);
        Assert.Equal("?id=7", echo.Query);
    }

    [Theory]
    [InlineData("/exact", "path-exact")]
    [InlineData("/prefix/a/b", "path-prefix")]
    [InlineData("/users/42/orders", "path-pattern")]
    [InlineData("/users/42/orders/", "path-pattern")]
    [InlineData("/files", "path-catch-all")]
    [InlineData("/files/a/b/c.txt", "path-catch-all")]
    public async Task Path_Matches_RoutesByPath(string path, string expected)
    {
        using var response = await SendAsync("p.test", path);
        Assert.Equal(expected, RouteOf(response));
    }

    [Theory]
    [InlineData("/exact/more")]
    [InlineData("/Exact")]
    [InlineData("/prefix")]
    [InlineData("/users/42")]
    [InlineData("/users//orders")]
    [InlineData("/users/42/orders/extra")]
    public async Task Path_NoMatch_Returns404(string path)
    {
        using var response = await SendAsync("p.test", path);
        Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
    }

    [Fact]
    public async Task Method_Listed_MatchesAndOthersDoNot()
    {
        using var delete = await SendAsync("m.test", "/", HttpMethod.Delete);
        using var put = await SendAsync("m.test", "/", HttpMethod.Put);
        using var get = await SendAsync("m.test", "/", HttpMethod.Get);
        Assert.Equal("method", RouteOf(delete));
        Assert.Equal("method", RouteOf(put));
        Assert.Equal(HttpStatusCode.NotFound, get.StatusCode);
    }

    [Theory]
    [InlineData("x-env", "canary", "header-exact")]
    [InlineData("x-user", "admin-alice", "header-prefix")]
    [InlineData("x-version", "v12", "header-regex")]
    [InlineData("x-debug", "", "header-present")]
    public async Task Header_Matches_RoutesByHeader(string name, string value, string expected)
    {
        using var response = await SendAsync("h.test", "/", null, (name, value));
        Assert.Equal(expected, RouteOf(response));
    }

    [Theory]
    [InlineData("x-env", "Canary")]
    [InlineData("x-user", "user-admin-alice")]
    [InlineData("x-version", "v1.2")]
    [InlineData("x-other", "1")]
    public async Task Header_NoMatch_Returns404(string name, string value)
    {
        using var response = await SendAsync("h.test", "/", null, (name, value));
        Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
    }

    [Fact]
    public async Task Query_Matches_OnlyWithParameter()
    {
        using var match = await SendAsync("q.test", "/search?x=2&beta=1");
        using var miss = await SendAsync("q.test", "/search?beta=2");
        Assert.Equal("query", RouteOf(match));
        Assert.Equal(HttpStatusCode.NotFound, miss.StatusCode);
    }

    [Fact]
    public async Task Cookie_Matches_OnlyWithCookiePrefix()
    {
        using var match = await SendAsync("c.test", "/", null, ("Cookie", "theme=dark; session=vip-123"));
        using var miss = await SendAsync("c.test", "/", null, ("Cookie", "session=basic-123"));
        Assert.Equal("cookie", RouteOf(match));
        Assert.Equal(HttpStatusCode.NotFound, miss.StatusCode);
    }

    [Fact]
    public async Task Transforms_Route_StripPrefixAndRewriteHeaders()
    {
        using var response = await SendAsync("t.test", "/api/v1/items?id=7", null, ("x-secret", "hunter2"), ("x-added", "original"));
        var echo = await TestBackend.ReadEchoAsync(response);
        Assert.Equal("/v1/items", echo.Path);
        Assert.Equal("?id=7", echo.Query);
        Assert.Equal("t.test", echo.Host);
        Assert.Equal("set-value", echo.Headers["x-set"]);
        Assert.Equal("original,added", echo.Headers["x-added"].Replace(" ", "", StringComparison.Ordinal));
        Assert.False(echo.Headers.ContainsKey("x-secret"));
        Assert.Equal("transforms", RouteOf(response));
        Assert.False(response.Headers.Contains("x-backend"));
    }
}
