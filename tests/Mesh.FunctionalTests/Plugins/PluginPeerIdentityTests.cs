// Plugins see the mTLS caller: the request view's PeerIdentity and AcceptedConnection.PeerIdentity on an inbound mTLS listener.
using System.Net;
using System.Text.Json;
using System.Text.Json.Nodes;
using Mesh.FunctionalTests.Infrastructure;
using Mesh.FunctionalTests.Security;

namespace Mesh.FunctionalTests.Plugins;

public sealed class PluginPeerIdentityTests : IDisposable
{
    private const string Source = """
        namespace Who;
        public sealed class WhoFactory : IRequestFilterFactory
        {
            public string Name => "who";
            public IRequestFilter Create(FilterSettings settings) => new WhoFilter();
        }
        public sealed class WhoFilter : IRequestFilter
        {
            public ValueTask<FilterResult> OnRequestAsync(IRequestContext context, CancellationToken cancellationToken)
            {
                context.SetHeader("x-peer", (context.PeerIdentity ?? "none") + " " + context.Direction + " " + context.Scheme);
                return ValueTask.FromResult(FilterResult.Continue);
            }
        }
        public sealed class PeerAllowFactory : IConnectionFilterFactory
        {
            public string Name => "peer-allow";
            public IConnectionFilter Create(FilterSettings settings) => new PeerAllowFilter(settings.GetRequiredString("allow"));
        }
        public sealed class PeerAllowFilter(string allow) : IConnectionFilter
        {
            public ValueTask<bool> AllowAsync(AcceptedConnection connection, CancellationToken cancellationToken) =>
                ValueTask.FromResult(connection.PeerIdentity == allow);
        }
        """;

    private readonly TestMeshCa _ca = new();

    public void Dispose() => _ca.Dispose();

    [Fact]
    public async Task PeerIdentity_MtlsCaller_SeenByRequestAndConnectionFilters()
    {
        using var plugins = new PluginDirectory();
        plugins.Write("Who", Source);
        await using var app = await TestBackend.StartAsync("api-app");
        var config = JsonSerializer.SerializeToNode(MeshConfig.Inbound("api", app.Port, _ca.Identity(), mtls: "permissive"))!;
        var web = TestPki.Spiffe("web");
        config["listeners"]![0]!["connectionFilters"] = new JsonArray(new JsonObject { ["name"] = "peer-allow", ["config"] = new JsonObject { ["allow"] = web } });
        config["routes"] = new JsonArray(new JsonObject { ["name"] = "in", ["listeners"] = new JsonArray("inbound"), ["filters"] = new JsonArray(new JsonObject { ["name"] = "who" }) });
        config["plugins"] = new JsonObject { ["directory"] = plugins.Path };
        await using var api = await TestSidecar.StartAsync(config);
        var https = new Uri($"https://{api.Sidecar.EndpointOf("inbound")}/");

        using var fromWeb = TlsClients.Presenting(_ca.Leaf("web"), _ca.Ca);
        using var fromOther = TlsClients.Presenting(_ca.Leaf("other"), _ca.Ca);
        using var plain = Clients.Http1();
        var echo = await TestBackend.ReadEchoAsync(await fromWeb.GetAsync(https));

        Assert.Equal($"{web} inbound https", echo.Headers["x-peer"]);
        await Assert.ThrowsAnyAsync<HttpRequestException>(() => fromOther.GetAsync(https));
        await Assert.ThrowsAnyAsync<HttpRequestException>(() => plain.GetAsync(api.Listener("inbound")));
        Assert.Equal(1, app.Hits);
    }
}
