// req.peer on a real inbound mTLS listener: the caller's SPIFFE ID from its certificate, null for a plaintext caller.
using System.Text.Json;
using System.Text.Json.Nodes;
using Mesh.FunctionalTests.Infrastructure;
using Mesh.FunctionalTests.Security;

namespace Mesh.FunctionalTests.Plugins.JavaScript;

public sealed class JsPeerTests : IDisposable
{
    private readonly TestMeshCa _ca = new();

    public void Dispose() => _ca.Dispose();

    [Fact]
    public async Task Peer_MtlsCallerAndPlaintextCaller_SpiffeIdOrNull()
    {
        using var js = new JsFilterDirectory();
        js.Write("who.js", "function onRequest(req, ctx) { req.setHeader('x-peer', String(req.peer) + ' ' + req.scheme + ' ' + req.listener); }");
        await using var app = await TestBackend.StartAsync("api-app");
        var config = JsonSerializer.SerializeToNode(MeshConfig.Inbound("api", app.Port, _ca.Identity(), mtls: "permissive"))!;
        config["routes"] = new JsonArray(new JsonObject { ["name"] = "in", ["listeners"] = new JsonArray("inbound"), ["filters"] = new JsonArray(new JsonObject { ["name"] = "who.js" }) });
        config["jsFilters"] = new JsonObject { ["directory"] = js.Path };
        await using var api = await TestSidecar.StartAsync(config);
        using var fromWeb = TlsClients.Presenting(_ca.Leaf("web"), _ca.Ca);
        using var plain = Clients.Http1();

        var mtls = await TestBackend.ReadEchoAsync(await fromWeb.GetAsync(new Uri($"https://{api.Sidecar.EndpointOf("inbound")}/")));
        var plaintext = await TestBackend.ReadEchoAsync(await plain.GetAsync(api.Listener("inbound")));

        Assert.Equal($"{TestPki.Spiffe("web")} https inbound", mtls.Headers["x-peer"]);
        Assert.Equal("null http inbound", plaintext.Headers["x-peer"]);
    }
}
