// The four plugins-samples, built with dotnet build and dropped into a plugins directory, end to end.
using System.Net;
using Mesh.FunctionalTests.Infrastructure;
using Mesh.FunctionalTests.L4;

namespace Mesh.FunctionalTests.Plugins;

public sealed class SamplePluginTests
{
    private static object Config(string plugins, object listener, object[] routes, IReadOnlyDictionary<string, object> services) => new
    {
        service = new { name = "client", address = "127.0.0.1", port = 0 },
        admin = new { address = "127.0.0.1", port = 0 },
        listeners = new[] { listener },
        routes,
        services,
        plugins = new { directory = plugins },
        logging = new { level = "Warning" },
    };

    private static object Http(object[]? connectionFilters = null) =>
        new { name = "outbound", address = "127.0.0.1", port = 0, direction = "outbound", protocol = "http", connectionFilters = connectionFilters ?? [] };

    [Fact]
    public async Task ApiKeyAuth_CurlWithoutKey_401WithWwwAuthenticate_WithKey_200AndKeyNotForwarded()
    {
        using var plugins = new PluginDirectory();
        await SamplePlugins.CopyToAsync(plugins.Path, "ApiKeyAuth");
        await using var backend = await TestBackend.StartAsync("api");
        await using var sidecar = await TestSidecar.StartAsync(Config(
            plugins.Path,
            Http(),
            [new { name = "api", service = "api", filters = new object[] { new { name = "api-key", config = new { keys = new[] { "k-123", "k-456" } } } } }],
            new Dictionary<string, object> { ["api"] = TestConfig.Service([backend]) }));
        var url = new Uri(sidecar.Listener(), "/orders").ToString();

        var (_, without) = await Curl.RunAsync("-i", url);
        var (_, wrong) = await Curl.RunAsync("-i", "-H", "x-api-key: nope", url);
        var (_, with) = await Curl.RunAsync("-i", "--http2-prior-knowledge", "-H", "x-api-key: k-456", url);

        Assert.StartsWith("HTTP/1.1 401", without, StringComparison.Ordinal);
        Assert.Contains("WWW-Authenticate: ApiKey realm=\"mesh\", header=\"x-api-key\"", without, StringComparison.OrdinalIgnoreCase);
        Assert.Contains("missing or invalid API key", without, StringComparison.Ordinal);
        Assert.StartsWith("HTTP/1.1 401", wrong, StringComparison.Ordinal);
        Assert.StartsWith("HTTP/2 200", with, StringComparison.Ordinal);
        Assert.Contains("\"backend\":\"api\"", with, StringComparison.Ordinal);
        Assert.DoesNotContain("x-api-key", with, StringComparison.OrdinalIgnoreCase);
        Assert.Equal(1, backend.Hits);
    }

    [Fact]
    public async Task RateLimit_BucketEmptied_429WithRetryAfter_OtherCallersUnaffected()
    {
        using var plugins = new PluginDirectory();
        await SamplePlugins.CopyToAsync(plugins.Path, "RateLimit");
        await using var backend = await TestBackend.StartAsync("api");
        await using var sidecar = await TestSidecar.StartAsync(Config(
            plugins.Path,
            Http(),
            [new { name = "api", service = "api", filters = new object[] { new { name = "rate-limit", config = new { key = "header", header = "x-tenant", tokens = 3, periodMs = 60_000 } } } }],
            new Dictionary<string, object> { ["api"] = TestConfig.Service([backend]) }));
        using var client = Clients.Http1();
        HttpRequestMessage As(string tenant)
        {
            var request = Clients.Get(sidecar.Listener(), "/");
            request.Headers.Add("x-tenant", tenant);
            return request;
        }

        var statuses = new List<HttpStatusCode>();
        for (var i = 0; i < 4; i++)
        {
            using var response = await client.SendAsync(As("blue"));
            statuses.Add(response.StatusCode);
            if (response.StatusCode == HttpStatusCode.TooManyRequests)
            {
                Assert.Equal("60", response.Headers.GetValues("Retry-After").Single());
                Assert.Equal("rate limit exceeded\n", await response.Content.ReadAsStringAsync());
            }
        }

        using var green = await client.SendAsync(As("green"));

        Assert.Equal([HttpStatusCode.OK, HttpStatusCode.OK, HttpStatusCode.OK, HttpStatusCode.TooManyRequests], statuses);
        Assert.Equal(HttpStatusCode.OK, green.StatusCode);
        Assert.Equal(4, backend.Hits);
    }

    [Fact]
    public async Task HeaderRouter_CanaryHeader_GoesToTheV2SubsetOfPythonUpstreams()
    {
        using var plugins = new PluginDirectory();
        await SamplePlugins.CopyToAsync(plugins.Path, "HeaderRouter");
        await using var v1 = await PythonHttpServer.StartAsync(new Dictionary<string, string> { ["id.txt"] = "v1" });
        await using var v2 = await PythonHttpServer.StartAsync(new Dictionary<string, string> { ["id.txt"] = "v2" });
        await using var sidecar = await TestSidecar.StartAsync(Config(
            plugins.Path,
            Http(),
            [new { name = "web", service = "web", filters = new object[] { new { name = "header-router" } } }],
            new Dictionary<string, object> { ["web"] = new { endpoints = new[] { v1.Endpoint("v1"), v2.Endpoint("v2") } } }));
        var url = new Uri(sidecar.Listener(), "/id.txt").ToString();

        var canary = new List<string>();
        var plain = new List<string>();
        for (var i = 0; i < 6; i++)
        {
            canary.Add((await Curl.RunAsync("-H", "x-canary: 1", url)).Output);
            plain.Add((await Curl.RunAsync(url)).Output);
        }

        Assert.All(canary, body => Assert.Equal("v2", body));
        Assert.Contains("v1", plain);
        Assert.Contains("v2", plain);
    }

    [Fact]
    public async Task SourceAllowlist_OnTcpListener_OnlyAllowedAddressesReachTheBackend()
    {
        using var plugins = new PluginDirectory();
        await SamplePlugins.CopyToAsync(plugins.Path, "SourceAllowlist");
        await using var backend = new TcpPeer("tcp");
        var listener = new
        {
            name = "tcp",
            address = "127.0.0.1",
            port = 0,
            protocol = "tcp",
            service = "svc",
            connectionFilters = new object[] { new { name = "source-allowlist", config = new { allow = new[] { "127.0.0.8/32", "192.0.2.0/24" } } } },
        };
        await using var sidecar = await TestSidecar.StartAsync(Config(plugins.Path, listener, [], L4Harness.Services(("svc", L4Harness.Service([backend.Endpoint])))));
        var target = sidecar.Sidecar.EndpointOf("tcp");

        try
        {
            using var denied = await Net.ConnectAsync(target, IPAddress.Parse("127.0.0.7"));
            Assert.True(await Net.ClosedWithoutDataAsync(denied));
        }
        catch (System.Net.Sockets.SocketException ex) when (ex.SocketErrorCode == System.Net.Sockets.SocketError.ConnectionReset)
        {
            // Closed at once: the reset may already fail the connect.
        }

        await L4Harness.WaitForMetricAsync(sidecar, "mesh_l4_connections_total{listener=\"tcp\",result=\"denied\"}", 1);
        using var allowed = await Net.ConnectAsync(target, IPAddress.Parse("127.0.0.8"));
        Assert.Equal("tcp:hello", await Net.AskAsync(allowed, "hello"));
        Assert.Equal(1, backend.Accepted);
    }

    [Fact]
    public async Task SourceAllowlist_OnHttpListener_DeniedClientNeverReachesTheRoute()
    {
        using var plugins = new PluginDirectory();
        await SamplePlugins.CopyToAsync(plugins.Path, "SourceAllowlist");
        await using var backend = await TestBackend.StartAsync("api");
        await using var sidecar = await TestSidecar.StartAsync(Config(
            plugins.Path,
            Http([new { name = "source-allowlist", config = new { allow = new[] { "127.0.0.8/32" } } }]),
            [new { name = "api", service = "api" }],
            new Dictionary<string, object> { ["api"] = TestConfig.Service([backend]) }));
        var url = new Uri(sidecar.Listener(), "/").ToString();

        var (deniedExit, _) = await Curl.RunAsync("--interface", "127.0.0.7", url);
        var (allowedExit, body) = await Curl.RunAsync("--interface", "127.0.0.8", url);

        Assert.NotEqual(0, deniedExit);
        Assert.Equal(0, allowedExit);
        Assert.Contains("\"backend\":\"api\"", body, StringComparison.Ordinal);
        Assert.Equal(1, backend.Hits);
    }

    [Fact]
    public async Task ApiKeyAuth_BadKeysSetting_ConfigErrorWithJsonPathAtStart()
    {
        using var plugins = new PluginDirectory();
        await SamplePlugins.CopyToAsync(plugins.Path, "ApiKeyAuth");
        await using var backend = await TestBackend.StartAsync("api");

        var error = await Assert.ThrowsAsync<Mesh.Sidecar.Hosting.SidecarConfigException>(() => TestSidecar.StartAsync(Config(
            plugins.Path,
            Http(),
            [new { name = "api", service = "api", filters = new object[] { new { name = "api-key", config = new { keys = new object[] { "ok", 42 } } } } }],
            new Dictionary<string, object> { ["api"] = TestConfig.Service([backend]) })));

        Assert.Equal("routes[0].filters[0].config.keys[1]: expected a string, found a number", Assert.Single(error.Errors).ToString());
    }
}
