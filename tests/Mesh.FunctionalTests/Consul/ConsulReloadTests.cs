// Hot reload with Consul: a service moves to Consul discovery, a subset changes, a bad agent certificate is rejected.
using Mesh.FunctionalTests.Infrastructure;
using Mesh.Tests.Consul;

namespace Mesh.FunctionalTests.Consul;

public sealed class ConsulReloadTests : IAsyncLifetime
{
    private ConsulTestServer _consul = null!;

    public async Task InitializeAsync() => _consul = await ConsulTestServer.StartAsync();

    public async Task DisposeAsync() => await _consul.DisposeAsync();

    [Fact]
    public async Task Reload_StaticToConsulThenAnotherTag_EndpointsFollow()
    {
        await using var fixedBackend = await TestBackend.StartAsync("fixed");
        await using var v1 = await TestBackend.StartAsync("v1");
        await using var v2 = await TestBackend.StartAsync("v2");
        _consul.AddInstance("api", v1.Port, tags: ["v1"]);
        _consul.AddInstance("api", v2.Port, tags: ["v2"]);
        await using var sidecar = await TestSidecar.StartAsync(TestConfig.Outbound([TestConfig.Route("all", "api")], new Dictionary<string, object> { ["api"] = TestConfig.Service([fixedBackend]) }));

        await sidecar.ReloadAsync(ConsulHarness.Outbound(_consul, serviceConsul: new { tag = "v1" }));
        await ConsulHarness.WaitForPortsAsync(sidecar, "api", v1.Port);
        await sidecar.ReloadAsync(ConsulHarness.Outbound(_consul, serviceConsul: new { tag = "v2" }));
        await ConsulHarness.WaitForPortsAsync(sidecar, "api", v2.Port);

        using var client = Clients.Http1();
        Assert.All(await ConsulHarness.BackendsAsync(client, sidecar.Listener(), 3), n => Assert.Equal("v2", n));
    }

    [Fact]
    public async Task Reload_AgentCaFileThatDoesNotLoad_RejectedAndLastGoodKeepsServing()
    {
        await using var v1 = await TestBackend.StartAsync("v1");
        _consul.AddInstance("api", v1.Port);
        await using var sidecar = await TestSidecar.StartAsync(ConsulHarness.Outbound(_consul));
        var version = sidecar.State.Current.Version;
        var notPem = Path.Combine(Path.GetDirectoryName(sidecar.ConfigPath)!, "ca.pem");
        await File.WriteAllTextAsync(notPem, "not a certificate\n");
        using var client = Clients.Http1();

        await sidecar.WriteConfigAsync(System.Text.Json.JsonSerializer.Serialize(new
        {
            service = new { name = "client", address = "127.0.0.1", port = 0 },
            admin = new { address = "127.0.0.1", port = sidecar.Sidecar.EndpointOf("@admin").Port },
            listeners = new object[] { new { name = "outbound", address = "127.0.0.1", port = sidecar.Sidecar.EndpointOf("outbound").Port, direction = "outbound", protocol = "http" } },
            routes = new object[] { TestConfig.Route("all", "api") },
            services = new Dictionary<string, object> { ["api"] = new { discovery = "consul" } },
            consul = new { address = "https://127.0.0.1:" + _consul.Port, caFile = notPem, register = false },
        }));
        await ConsulHarness.EventuallyAsync(
            async () => (await client.GetStringAsync(new Uri(sidecar.Admin, "/metrics"))).Contains("mesh_config_reloads_total{result=\"rejected\"} 1", StringComparison.Ordinal),
            "the reload is rejected");

        Assert.Equal(version, sidecar.State.Current.Version);
        Assert.Equal("http://127.0.0.1:" + _consul.Port, sidecar.State.Current.Options.Consul!.Address.TrimEnd('/'));
        Assert.All(await ConsulHarness.BackendsAsync(client, sidecar.Listener(), 2), n => Assert.Equal("v1", n));
    }
}
