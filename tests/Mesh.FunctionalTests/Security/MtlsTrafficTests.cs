// Traffic shapes through the mTLS hop: per-request spread over three peer sidecars, gRPC unary and streaming, permissive listeners.
using System.Net;
using Grpc.Core;
using Mesh.FunctionalTests.Grpc;
using Mesh.FunctionalTests.Infrastructure;
using Mesh.FunctionalTests.L7;

namespace Mesh.FunctionalTests.Security;

public sealed class MtlsTrafficTests : IDisposable
{
    private readonly TestMeshCa _ca = new();

    public void Dispose() => _ca.Dispose();

    [Fact]
    public async Task Http1App_OneKeepAliveConnection_RequestsSpreadPerRequestOverThreePeerSidecars()
    {
        var apps = new List<TestBackend>();
        var peers = new List<TestSidecar>();
        try
        {
            for (var i = 0; i < 3; i++)
            {
                apps.Add(await TestBackend.StartAsync($"api-{i}"));
                peers.Add(await TestSidecar.StartAsync(MeshConfig.Inbound("api", apps[i].Port, _ca.Identity())));
            }

            await using var web = await TestSidecar.StartAsync(MeshConfig.Outbound("web", _ca.Identity(), "api", new Dictionary<string, object>
            {
                ["api"] = MeshConfig.MeshService(peers.Select(p => p.Sidecar.EndpointOf("inbound"))),
            }));

            // One client connection (HTTP/1.1 keep-alive): a per-connection balancer would send all of it to one peer.
            using var client = new HttpClient(new SocketsHttpHandler { UseProxy = false, MaxConnectionsPerServer = 1 }) { Timeout = TestSidecar.Deadline };
            var seen = new Dictionary<string, int>(StringComparer.Ordinal);
            for (var i = 0; i < 30; i++)
            {
                using var response = await client.SendAsync(Clients.Get(web.Listener(), "/"));
                Assert.Equal(HttpStatusCode.OK, response.StatusCode);
                Assert.Equal(HttpVersion.Version11, response.Version);
                var backend = response.Headers.GetValues("x-backend").Single();
                seen[backend] = seen.GetValueOrDefault(backend) + 1;
            }

            Assert.Equal(3, seen.Count);
            Assert.All(seen.Values, count => Assert.Equal(10, count));
            foreach (var peer in peers)
            {
                // Each peer took the web sidecar's requests over one multiplexed HTTP/2 connection.
                Assert.Equal(1, await MetricsReader.ValueAsync(peer.Admin, "mesh_connections_accepted_total{listener=\"inbound\",protocol=\"http2\"}"));
            }
        }
        finally
        {
            foreach (var peer in peers)
            {
                await peer.DisposeAsync();
            }

            foreach (var app in apps)
            {
                await app.DisposeAsync();
            }
        }
    }

    [Fact]
    public async Task Grpc_UnaryAndStreaming_ThroughMtlsHop()
    {
        var instance = new EchoInstance("grpc-api");
        await using var app = await EchoGrpcBackend.StartAsync(instance.Name, instance);
        await using var api = await TestSidecar.StartAsync(MeshConfig.Inbound("api", app.Port, _ca.Identity(), appProtocol: "http2"));
        await using var web = await TestSidecar.StartAsync(MeshConfig.Outbound("web", _ca.Identity(), "api", new Dictionary<string, object>
        {
            ["api"] = MeshConfig.MeshService([api.Sidecar.EndpointOf("inbound")], protocol: "http2"),
        }));
        using var channel = EchoGrpcBackend.Channel(web.Listener());
        var client = new Echo.EchoClient(channel);
        using var cts = new CancellationTokenSource(TestSidecar.Deadline);

        using (var unary = client.UnaryAsync(new EchoRequest { Text = "hello" }, cancellationToken: cts.Token))
        {
            var reply = await unary.ResponseAsync;
            Assert.Equal("hello", reply.Text);
            Assert.Equal(instance.Name, reply.Instance);
            Assert.Equal(EchoService.TrailerValue, unary.GetTrailers().GetValue(EchoService.TrailerName));
        }

        using (var failing = client.UnaryAsync(new EchoRequest { Text = EchoService.ErrorText }, cancellationToken: cts.Token))
        {
            var error = await Assert.ThrowsAsync<RpcException>(() => failing.ResponseAsync);
            Assert.Equal(StatusCode.NotFound, error.StatusCode);
        }

        using (var stream = client.ServerStream(new EchoRequest { Text = "s", Count = 20 }, cancellationToken: cts.Token))
        {
            var texts = new List<string>();
            await foreach (var reply in stream.ResponseStream.ReadAllAsync(cts.Token))
            {
                texts.Add(reply.Text);
            }

            Assert.Equal(Enumerable.Range(0, 20).Select(i => $"s-{i}"), texts);
            Assert.Equal(EchoService.TrailerValue, stream.GetTrailers().GetValue(EchoService.TrailerName));
        }

        using (var duplex = client.Duplex(cancellationToken: cts.Token))
        {
            for (var i = 0; i < 10; i++)
            {
                await duplex.RequestStream.WriteAsync(new EchoRequest { Text = $"d{i}" }, cts.Token);
                Assert.True(await duplex.ResponseStream.MoveNext(cts.Token));
                Assert.Equal($"d{i}", duplex.ResponseStream.Current.Text);
            }

            await duplex.RequestStream.CompleteAsync();
            Assert.False(await duplex.ResponseStream.MoveNext(cts.Token));
            Assert.Equal(StatusCode.OK, duplex.GetStatus().StatusCode);
        }

        await MetricsReader.WaitForAsync(api.Admin, "mesh_tls_handshakes_total{listener=\"inbound\",mode=\"mtls\"}");
    }

    [Fact]
    public async Task PermissiveListener_TakesMtlsPeersAndPlaintextClients()
    {
        await using var app = await TestBackend.StartAsync("api-app");
        await using var api = await TestSidecar.StartAsync(MeshConfig.Inbound("api", app.Port, _ca.Identity(), mtls: "permissive"));
        await using var web = await TestSidecar.StartAsync(MeshConfig.Outbound("web", _ca.Identity(), "api", new Dictionary<string, object>
        {
            ["api"] = MeshConfig.MeshService([api.Sidecar.EndpointOf("inbound")]),
        }));
        using var client = Clients.Http1();

        using (var viaMesh = await client.SendAsync(Clients.Get(web.Listener(), "/")))
        {
            var echo = await TestBackend.ReadEchoAsync(viaMesh);
            Assert.Equal($"By={TestPki.Spiffe("api")};URI={TestPki.Spiffe("web")}", echo.Headers["x-forwarded-client-cert"]);
        }

        foreach (var http2 in new[] { false, true })
        {
            using var plaintext = http2 ? Clients.Http2() : Clients.Http1();
            using var request = Clients.Get(api.Listener("inbound"), "/", http2: http2);
            request.Headers.Add("x-forwarded-client-cert", $"By=x;URI={TestPki.Spiffe("admin")}");
            using var response = await plaintext.SendAsync(request);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            var echo = await TestBackend.ReadEchoAsync(response);
            Assert.False(echo.Headers.ContainsKey("x-forwarded-client-cert"));
        }

        Assert.Equal(3, app.Hits);
    }
}
