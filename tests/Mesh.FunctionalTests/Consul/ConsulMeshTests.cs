// Two sidecars through Consul: one registers its service, the other finds it and calls it; leaving is seen before the drain.
using System.Net;
using Mesh.FunctionalTests.Infrastructure;
using Mesh.Tests.Consul;

namespace Mesh.FunctionalTests.Consul;

public sealed class ConsulMeshTests : IAsyncLifetime
{
    private ConsulTestServer _consul = null!;

    public async Task InitializeAsync() => _consul = await ConsulTestServer.StartAsync();

    public async Task DisposeAsync() => await _consul.DisposeAsync();

    [Fact]
    public async Task CallerFindsRegisteredSidecar_CallsItsApp_AndSeesItLeaveBeforeItDrains()
    {
        await using var app = await TestBackend.StartAsync("web-app");
        var web = await TestSidecar.StartAsync(ConsulHarness.Registering(_consul, "web", app.Port, graceMs: 2000));
        var webInbound = web.Sidecar.EndpointOf("inbound");
        await using var caller = await TestSidecar.StartAsync(ConsulHarness.Outbound(_consul, service: "web"));
        using var client = Clients.Http1();

        // The HTTP check must pass before the caller's passing-only query includes the instance.
        await ConsulHarness.WaitForPortsAsync(caller, "web", webInbound.Port);
        using var response = await client.GetAsync(new Uri(caller.Listener(), "/hello"));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("web-app", response.Headers.GetValues("x-backend").Single());
        Assert.Equal("/hello", (await TestBackend.ReadEchoAsync(response)).Path);

        var stopping = web.DisposeAsync().AsTask();
        await ConsulHarness.WaitForPortsAsync(caller, "web");
        Assert.False(stopping.IsCompleted, "the caller lost the instance during the grace period, before the drain");
        await stopping.WaitAsync(TestSidecar.Deadline);
    }
}
