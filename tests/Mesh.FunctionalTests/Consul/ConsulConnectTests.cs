// Two sidecars on Consul Connect: leaves and roots from the agent's CA, mTLS between them, intentions deciding, rotation.
using System.Net;
using System.Text.Json.Nodes;
using Mesh.FunctionalTests.Infrastructure;
using Mesh.Tests.Consul;

namespace Mesh.FunctionalTests.Consul;

public sealed class ConsulConnectTests : IAsyncLifetime
{
    private ConsulTestServer _consul = null!;

    public async Task InitializeAsync()
    {
        _consul = await ConsulTestServer.StartAsync();
        // Deny unless an intention allows, as with ACLs on and default_policy deny.
        _consul.Ca.DefaultAllow = false;
        _consul.Ca.AddIntention("client", "web", allow: true);
    }

    public async Task DisposeAsync() => await _consul.DisposeAsync();

    [Fact]
    public async Task ConsulCaAndIntentions_BetweenTwoSidecars_AllowedCallerServedOthersDeniedRotationKeepsWorking()
    {
        await using var app = await TestBackend.StartAsync("web-app");
        await using var web = await TestSidecar.StartAsync(new
        {
            service = new { name = "web", address = "127.0.0.1", port = app.Port },
            admin = new { address = "127.0.0.1", port = 0 },
            identity = new { source = "consul", trustDomain = _consul.Ca.TrustDomain },
            listeners = new object[] { new { name = "inbound", address = "127.0.0.1", port = 0, direction = "inbound", protocol = "http", mtls = "strict" } },
            authorization = new { consulIntentions = true },
            consul = new { address = _consul.Address.ToString(), check = new { type = "http", intervalMs = 200 }, deregisterGraceMs = 0 },
            logging = new { level = "Warning" },
        });
        await using var client = await TestSidecar.StartAsync(Caller("client"));
        await using var other = await TestSidecar.StartAsync(Caller("other"));
        using var http = Clients.Http1();
        await ConsulHarness.WaitForPortsAsync(client, "web", web.Sidecar.EndpointOf("inbound").Port);
        await ConsulHarness.WaitForPortsAsync(other, "web", web.Sidecar.EndpointOf("inbound").Port);

        // Identities are Consul Connect leaves.
        var identity = JsonNode.Parse(await http.GetStringAsync(new Uri(web.Admin, "/admin/identity")))!;
        Assert.Equal("consul", (string?)identity["source"]);
        Assert.Equal(_consul.Ca.SpiffeId("web"), (string?)identity["spiffeId"]);

        // An allowed caller reaches the app over mTLS, which names it.
        using var allowed = await http.GetAsync(new Uri(client.Listener(), "/hello"));
        Assert.Equal(HttpStatusCode.OK, allowed.StatusCode);
        var echo = await TestBackend.ReadEchoAsync(allowed);
        Assert.Contains("URI=" + _consul.Ca.SpiffeId("client"), echo.Headers["x-forwarded-client-cert"], StringComparison.Ordinal);
        Assert.Contains(_consul.Requests, r => r.Path == "/v1/agent/connect/authorize");

        // A caller with a valid Connect leaf but no intention is denied by the agent's answer.
        using var denied = await http.GetAsync(new Uri(other.Listener(), "/hello"));
        Assert.Equal(HttpStatusCode.Forbidden, denied.StatusCode);
        Assert.Contains("denied by Consul intentions: Default behavior configured by ACLs", await denied.Content.ReadAsStringAsync(), StringComparison.Ordinal);

        // A CA rotation reaches both sidecars; new connections use the new leaves and still pass.
        var before = (string?)identity["serial"];
        _consul.Ca.Rotate();
        await ConsulHarness.EventuallyAsync(async () => (string?)JsonNode.Parse(await http.GetStringAsync(new Uri(web.Admin, "/admin/identity")))!["serial"] != before, "web has a new leaf");
        await ConsulHarness.EventuallyAsync(async () => (JsonNode.Parse(await http.GetStringAsync(new Uri(client.Admin, "/admin/identity")))!["trustBundle"]!.AsArray().Count) == 2, "client trusts both roots");
        await using var fresh = await TestSidecar.StartAsync(Caller("client"));
        await ConsulHarness.WaitForPortsAsync(fresh, "web", web.Sidecar.EndpointOf("inbound").Port);
        using var after = await http.GetAsync(new Uri(fresh.Listener(), "/again"));
        Assert.Equal(HttpStatusCode.OK, after.StatusCode);
    }

    [Fact]
    public async Task AgentDown_KnownCallerStillServedFromCacheAndNewCallerDenied()
    {
        await using var app = await TestBackend.StartAsync("web-app");
        await using var web = await TestSidecar.StartAsync(new
        {
            service = new { name = "web", address = "127.0.0.1", port = app.Port },
            admin = new { address = "127.0.0.1", port = 0 },
            identity = new { source = "consul", trustDomain = _consul.Ca.TrustDomain },
            listeners = new object[] { new { name = "inbound", address = "127.0.0.1", port = 0, direction = "inbound", protocol = "http", mtls = "strict" } },
            authorization = new { consulIntentions = true },
            consul = new { address = _consul.Address.ToString(), register = false },
            logging = new { level = "Warning" },
        });
        var inbound = web.Sidecar.EndpointOf("inbound");
        _consul.Ca.AddIntention("batch", "web", allow: true);
        await using var client = await TestSidecar.StartAsync(Caller("client", inbound));
        await using var batch = await TestSidecar.StartAsync(Caller("batch", inbound));
        using var http = Clients.Http1();
        using var first = await http.GetAsync(client.Listener());
        Assert.Equal(HttpStatusCode.OK, first.StatusCode);

        await _consul.StopAsync();
        using var cached = await http.GetAsync(client.Listener());
        using var unknown = await http.GetAsync(batch.Listener());

        Assert.Equal(HttpStatusCode.OK, cached.StatusCode);
        Assert.Equal(HttpStatusCode.Forbidden, unknown.StatusCode);
        Assert.Contains("intentions unavailable", await unknown.Content.ReadAsStringAsync(), StringComparison.Ordinal);
    }

    // A caller sidecar on Consul Connect; it finds web in Consul, or at a fixed address.
    private object Caller(string name, IPEndPoint? web = null) => new
    {
        service = new { name, address = "127.0.0.1", port = 0 },
        admin = new { address = "127.0.0.1", port = 0 },
        identity = new { source = "consul", trustDomain = _consul.Ca.TrustDomain },
        listeners = new object[] { new { name = "outbound", address = "127.0.0.1", port = 0, direction = "outbound", protocol = "http" } },
        routes = new object[] { TestConfig.Route("all", "web") },
        services = new Dictionary<string, object>
        {
            ["web"] = web is null
                ? (object)new { discovery = "consul", tls = new { mode = "mesh" } }
                : new { endpoints = new[] { new { address = web.Address.ToString(), port = web.Port } }, tls = new { mode = "mesh" } },
        },
        consul = new { address = _consul.Address.ToString(), register = false },
        logging = new { level = "Warning" },
    };
}
