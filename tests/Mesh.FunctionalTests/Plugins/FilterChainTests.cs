// Filter chains on a real sidecar: onError and timeoutMs, per-route order, the request view and item bag, reroutes, admin and metrics.
using System.Net;
using System.Text.Json.Nodes;
using Mesh.FunctionalTests.Infrastructure;
using static Mesh.FunctionalTests.Plugins.PluginReloadTests;

namespace Mesh.FunctionalTests.Plugins;

public sealed class FilterChainTests
{
    private static object Route(string name, string path, object[] filters, string service = "api") =>
        new { name, service, match = new { path = new { prefix = path } }, filters };

    private static object Config(string plugins, object[] routes, IReadOnlyDictionary<string, object> services, string level = "Warning") => new
    {
        service = new { name = "client", address = "127.0.0.1", port = 0 },
        admin = new { address = "127.0.0.1", port = 0 },
        listeners = new object[] { new { name = "outbound", address = "127.0.0.1", port = 0, direction = "outbound", protocol = "http" } },
        routes,
        services,
        plugins = new { directory = plugins },
        logging = new { level },
    };

    [Fact]
    public async Task Filters_ThrowingAndSlowUnderBothPolicies_RejectAnswersNamingTheFilterContinueSkipsIt()
    {
        using var plugins = new PluginDirectory();
        plugins.Write("Toolkit", TestPluginSources.Toolkit);
        await using var backend = await TestBackend.StartAsync("api");
        var logs = new LogCapture();
        await using var sidecar = await TestSidecar.StartAsync(
            Config(
                plugins.Path,
                [
                    Route("throw-reject", "/throw-reject", [new { name = "fault", config = new { mode = "throw" } }]),
                    Route("throw-continue", "/throw-continue", [new { name = "fault", config = new { mode = "throw" }, onError = "continue" }]),
                    Route("slow-reject", "/slow-reject", [new { name = "fault", config = new { mode = "slow", delayMs = 3000 }, timeoutMs = 100 }]),
                    Route("slow-continue", "/slow-continue", [new { name = "fault", config = new { mode = "slow", delayMs = 3000 }, timeoutMs = 100, onError = "continue" }]),
                    Route("plain", "/", []),
                ],
                new Dictionary<string, object> { ["api"] = TestConfig.Service([backend]) }),
            logs: logs);
        using var client = Clients.Http1();
        using var other = Clients.Http2();

        // A slow filter holds only its own request: others on the same sidecar go through meanwhile.
        var slowReject = client.SendAsync(Clients.Get(sidecar.Listener(), "/slow-reject"));
        using (var plain = await other.SendAsync(Clients.Get(sidecar.Listener(), "/", http2: true)))
        {
            Assert.Equal(HttpStatusCode.OK, plain.StatusCode);
        }

        using var throwReject = await client.SendAsync(Clients.Get(sidecar.Listener(), "/throw-reject"));
        using var throwContinue = await client.SendAsync(Clients.Get(sidecar.Listener(), "/throw-continue"));
        using var slowRejected = await slowReject;
        using var slowContinue = await client.SendAsync(Clients.Get(sidecar.Listener(), "/slow-continue"));

        Assert.Equal(HttpStatusCode.InternalServerError, throwReject.StatusCode);
        Assert.Equal("filter 'fault' failed\n", await throwReject.Content.ReadAsStringAsync());
        Assert.Equal(HttpStatusCode.OK, throwContinue.StatusCode);
        Assert.Equal(HttpStatusCode.GatewayTimeout, slowRejected.StatusCode);
        Assert.Equal("filter 'fault' timed out after 100 ms\n", await slowRejected.Content.ReadAsStringAsync());
        Assert.Equal(HttpStatusCode.OK, slowContinue.StatusCode);
        Assert.Equal(3, backend.Hits);

        Assert.Equal(1, await MetricAsync(sidecar, "mesh_filter_errors_total{route=\"throw-reject\",filter=\"fault\"}"));
        Assert.Equal(1, await MetricAsync(sidecar, "mesh_filter_errors_total{route=\"throw-continue\",filter=\"fault\"}"));
        Assert.Equal(1, await MetricAsync(sidecar, "mesh_filter_timeouts_total{route=\"slow-reject\",filter=\"fault\"}"));
        Assert.Equal(1, await MetricAsync(sidecar, "mesh_filter_timeouts_total{route=\"slow-continue\",filter=\"fault\"}"));
        Assert.Equal(2, logs.Entries.Count(e => e.EventId == 5001 && e.Level == LogLevel.Warning));
        Assert.Equal(2, logs.Entries.Count(e => e.EventId == 5002 && e.Level == LogLevel.Warning));
    }

    [Fact]
    public async Task Filters_SameFiltersInOtherOrders_EachRouteRunsItsOwnOrder()
    {
        using var plugins = new PluginDirectory();
        plugins.Write("Toolkit", TestPluginSources.Toolkit);
        await using var backend = await TestBackend.StartAsync("api");
        object Tag(string tag) => new { name = "tag", config = new { tag } };
        await using var sidecar = await TestSidecar.StartAsync(Config(
            plugins.Path,
            [Route("abc", "/abc", [Tag("a"), Tag("b"), Tag("c")]), Route("cba", "/cba", [Tag("c"), Tag("b"), Tag("a")])],
            new Dictionary<string, object> { ["api"] = TestConfig.Service([backend]) }));
        using var client = Clients.Http2();

        var abc = await TestBackend.ReadEchoAsync(await client.SendAsync(Clients.Get(sidecar.Listener(), "/abc", http2: true)));
        var cba = await TestBackend.ReadEchoAsync(await client.SendAsync(Clients.Get(sidecar.Listener(), "/cba", http2: true)));

        Assert.Equal("a,b,c", abc.Headers["x-order"]);
        Assert.Equal("c,b,a", cba.Headers["x-order"]);
    }

    [Fact]
    public async Task Filters_LaterFilter_SeesItemsAndTheRequestView()
    {
        using var plugins = new PluginDirectory();
        plugins.Write("Toolkit", TestPluginSources.Toolkit);
        await using var backend = await TestBackend.StartAsync("api");
        await using var sidecar = await TestSidecar.StartAsync(Config(
            plugins.Path,
            [Route("view", "/", [new { name = "remember" }, new { name = "recall" }])],
            new Dictionary<string, object> { ["api"] = TestConfig.Service([backend]) }));
        using var client = Clients.Http1();
        var request = Clients.Get(sidecar.Listener(), "/who?user=alice");
        request.Headers.Add("Cookie", "session=s1");
        request.Headers.Add("x-in-a", "1");
        request.Headers.Add("x-in-b", "2");

        var echo = await TestBackend.ReadEchoAsync(await client.SendAsync(request));

        Assert.Equal("alice|s1|http|outbound|outbound|view|api|(no peer identity)|port|x-in-a=1;x-in-b=2", echo.Headers["x-recalled"]);
    }

    [Fact]
    public async Task Filters_RerouteToAnotherServiceAndToASubset_ForwardedThere()
    {
        using var plugins = new PluginDirectory();
        plugins.Write("Toolkit", TestPluginSources.Toolkit);
        await using var stable = await TestBackend.StartAsync("stable");
        await using var canary = await TestBackend.StartAsync("canary");
        await using var other = await TestBackend.StartAsync("other");
        var api = new
        {
            endpoints = new object[]
            {
                new { address = "127.0.0.1", port = stable.Port, tags = new[] { "v1" } },
                new { address = "127.0.0.1", port = canary.Port, tags = new[] { "v2" } },
            },
        };
        await using var sidecar = await TestSidecar.StartAsync(Config(
            plugins.Path,
            [
                Route("to-other", "/other", [new { name = "reroute", config = new { service = "other" } }]),
                Route("to-v2", "/v2", [new { name = "reroute", config = new { service = "api", subset = "v2" } }]),
                Route("to-v9", "/v9", [new { name = "reroute", config = new { service = "api", subset = "v9" } }]),
            ],
            new Dictionary<string, object> { ["api"] = api, ["other"] = TestConfig.Service([other]) }));
        using var client = Clients.Http1();

        for (var i = 0; i < 4; i++)
        {
            Assert.Equal("canary", (await TestBackend.ReadEchoAsync(await client.SendAsync(Clients.Get(sidecar.Listener(), "/v2")))).Backend);
        }

        Assert.Equal("other", (await TestBackend.ReadEchoAsync(await client.SendAsync(Clients.Get(sidecar.Listener(), "/other")))).Backend);
        using var none = await client.SendAsync(Clients.Get(sidecar.Listener(), "/v9"));
        Assert.Equal(HttpStatusCode.ServiceUnavailable, none.StatusCode);
        Assert.Equal("service 'api' has no healthy endpoint in subset 'v9'\n", await none.Content.ReadAsStringAsync());
        Assert.Equal(0, stable.Hits);
    }

    [Fact]
    public async Task AdminPlugins_ShowsFileVersionsFactoriesStateAndCounters()
    {
        using var plugins = new PluginDirectory();
        var toolkit = plugins.Write("Toolkit", TestPluginSources.Toolkit, "4.5.6");
        var broken = plugins.Write("Stamp", TestPluginSources.Stamp("1.0.0", constructorThrows: true));
        await using var backend = await TestBackend.StartAsync("api");
        await using var sidecar = await TestSidecar.StartAsync(Config(
            plugins.Path,
            [Route("tagged", "/", [new { name = "tag", config = new { tag = "x" } }])],
            new Dictionary<string, object> { ["api"] = TestConfig.Service([backend]) }));
        using var client = Clients.Http1();
        for (var i = 0; i < 3; i++)
        {
            (await client.SendAsync(Clients.Get(sidecar.Listener(), "/"))).Dispose();
        }

        var admin = await AdminJsonAsync(sidecar, "/admin/plugins");

        Assert.Equal(plugins.Path, (string?)admin["sources"]![0]!["directory"]);
        var loaded = admin["plugins"]!.AsArray().Single(p => (string?)p!["id"] == toolkit)!;
        Assert.Equal(("loaded", "4.5.6", toolkit), ((string?)loaded["state"], (string?)loaded["assemblyVersion"], (string?)loaded["file"]));
        Assert.True(DateTimeOffset.TryParse((string?)loaded["loadedAt"], out _));
        var factories = loaded["factories"]!.AsArray();
        Assert.Equal(["fault", "recall", "remember", "reroute", "tag"], factories.Select(f => (string?)f!["name"]).Order(StringComparer.Ordinal));
        var tag = factories.Single(f => (string?)f!["name"] == "tag")!;
        Assert.Equal(("request", 3L, 0L, 0L), ((string?)tag["kind"], (long)tag["calls"]!, (long)tag["errors"]!, (long)tag["timeouts"]!));
        Assert.True((double)tag["meanLatencyMs"]! > 0);
        var refused = admin["plugins"]!.AsArray().Single(p => (string?)p!["id"] == broken)!;
        Assert.Equal("refused", (string?)refused["state"]);
        Assert.Contains("threw InvalidOperationException: stamp cannot start", (string?)refused["refused"]!["reason"]);

        Assert.Equal(3, await MetricAsync(sidecar, "mesh_filter_calls_total{route=\"tagged\",filter=\"tag\"}"));
        Assert.Equal(1, await MetricAsync(sidecar, "mesh_plugins_loaded"));
        Assert.Equal(1, await MetricAsync(sidecar, "mesh_plugin_loads_total{source=\"csharp\",result=\"refused\"}"));
        Assert.Equal(3, await MetricAsync(sidecar, "mesh_filter_duration_seconds_count{route=\"tagged\",filter=\"tag\"}"));
    }

    [Fact]
    public async Task AdminConfig_FilterConfig_ShownAsJsonWithKeysRedacted()
    {
        using var plugins = new PluginDirectory();
        plugins.Write("Toolkit", TestPluginSources.Toolkit);
        await using var backend = await TestBackend.StartAsync("api");
        await using var sidecar = await TestSidecar.StartAsync(Config(
            plugins.Path,
            [Route("tagged", "/", [new { name = "tag", config = new { tag = "x", keys = new[] { "k1" }, nested = new { limit = 3 } } }])],
            new Dictionary<string, object> { ["api"] = TestConfig.Service([backend]) }));

        var config = (await AdminJsonAsync(sidecar, "/admin/config"))["routes"]![0]!["filters"]![0]!["config"]!;

        Assert.Equal("x", (string?)config["tag"]);
        Assert.Equal(3, (int)config["nested"]!["limit"]!);
        Assert.Equal("<redacted>", (string?)config["keys"]);
    }
}
