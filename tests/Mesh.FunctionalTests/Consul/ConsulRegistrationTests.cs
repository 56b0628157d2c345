// A sidecar registers its service in Consul on start, keeps it registered, and leaves first on shutdown.
using System.Net;
using Mesh.FunctionalTests.Infrastructure;
using Mesh.Tests.Consul;
using Xunit.Abstractions;

namespace Mesh.FunctionalTests.Consul;

public sealed class ConsulRegistrationTests(ITestOutputHelper output) : IAsyncLifetime
{
    private ConsulTestServer _consul = null!;
    private TestBackend _app = null!;

    public async Task InitializeAsync()
    {
        _consul = await ConsulTestServer.StartAsync();
        _app = await TestBackend.StartAsync("web-app");
    }

    public async Task DisposeAsync()
    {
        await _app.DisposeAsync();
        await _consul.DisposeAsync();
    }

    [Fact]
    public async Task Start_RegistersInboundListenerWithStableIdTagsMetaAndHttpCheck()
    {
        await using var sidecar = await TestSidecar.StartAsync(ConsulHarness.Registering(_consul, "web", _app.Port));
        var inbound = sidecar.Sidecar.EndpointOf("inbound");
        var id = $"web-127.0.0.1-{inbound.Port}";

        await _consul.WaitUntilAsync(s => s.Check("service:" + id)?.Status == "passing", TestSidecar.Deadline, "the registration's HTTP check passes");

        var service = _consul.State.Service(id)!;
        Assert.Equal(("web", "127.0.0.1", inbound.Port), (service.Name, service.Address, service.Port));
        Assert.Equal(["v1", "mesh"], service.Tags);
        Assert.Equal("core", service.Meta["team"]);
        Assert.Equal("http", service.Meta["mesh-protocol"]);
        Assert.Equal(Mesh.Sidecar.Cli.Program.Version, service.Meta["mesh-version"]);
        var check = _consul.State.Check("service:" + id)!;
        Assert.Equal(("http", new Uri(sidecar.Admin, "/ready").ToString()), (check.Type, check.Http));
        Assert.Equal(TimeSpan.FromMinutes(1), check.DeregisterCriticalServiceAfter);
        Assert.Contains("200", check.Output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Shutdown_DeregistersFirstThenServesThroughTheGraceThenDrains()
    {
        var sidecar = await TestSidecar.StartAsync(ConsulHarness.Registering(_consul, "web", _app.Port, graceMs: 3000));
        var id = $"web-127.0.0.1-{sidecar.Sidecar.EndpointOf("inbound").Port}";
        await _consul.WaitUntilAsync(s => s.Service(id) is not null, TestSidecar.Deadline, "registered");
        using var client = Clients.Http1();
        var inbound = sidecar.Listener("inbound");

        var stopping = sidecar.DisposeAsync().AsTask();
        await _consul.WaitUntilAsync(s => s.Service(id) is null, TestSidecar.Deadline, "deregistered on shutdown");
        // Deregistered, and still serving peers that have not noticed yet: the drain comes after the grace.
        using var during = await client.GetAsync(inbound);
        Assert.Equal(HttpStatusCode.OK, during.StatusCode);
        Assert.False(stopping.IsCompleted);
        await stopping.WaitAsync(TestSidecar.Deadline);

        Assert.Contains(_consul.Requests, r => r.Method == "PUT" && r.Path == "/v1/agent/service/deregister/" + id && r.Status == 200);
        await Assert.ThrowsAnyAsync<HttpRequestException>(() => client.GetAsync(inbound));
    }

    [Fact]
    public async Task Restart_SameAddressAndPort_SameServiceIdNoDuplicate()
    {
        int port;
        string first;
        await using (var sidecar = await TestSidecar.StartAsync(ConsulHarness.Registering(_consul, "web", _app.Port)))
        {
            port = sidecar.Sidecar.EndpointOf("inbound").Port;
            await _consul.WaitUntilAsync(s => s.Services().Any(x => x.Name == "web"), TestSidecar.Deadline, "registered");
            first = _consul.State.Services().Single(x => x.Name == "web").Id;
            // A crash leaves the registration behind: put it back as if the shutdown never deregistered.
        }

        _consul.AddInstance("web", port, id: first);
        await using var restarted = await TestSidecar.StartAsync(ConsulHarness.Registering(_consul, "web", _app.Port, inboundPort: port));
        await _consul.WaitUntilAsync(s => s.Check("service:" + first)?.Type == "http", TestSidecar.Deadline, "registered again");

        Assert.Equal($"web-127.0.0.1-{port}", first);
        Assert.Equal([first], _consul.State.Services().Where(x => x.Name == "web").Select(x => x.Id));
    }

    [Fact]
    public async Task ServiceIdSet_UsedAsIs()
    {
        await using var sidecar = await TestSidecar.StartAsync(ConsulHarness.Registering(_consul, "web", _app.Port, extraConsul: new { address = _consul.Address.ToString(), serviceId = "web-primary", deregisterGraceMs = 0 }));

        await _consul.WaitUntilAsync(s => s.Service("web-primary") is not null, TestSidecar.Deadline, "registered as web-primary");
    }

    [Fact]
    public async Task LocalAppDown_ReadyFailsAndTheHttpCheckTurnsCritical()
    {
        await using var sidecar = await TestSidecar.StartAsync(ConsulHarness.Registering(_consul, "web", _app.Port));
        var id = $"web-127.0.0.1-{sidecar.Sidecar.EndpointOf("inbound").Port}";
        await _consul.WaitUntilAsync(s => s.Check("service:" + id)?.Status == "passing", TestSidecar.Deadline, "passing");

        await _app.DisposeAsync();
        await _consul.WaitUntilAsync(s => s.Check("service:" + id)?.Status == "critical", TestSidecar.Deadline, "critical once the app is down");

        using var client = Clients.Http1();
        using var ready = await client.GetAsync(new Uri(sidecar.Admin, "/ready"));
        Assert.Equal(HttpStatusCode.ServiceUnavailable, ready.StatusCode);
        Assert.Contains($"local app at 127.0.0.1:{_app.Port} is not accepting connections", await ready.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        _app = await TestBackend.StartAsync("web-app");
    }

    [Fact]
    public async Task TtlCheck_PassedWhileReady_FailedWhenTheAppIsDown()
    {
        await using var sidecar = await TestSidecar.StartAsync(ConsulHarness.Registering(_consul, "web", _app.Port, checkType: "ttl"));
        var id = $"web-127.0.0.1-{sidecar.Sidecar.EndpointOf("inbound").Port}";
        var checkId = "service:" + id;

        await _consul.WaitUntilAsync(s => s.Check(checkId) is { Status: "passing", Type: "ttl" }, TestSidecar.Deadline, "the TTL check passes");
        Assert.Equal(TimeSpan.FromMilliseconds(900), _consul.State.Check(checkId)!.Ttl);
        // Passed again and again, the TTL never runs out while everything is up.
        var passes = _consul.Requests.Count(r => r.Path == "/v1/agent/check/pass/" + checkId);
        await _consul.WaitForRequestAsync(_ => _consul.Requests.Count(r => r.Path == "/v1/agent/check/pass/" + checkId) >= passes + 3, TestSidecar.Deadline, "three more passes");
        Assert.Equal("passing", _consul.State.Check(checkId)!.Status);

        await _app.DisposeAsync();
        await _consul.WaitUntilAsync(s => s.Check(checkId)?.Status == "critical", TestSidecar.Deadline, "failed once the app is down");
        Assert.Contains("local app", _consul.State.Check(checkId)!.Output, StringComparison.Ordinal);
        _app = await TestBackend.StartAsync("web-app");
    }

    [Theory]
    [InlineData("http")]
    [InlineData("ttl")]
    public async Task AgentRestartedEmpty_ServiceRegisteredAgain(string checkType)
    {
        await using var sidecar = await TestSidecar.StartAsync(ConsulHarness.Registering(_consul, "web", _app.Port, checkType: checkType));
        var id = $"web-127.0.0.1-{sidecar.Sidecar.EndpointOf("inbound").Port}";
        await _consul.WaitUntilAsync(s => s.Check("service:" + id)?.Status == "passing", TestSidecar.Deadline, "registered");

        var restarted = DateTimeOffset.UtcNow;
        await _consul.RestartAsync(keepState: false);
        Assert.Null(_consul.State.Service(id));
        await _consul.WaitUntilAsync(s => s.Check("service:" + id)?.Status == "passing", TestSidecar.Deadline, "registered again and passing");

        output.WriteLine($"re-registered {(DateTimeOffset.UtcNow - restarted).TotalSeconds:0.0} s after the agent restarted (the design bound is 10 s)");
        Assert.Equal(checkType, _consul.State.Check("service:" + id)!.Type);
    }

    [Fact]
    public async Task AgentDownAtStart_SidecarStartsAndRegistersWhenTheAgentComesUp()
    {
        await _consul.StopAsync();

        await using var sidecar = await TestSidecar.StartAsync(ConsulHarness.Registering(_consul, "web", _app.Port));
        using var client = Clients.Http1();
        using var served = await client.GetAsync(sidecar.Listener("inbound"));
        Assert.Equal(HttpStatusCode.OK, served.StatusCode);

        await _consul.RestartAsync(keepState: false);
        await _consul.WaitUntilAsync(s => s.Services().Any(x => x.Name == "web"), TestSidecar.Deadline, "registered once the agent is up");
    }
}
