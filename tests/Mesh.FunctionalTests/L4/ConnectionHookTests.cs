// The connection hook end to end: a registered IConnectionFilter sees SNI, ALPN and the client address, and a deny closes the connection before any upstream connect.
using System.Collections.Concurrent;
using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using Mesh.FunctionalTests.Infrastructure;
using Mesh.Plugins;
using static Mesh.FunctionalTests.L4.L4Harness;

namespace Mesh.FunctionalTests.L4;

public sealed class ConnectionHookTests
{
    private static readonly IPAddress DeniedAddress = IPAddress.Parse("127.0.0.7");

    private static object TlsListener(string protocol) => new
    {
        name = "tls",
        address = "127.0.0.1",
        port = 0,
        protocol,
        service = "a",
        tls = new { routes = new[] { new { name = "any", serverNames = new[] { "*" }, service = "a" } } },
    };

    [Fact]
    public async Task ConnectionHook_DeniedServerName_ClosedAndBackendNeverSeesIt()
    {
        await using var a = new TlsPeer("A", "a.example.com");
        var filter = new DenyFilter();
        await using var sidecar = await TestSidecar.StartAsync(
            Config(TlsListener("tls-passthrough"), Services(("a", new { endpoints = new[] { a.Endpoint } }))),
            services => services.AddSingleton<IConnectionFilter>(filter));
        var listener = sidecar.Sidecar.EndpointOf("tls");

        await Assert.ThrowsAnyAsync<IOException>(() => TlsPeer.HandshakeAsync(listener, "deny.example.com"));
        await WaitForMetricAsync(sidecar, "mesh_l4_connections_total{listener=\"tls\",result=\"denied\"}", 1);
        Assert.Equal(0, a.Accepted);

        // An allowed name on the same listener goes through.
        Assert.Equal(("CN=a.example.com", "A"), await TlsPeer.HandshakeAsync(listener, "a.example.com"));
        Assert.Equal(1, a.Accepted);
        Assert.Contains(filter.Seen, c => c.Connection.ServerName == "deny.example.com" && !c.Allowed);
    }

    [Fact]
    public async Task ConnectionHook_AllowedTlsConnection_FilterSeesSniAlpnAndClient()
    {
        await using var a = new TlsPeer("A", "a.example.com");
        var filter = new DenyFilter();
        await using var sidecar = await TestSidecar.StartAsync(
            Config(TlsListener("tls-passthrough"), Services(("a", new { endpoints = new[] { a.Endpoint } }))),
            services => services.AddSingleton<IConnectionFilter>(filter));

        Assert.Equal("A", (await TlsPeer.HandshakeAsync(sidecar.Sidecar.EndpointOf("tls"), "A.Example.com", [SslApplicationProtocol.Http2, SslApplicationProtocol.Http11])).Line);

        var seen = Assert.Single(filter.Seen);
        Assert.True(seen.Allowed);
        Assert.Equal("tls", seen.Connection.Listener);
        Assert.Equal("tls", seen.Connection.Protocol);
        Assert.Equal("a.example.com", seen.Connection.ServerName);
        Assert.Equal(["h2", "http/1.1"], seen.Connection.Alpn);
        Assert.Equal("127.0.0.1", seen.Connection.RemoteAddress);
        Assert.InRange(seen.Connection.RemotePort, 1, 65535);
    }

    [Fact]
    public async Task ConnectionHook_DeniedRemoteAddressOnTcpListener_ClosedAndBackendNeverSeesIt()
    {
        await using var backend = new TcpPeer("tcp");
        var filter = new DenyFilter();
        await using var sidecar = await TestSidecar.StartAsync(
            Config(TcpListener("svc"), Services(("svc", Service([backend.Endpoint])))),
            services => services.AddSingleton<IConnectionFilter>(filter));
        var listener = sidecar.Sidecar.EndpointOf("tcp");

        // Closed at once: the reset may already fail the connect, or end the first read.
        try
        {
            using var denied = await Net.ConnectAsync(listener, DeniedAddress);
            await Net.ClosedWithoutDataAsync(denied);
        }
        catch (SocketException ex) when (ex.SocketErrorCode == SocketError.ConnectionReset)
        {
        }

        await WaitForMetricAsync(sidecar, "mesh_l4_connections_total{listener=\"tcp\",result=\"denied\"}", 1);
        Assert.Equal(0, backend.Accepted);

        using var allowed = await Net.ConnectAsync(listener, IPAddress.Parse("127.0.0.8"));
        Assert.Equal("tcp:hi", await Net.AskAsync(allowed, "hi"));
        Assert.Equal(1, backend.Accepted);

        Assert.Equal(2, filter.Seen.Count);
        Assert.All(filter.Seen, c => Assert.Equal(("tcp", "tcp", null), (c.Connection.Listener, c.Connection.Protocol, c.Connection.ServerName)));
        Assert.Contains(filter.Seen, c => c.Connection.RemoteAddress == "127.0.0.7" && !c.Allowed);
        Assert.Contains(filter.Seen, c => c.Connection.RemoteAddress == "127.0.0.8" && c.Allowed);
    }

    [Fact]
    public async Task ConnectionHook_AutoListenerTls_FilterSeesSniAndDenyCloses()
    {
        await using var a = new TlsPeer("A", "a.example.com");
        await using var tcp = new TcpPeer("tcp");
        var filter = new DenyFilter();
        await using var sidecar = await TestSidecar.StartAsync(
            Config(
                new
                {
                    name = "auto",
                    address = "127.0.0.1",
                    port = 0,
                    protocol = "auto",
                    service = "tcp",
                    // Clients here speak first: a first byte late on a loaded machine must not make them "silent".
                    detectTimeoutMs = 10_000,
                    tls = new { routes = new[] { new { name = "any", serverNames = new[] { "*" }, service = "a" } } },
                },
                Services(("a", new { endpoints = new[] { a.Endpoint } }), ("tcp", Service([tcp.Endpoint])))),
            services => services.AddSingleton<IConnectionFilter>(filter));
        var listener = sidecar.Sidecar.EndpointOf("auto");

        await Assert.ThrowsAnyAsync<IOException>(() => TlsPeer.HandshakeAsync(listener, "deny.example.com"));
        await WaitForMetricAsync(sidecar, "mesh_l4_connections_total{listener=\"auto\",result=\"denied\"}", 1);
        Assert.Equal(0, a.Accepted);

        Assert.Equal("A", (await TlsPeer.HandshakeAsync(listener, "ok.example.com", [new SslApplicationProtocol("mqtt")])).Line);
        var allowed = Assert.Single(filter.Seen, c => c.Allowed);
        Assert.Equal(("auto", "tls", "ok.example.com"), (allowed.Connection.Listener, allowed.Connection.Protocol, allowed.Connection.ServerName));
        Assert.Equal(["mqtt"], allowed.Connection.Alpn);
        Assert.Equal(0, tcp.Accepted);
    }

    [Fact]
    public async Task ConnectionHook_DeniedRemoteAddressOnAutoHttp_ClosedAndBackendNeverSeesIt()
    {
        await using var web = await TestBackend.StartAsync("web");
        await using var tcp = new TcpPeer("tcp");
        var filter = new DenyFilter();
        await using var sidecar = await TestSidecar.StartAsync(
            Config(
                new { name = "auto", address = "127.0.0.1", port = 0, protocol = "auto", service = "tcp", detectTimeoutMs = 10_000 },
                Services(("tcp", Service([tcp.Endpoint])), ("web", TestConfig.Service([web]))),
                [TestConfig.Route("web", "web")]),
            services => services.AddSingleton<IConnectionFilter>(filter));

        using var denied = HttpClientFrom(DeniedAddress);
        await Assert.ThrowsAsync<HttpRequestException>(() => denied.GetAsync(new Uri(sidecar.Listener("auto"), "/")));
        Assert.Equal(0, web.Hits);

        using var allowed = HttpClientFrom(IPAddress.Parse("127.0.0.8"));
        using var response = await allowed.GetAsync(new Uri(sidecar.Listener("auto"), "/"));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(1, web.Hits);
        Assert.Contains(filter.Seen, c => c.Connection.RemoteAddress == "127.0.0.7" && c.Connection.Protocol == "http1" && !c.Allowed);
        Assert.Contains(filter.Seen, c => c.Connection.RemoteAddress == "127.0.0.8" && c.Connection.Protocol == "http1" && c.Allowed);
        Assert.Equal(0, tcp.Accepted);
    }

    // An HTTP/1.1 client whose connections come from <paramref name="from"/>.
    private static HttpClient HttpClientFrom(IPAddress from) => new(new SocketsHttpHandler
    {
        UseProxy = false,
        ConnectCallback = async (context, cancellationToken) =>
        {
            var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
            try
            {
                socket.Bind(new IPEndPoint(from, 0));
                await socket.ConnectAsync(context.DnsEndPoint, cancellationToken);
                return new NetworkStream(socket, ownsSocket: true);
            }
            catch
            {
                socket.Dispose();
                throw;
            }
        },
    })
    {
        Timeout = TestSidecar.Deadline,
    };

    /// <summary>Denies SNI "deny.example.com" and client address 127.0.0.7; records every decision.</summary>
    private sealed class DenyFilter : IConnectionFilter
    {
        public ConcurrentQueue<(AcceptedConnection Connection, bool Allowed)> Seen { get; } = new();

        public ValueTask<bool> AllowAsync(AcceptedConnection connection, CancellationToken cancellationToken)
        {
            var allowed = connection.ServerName != "deny.example.com" && connection.RemoteAddress != DeniedAddress.ToString();
            Seen.Enqueue((connection, allowed));
            return ValueTask.FromResult(allowed);
        }
    }
}
