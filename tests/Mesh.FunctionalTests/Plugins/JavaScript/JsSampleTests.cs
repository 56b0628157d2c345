// The four plugins-samples/js filters, copied into a jsFilters directory as a user would, end to end.
using System.Net;
using Mesh.FunctionalTests.Infrastructure;
using Mesh.Plugins.JavaScript;
using static Mesh.FunctionalTests.Plugins.JavaScript.JsConfig;

namespace Mesh.FunctionalTests.Plugins.JavaScript;

public sealed class JsSampleTests
{
    private static HttpRequestMessage Get(TestSidecar sidecar, string path, params (string Name, string Value)[] headers)
    {
        var request = Clients.Get(sidecar.Listener(), path);
        foreach (var (name, value) in headers)
        {
            request.Headers.TryAddWithoutValidation(name, value);
        }

        return request;
    }

    [Fact]
    public async Task HeaderRouting_CanaryToV2_TenantToItsService_UnknownTenant403()
    {
        using var js = new JsFilterDirectory();
        js.CopySample("header-routing.js");
        await using var v1 = await TestBackend.StartAsync("v1");
        await using var v2 = await TestBackend.StartAsync("v2");
        await using var acme = await PythonHttpServer.StartAsync(new Dictionary<string, string> { ["who"] = "acme" });
        await using var sidecar = await TestSidecar.StartAsync(SidecarConfig(
            js.Path,
            [Route("api", "/", [new { name = "header-routing.js", config = new { tenants = new { acme = "acme-api" } } }])],
            Services(("api", new { endpoints = new[] { Tagged(v1, "v1"), Tagged(v2, "v2") } }), ("acme-api", new { endpoints = new[] { acme.Endpoint() } }))));
        using var client = Clients.Http1();

        // Without a canary header every endpoint of the service serves; with it, only the v2 subset.
        var plain = new List<string>();
        var canaries = new List<string>();
        for (var i = 0; i < 4; i++)
        {
            using var response = await client.SendAsync(Get(sidecar, "/"));
            plain.Add((await TestBackend.ReadEchoAsync(response)).Backend);
            using var canary = await client.SendAsync(Get(sidecar, "/", ("x-canary", "1")));
            canaries.Add((await TestBackend.ReadEchoAsync(canary)).Backend);
        }


        using var tenant = await client.SendAsync(Get(sidecar, "/who", ("x-tenant", "acme")));
        using var unknown = await client.SendAsync(Get(sidecar, "/", ("x-tenant", "__proto__")));
        var (_, curl) = await Curl.RunAsync("-s", "-H", "x-canary: 1", "--http2-prior-knowledge", new Uri(sidecar.Listener(), "/").ToString());

        Assert.Equal(["v1", "v2"], plain.Distinct().Order(StringComparer.Ordinal));
        Assert.All(canaries, backend => Assert.Equal("v2", backend));
        Assert.Contains("\"backend\":\"v2\"", curl, StringComparison.Ordinal);
        Assert.Equal("acme", await tenant.Content.ReadAsStringAsync());
        Assert.Equal(HttpStatusCode.Forbidden, unknown.StatusCode);
        Assert.Equal("unknown tenant '__proto__'\n", await unknown.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task Auth_BearerOrApiKey_PassesWithoutTheCredential_Otherwise401()
    {
        using var js = new JsFilterDirectory();
        js.CopySample("auth.js");
        await using var backend = await TestBackend.StartAsync("api");
        await using var sidecar = await TestSidecar.StartAsync(SidecarConfig(
            js.Path,
            [Route("api", "/", [new { name = "auth.js", config = new { tokens = new[] { "t-1" }, apiKeys = new[] { "k-1", "k-2" } } }])],
            Services(("api", TestConfig.Service([backend])))));
        var url = new Uri(sidecar.Listener(), "/orders").ToString();

        var (_, none) = await Curl.RunAsync("-si", url);
        var (_, wrongToken) = await Curl.RunAsync("-si", "-H", "authorization: Bearer t-2", url);
        var (_, bearer) = await Curl.RunAsync("-si", "-H", "authorization: Bearer t-1", url);
        var (_, apiKey) = await Curl.RunAsync("-si", "--http2-prior-knowledge", "-H", "x-api-key: k-2", url);

        Assert.StartsWith("HTTP/1.1 401", none, StringComparison.Ordinal);
        Assert.Contains("www-authenticate: Bearer realm=\"mesh\"", none, StringComparison.OrdinalIgnoreCase);
        Assert.Contains("missing or invalid credentials", none, StringComparison.Ordinal);
        Assert.StartsWith("HTTP/1.1 401", wrongToken, StringComparison.Ordinal);
        Assert.StartsWith("HTTP/1.1 200", bearer, StringComparison.Ordinal);
        Assert.Contains("\"x-auth\":\"bearer\"", bearer, StringComparison.Ordinal);
        Assert.DoesNotContain("t-1", bearer, StringComparison.Ordinal);
        Assert.StartsWith("HTTP/2 200", apiKey, StringComparison.Ordinal);
        Assert.Contains("\"x-auth\":\"api-key\"", apiKey, StringComparison.Ordinal);
        Assert.DoesNotContain("k-2", apiKey, StringComparison.Ordinal);
        Assert.Equal(2, backend.Hits);
    }

    [Fact]
    public async Task RateLimit_CallerOverItsBurst_429WithRetryAfter_OtherCallersUnaffected()
    {
        using var js = new JsFilterDirectory();
        js.CopySample("ratelimit.js");
        await using var backend = await TestBackend.StartAsync("api");
        await using var sidecar = await TestSidecar.StartAsync(SidecarConfig(
            js.Path,
            [Route("api", "/", [new { name = "ratelimit.js", config = new { rate = 0.5, burst = 3 } }])],
            Services(("api", TestConfig.Service([backend])))));
        using var http1 = Clients.Http1();
        using var http2 = Clients.Http2();

        var statuses = new List<HttpStatusCode>();
        for (var i = 0; i < 4; i++)
        {
            // The bucket is the sidecar's, whichever connection (and engine) the caller uses.
            using var response = await (i % 2 == 0 ? http1 : http2).SendAsync(Get(sidecar, "/", ("x-api-key", "blue")));
            statuses.Add(response.StatusCode);
            if (response.StatusCode == HttpStatusCode.TooManyRequests)
            {
                Assert.Equal("2", response.Headers.GetValues("Retry-After").Single());
                Assert.Equal("too many requests\n", await response.Content.ReadAsStringAsync());
            }
        }

        using var other = await http1.SendAsync(Get(sidecar, "/", ("x-api-key", "green")));

        Assert.Equal([HttpStatusCode.OK, HttpStatusCode.OK, HttpStatusCode.OK, HttpStatusCode.TooManyRequests], statuses);
        Assert.Equal(HttpStatusCode.OK, other.StatusCode);
    }

    [Fact]
    public async Task PercentageSplit_UsersByCookieHash_TenPercentToV2TheRestToV1()
    {
        using var js = new JsFilterDirectory();
        js.CopySample("percentage-split.js");
        await using var v1 = await TestBackend.StartAsync("v1");
        await using var v2 = await TestBackend.StartAsync("v2");
        await using var sidecar = await TestSidecar.StartAsync(SidecarConfig(
            js.Path,
            [Route("api", "/", [new { name = "percentage-split.js" }])],
            Services(("api", new { endpoints = new[] { Tagged(v1, "v1"), Tagged(v2, "v2") } }))));
        using var client = Clients.Http2();

        var toV2 = 0;
        for (var i = 0; i < 200; i++)
        {
            var user = "user-" + i.ToString(System.Globalization.CultureInfo.InvariantCulture);
            var request = Get(sidecar, "/", ("cookie", "theme=dark; user=" + user));
            request.Version = HttpVersion.Version20;
            request.VersionPolicy = HttpVersionPolicy.RequestVersionExact;
            using var response = await client.SendAsync(request);
            var expected = JsHash.Fnv1a(user) % 100 < 10 ? "v2" : "v1";
            Assert.Equal(expected, (await TestBackend.ReadEchoAsync(response)).Backend);
            toV2 += expected == "v2" ? 1 : 0;
        }

        using var anonymous = await client.SendAsync(Get(sidecar, "/"));

        Assert.InRange(toV2, 8, 40);
        Assert.Equal("v1", (await TestBackend.ReadEchoAsync(anonymous)).Backend);
    }
}
