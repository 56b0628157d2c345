// Consul unreachable: traffic keeps flowing to the last known endpoints, admin and metrics show staleness, recovery is automatic.
using System.Net;
using System.Text.Json.Nodes;
using Mesh.FunctionalTests.Infrastructure;
using Mesh.Tests.Consul;

namespace Mesh.FunctionalTests.Consul;

public sealed class ConsulOutageTests : IAsyncLifetime
{
    private ConsulTestServer _consul = null!;

    public async Task InitializeAsync() => _consul = await ConsulTestServer.StartAsync();

    public async Task DisposeAsync() => await _consul.DisposeAsync();

    [Fact]
    public async Task AgentDownThenBack_TrafficFlowsThroughoutStalenessShownThenRecovered()
    {
        await using var b1 = await TestBackend.StartAsync("b1");
        await using var b2 = await TestBackend.StartAsync("b2");
        await using var b3 = await TestBackend.StartAsync("b3");
        _consul.AddInstance("api", b1.Port);
        _consul.AddInstance("api", b2.Port);
        await using var sidecar = await TestSidecar.StartAsync(ConsulHarness.Outbound(_consul));
        using var client = Clients.Http1();
        Assert.Equal(new[] { b1.Port, b2.Port }.Order(), ConsulHarness.Ports(sidecar, "api"));
        var synced = await DiscoveryAsync(client, sidecar);
        Assert.Equal(("consul", true, 0.0, "api"), ((string?)synced["source"], (bool)synced["synced"]!, (double)synced["stalenessSeconds"]!, (string?)synced["upstream"]));

        // Sequential requests the whole time, bounded in count; every one must succeed.
        using var stop = new CancellationTokenSource();
        var traffic = Task.Run(async () =>
        {
            var (ok, failed) = (0, 0);
            for (var i = 0; i < 100_000 && !stop.IsCancellationRequested; i++)
            {
                try
                {
                    using var response = await client.GetAsync(sidecar.Listener());
                    if (response.StatusCode == HttpStatusCode.OK)
                    {
                        ok++;
                    }
                    else
                    {
                        failed++;
                    }
                }
                catch (HttpRequestException)
                {
                    failed++;
                }
            }

            return (ok, failed);
        });

        await _consul.StopAsync();
        await ConsulHarness.EventuallyAsync(async () => (await DiscoveryAsync(client, sidecar))["synced"]!.GetValue<bool>() == false, "/admin/clusters shows api unsynced");
        await ConsulHarness.EventuallyAsync(async () => (double)(await DiscoveryAsync(client, sidecar))["stalenessSeconds"]! > 0.5, "staleness grows");
        await ConsulHarness.EventuallyAsync(async () => StalenessMetric(await client.GetStringAsync(new Uri(sidecar.Admin, "/metrics"))) > 0.5, "the metric shows staleness");
        var down = await DiscoveryAsync(client, sidecar);
        Assert.False(string.IsNullOrEmpty((string?)down["lastError"]));
        Assert.Equal(new[] { b1.Port, b2.Port }.Order(), ConsulHarness.Ports(sidecar, "api"));

        // Back, with a change made while it was away.
        _consul.AddInstance("api", b3.Port);
        await _consul.RestartAsync(keepState: true);
        await ConsulHarness.WaitForPortsAsync(sidecar, "api", b1.Port, b2.Port, b3.Port);
        await ConsulHarness.EventuallyAsync(async () => (await DiscoveryAsync(client, sidecar))["synced"]!.GetValue<bool>(), "synced again");
        Assert.Equal(0, StalenessMetric(await client.GetStringAsync(new Uri(sidecar.Admin, "/metrics"))));

        await stop.CancelAsync();
        var (ok, failed) = await traffic.WaitAsync(TestSidecar.Deadline);
        Assert.Equal(0, failed);
        Assert.True(ok > 0);
    }

    [Fact]
    public async Task AgentDownAtStart_SidecarStartsThenPicksUpEndpoints()
    {
        await using var b1 = await TestBackend.StartAsync("b1");
        _consul.AddInstance("api", b1.Port);
        await _consul.StopAsync();

        await using var sidecar = await TestSidecar.StartAsync(ConsulHarness.Outbound(_consul));
        using var client = Clients.Http1();
        using var none = await client.GetAsync(sidecar.Listener());
        Assert.Equal(HttpStatusCode.ServiceUnavailable, none.StatusCode);
        var discovery = await DiscoveryAsync(client, sidecar);
        Assert.False((bool)discovery["synced"]!);

        await _consul.RestartAsync(keepState: true);
        await ConsulHarness.WaitForPortsAsync(sidecar, "api", b1.Port);
        using var served = await client.GetAsync(sidecar.Listener());
        Assert.Equal(HttpStatusCode.OK, served.StatusCode);
    }

    [Fact]
    public async Task Metrics_StaticAndConsulServices_SourceAndStalenessPerService()
    {
        await using var b1 = await TestBackend.StartAsync("b1");
        _consul.AddInstance("api", b1.Port);
        var services = new Dictionary<string, object>
        {
            ["api"] = new { discovery = "consul" },
            ["files"] = TestConfig.Service([b1]),
        };
        await using var sidecar = await TestSidecar.StartAsync(ConsulHarness.Outbound(_consul, routes: [TestConfig.Route("all", "api")], services: services));
        using var client = Clients.Http1();

        var metrics = await client.GetStringAsync(new Uri(sidecar.Admin, "/metrics"));

        Assert.Contains("# TYPE mesh_discovery_staleness_seconds gauge", metrics, StringComparison.Ordinal);
        Assert.Contains("mesh_discovery_staleness_seconds{service=\"api\",source=\"consul\"} 0", metrics, StringComparison.Ordinal);
        Assert.Contains("mesh_discovery_staleness_seconds{service=\"files\",source=\"static\"} 0", metrics, StringComparison.Ordinal);
        Assert.Contains("mesh_discovery_endpoints{service=\"api\",source=\"consul\"} 1", metrics, StringComparison.Ordinal);
        var clusters = JsonNode.Parse(await client.GetStringAsync(new Uri(sidecar.Admin, "/admin/clusters")))!["clusters"]!.AsArray();
        Assert.Equal("static", (string?)clusters.Single(c => (string?)c!["name"] == "files")!["discovery"]!["source"]);
    }

    private static async Task<JsonNode> DiscoveryAsync(HttpClient client, TestSidecar sidecar)
    {
        var clusters = JsonNode.Parse(await client.GetStringAsync(new Uri(sidecar.Admin, "/admin/clusters")))!["clusters"]!.AsArray();
        return clusters.Single(c => (string?)c!["name"] == "api")!["discovery"]!;
    }

    private static double StalenessMetric(string metrics)
    {
        const string prefix = "mesh_discovery_staleness_seconds{service=\"api\",source=\"consul\"} ";
        var line = metrics.Split('\n').Single(l => l.StartsWith(prefix, StringComparison.Ordinal));
        return double.Parse(line[prefix.Length..], System.Globalization.CultureInfo.InvariantCulture);
    }
}
