// auto listeners end to end: TLS by SNI, HTTP/1.1 and HTTP/2 to the HTTP routes, opaque and server-first TCP to the service.
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using Mesh.FunctionalTests.Infrastructure;
using static Mesh.FunctionalTests.L4.L4Harness;

namespace Mesh.FunctionalTests.L4;

public sealed class AutoDetectionTests
{
    private static string Detected(string result) => $"mesh_detection_results_total{{listener=\"auto\",result=\"{result}\"}}";

    // A client that speaks first has its first bytes detected well inside 100 ms (the default) on a
    // quiet machine, but not always on a loaded CI machine, where a late first byte would make it
    // "silent". Tests whose clients speak first wait this long; tests of silent clients, where the
    // timeout is what is tested, keep the default.
    private const int GenerousDetectMs = 10_000;
    private const int DefaultDetectMs = 100;

    // One auto listener: service "tcp" for opaque and silent clients, an SNI route to the TLS backend,
    // and an HTTP route without listeners (so it applies to this outbound auto listener) to the HTTP backend.
    private static object AutoConfig(TlsPeer tls, TestBackend http, object tcpEndpoint, int detectTimeoutMs) => Config(
        new
        {
            name = "auto",
            address = "127.0.0.1",
            port = 0,
            protocol = "auto",
            service = "tcp",
            detectTimeoutMs,
            tls = new { routes = new[] { new { name = "a", serverNames = new[] { "a.example.com" }, service = "a" } } },
        },
        Services(
            ("a", new { endpoints = new[] { tls.Endpoint } }),
            ("tcp", new { endpoints = new[] { tcpEndpoint } }),
            ("web", TestConfig.Service([http]))),
        [TestConfig.Route("web", "web")]);

    private sealed class Backends : IAsyncDisposable
    {
        private Backends(TlsPeer tls, TestBackend http, TcpPeer tcp)
        {
            Tls = tls;
            Http = http;
            Tcp = tcp;
        }

        public TlsPeer Tls { get; }

        public TestBackend Http { get; }

        public TcpPeer Tcp { get; }

        /// <summary>The three backends; the TCP one runs <paramref name="tcp"/> (a plain echo when null).</summary>
        public static async Task<Backends> StartAsync(Func<Socket, CancellationToken, Task>? tcp = null) =>
            new(new TlsPeer("A", "a.example.com"), await TestBackend.StartAsync("web"), new TcpPeer("tcp", tcp ?? TcpPeer.MirrorAsync));

        /// <summary>For clients that speak first: a generous detection timeout.</summary>
        public object Config => AutoConfig(Tls, Http, Tcp.Endpoint, GenerousDetectMs);

        public object ConfigWithDetectTimeout(int detectTimeoutMs) => AutoConfig(Tls, Http, Tcp.Endpoint, detectTimeoutMs);

        public async ValueTask DisposeAsync()
        {
            await Tls.DisposeAsync();
            await Http.DisposeAsync();
            await Tcp.DisposeAsync();
        }
    }

    [Fact]
    public async Task Auto_TlsClient_ReachesTlsBackendBySni()
    {
        await using var backends = await Backends.StartAsync();
        await using var sidecar = await TestSidecar.StartAsync(backends.Config);

        Assert.Equal(("CN=a.example.com", "A"), await TlsPeer.HandshakeAsync(sidecar.Sidecar.EndpointOf("auto"), "a.example.com"));
        Assert.Equal(["a.example.com"], backends.Tls.ServerNames);
        await WaitForMetricAsync(sidecar, Detected("tls"), 1);
        Assert.Equal(0, backends.Http.Hits);
        Assert.Equal(0, backends.Tcp.Accepted);
    }

    [Fact]
    public async Task Auto_Http1Client_ReachesHttpRoute()
    {
        await using var backends = await Backends.StartAsync();
        await using var sidecar = await TestSidecar.StartAsync(backends.Config);
        using var client = Clients.Http1();

        using var response = await client.SendAsync(Clients.Get(sidecar.Listener("auto"), "/hello?x=1"));

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(HttpVersion.Version11, response.Version);
        var echo = await TestBackend.ReadEchoAsync(response);
        Assert.Equal("web", echo.Backend);
        Assert.Equal("/hello", echo.Path);
        await WaitForMetricAsync(sidecar, Detected("http1"), 1);
        Assert.Equal(0, backends.Tcp.Accepted);
        Assert.Equal(0, backends.Tls.Accepted);
    }

    [Fact]
    public async Task Auto_Http2PriorKnowledgeClient_ReachesHttpRoute()
    {
        await using var backends = await Backends.StartAsync();
        await using var sidecar = await TestSidecar.StartAsync(backends.Config);
        using var client = Clients.Http2();

        for (var i = 0; i < 3; i++)
        {
            using var response = await client.SendAsync(Clients.Get(sidecar.Listener("auto"), $"/h2/{i}", http2: true));
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.Equal(HttpVersion.Version20, response.Version);
            Assert.Equal("web", response.Headers.GetValues("x-backend").Single());
        }

        // One HTTP/2 connection carried the three requests.
        await WaitForMetricAsync(sidecar, Detected("http2"), 1);
        Assert.Equal(0, backends.Tcp.Accepted);
    }

    [Fact]
    public async Task Auto_OpaqueClient_ReachesTcpService()
    {
        await using var backends = await Backends.StartAsync();
        await using var sidecar = await TestSidecar.StartAsync(backends.Config);
        using var client = await Net.ConnectAsync(sidecar.Sidecar.EndpointOf("auto"));

        await client.SendAsync("hello\n"u8.ToArray(), SocketFlags.None);
        Assert.Equal("hello\n", Encoding.ASCII.GetString(await Net.ReadExactlyAsync(client, 6)));

        // The connection keeps relaying after detection, and a half-close ends it cleanly.
        await client.SendAsync("more\n"u8.ToArray(), SocketFlags.None);
        Assert.Equal("more\n", Encoding.ASCII.GetString(await Net.ReadExactlyAsync(client, 5)));
        client.Shutdown(SocketShutdown.Send);
        Assert.Empty(await Net.ReadToEndAsync(client));
        await WaitForMetricAsync(sidecar, Detected("opaque"), 1);
        Assert.Equal(0, backends.Http.Hits);
    }

    [Fact]
    public async Task Auto_ServerFirstProtocol_BannerArrivesAfterDetectTimeout()
    {
        await using var backends = await Backends.StartAsync(async (connection, ct) =>
        {
            // A server-first protocol (SMTP, MySQL): the backend speaks first, then echoes.
            await connection.SendAsync("220 ready\n"u8.ToArray(), SocketFlags.None, ct);
            await TcpPeer.MirrorAsync(connection, ct);
        });
        await using var sidecar = await TestSidecar.StartAsync(backends.ConfigWithDetectTimeout(DefaultDetectMs));
        var clock = Stopwatch.StartNew();
        using var client = await Net.ConnectAsync(sidecar.Sidecar.EndpointOf("auto"));

        // The client sends nothing: after detectTimeoutMs (100 ms by default) the sidecar takes the
        // connection for server-first and connects it to the TCP service.
        Assert.Equal("220 ready\n", Encoding.ASCII.GetString(await Net.ReadExactlyAsync(client, 10)));
        Assert.InRange(clock.Elapsed, TimeSpan.FromMilliseconds(80), TimeSpan.FromSeconds(10));

        await client.SendAsync("QUIT\n"u8.ToArray(), SocketFlags.None);
        Assert.Equal("QUIT\n", Encoding.ASCII.GetString(await Net.ReadExactlyAsync(client, 5)));
        await WaitForMetricAsync(sidecar, Detected("silent"), 1);
    }

    [Fact]
    public async Task Auto_EveryKindOfClient_CountedByDetectionResult()
    {
        // The silent client waits the detection timeout out, so it is shorter than the generous one,
        // but still far above what a loaded machine takes to deliver a first byte. (At 100 ms, an
        // opaque client or an HTTP client whose first bytes came late was counted silent: this test
        // then saw silent 2 and opaque 0.)
        await using var backends = await Backends.StartAsync();
        await using var sidecar = await TestSidecar.StartAsync(backends.ConfigWithDetectTimeout(3_000));
        var listener = sidecar.Sidecar.EndpointOf("auto");

        Assert.Equal("A", (await TlsPeer.HandshakeAsync(listener, "a.example.com")).Line);
        using (var h1 = Clients.Http1())
        {
            using var response = await h1.SendAsync(Clients.Get(sidecar.Listener("auto"), "/"));
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        }

        using (var h2 = Clients.Http2())
        {
            using var response = await h2.SendAsync(Clients.Get(sidecar.Listener("auto"), "/", http2: true));
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        }

        using (var opaque = await Net.ConnectAsync(listener))
        {
            await opaque.SendAsync("hello\n"u8.ToArray(), SocketFlags.None);
            Assert.Equal("hello\n", Encoding.ASCII.GetString(await Net.ReadExactlyAsync(opaque, 6)));
        }

        using (var silent = await Net.ConnectAsync(listener))
        {
            // Silent until detection gave up, then an ordinary relay to the echo.
            await WaitForMetricAsync(sidecar, Detected("silent"), 1);
            await silent.SendAsync("late\n"u8.ToArray(), SocketFlags.None);
            Assert.Equal("late\n", Encoding.ASCII.GetString(await Net.ReadExactlyAsync(silent, 5)));
        }

        foreach (var result in new[] { "tls", "http1", "http2", "opaque", "silent" })
        {
            await WaitForMetricAsync(sidecar, Detected(result), 1);
        }
    }

    [Fact]
    public async Task Auto_ClientHelloOneByteAtATime_RoutedBySniAndRelayedUnchanged()
    {
        var hello = await File.ReadAllBytesAsync(ClientHello("openssl-sni-alpn.bin"));
        var received = new TaskCompletionSource<byte[]>(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var raw = new TcpPeer("raw", async (connection, ct) =>
        {
            var data = await Net.ReadExactlyAsync(connection, hello.Length + 5, ct);
            received.TrySetResult(data);
            await Net.SendAllAsync(connection, "reply"u8.ToArray(), ct);
        });
        await using var backends = await Backends.StartAsync();
        await using var sidecar = await TestSidecar.StartAsync(Config(
            new
            {
                name = "auto",
                address = "127.0.0.1",
                port = 0,
                protocol = "auto",
                service = "tcp",
                detectTimeoutMs = GenerousDetectMs,
                tls = new { routes = new[] { new { name = "api", serverNames = new[] { "api.example.com" }, service = "raw" } } },
            },
            Services(("raw", new { endpoints = new[] { raw.Endpoint } }), ("tcp", new { endpoints = new[] { backends.Tcp.Endpoint } }))));
        using var client = await Net.ConnectAsync(sidecar.Sidecar.EndpointOf("auto"));

        // The first byte decides TLS; the rest of the ClientHello trickles in, then application bytes follow.
        foreach (var b in hello)
        {
            await client.SendAsync(new[] { b }, SocketFlags.None);
        }

        await client.SendAsync("after"u8.ToArray(), SocketFlags.None);

        var got = await received.Task.WaitAsync(TestSidecar.Deadline);
        Assert.Equal([.. hello, .. "after"u8.ToArray()], got);
        Assert.Equal("reply", Encoding.ASCII.GetString(await Net.ReadExactlyAsync(client, 5)));
        Assert.Equal(0, backends.Tcp.Accepted);
        await WaitForMetricAsync(sidecar, Detected("tls"), 1);
    }

    [Fact]
    public async Task Auto_IdleTcpConnection_ClosedAfterIdleTimeout()
    {
        var accepted = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var backendEnded = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var backend = new TcpPeer("idle", async (connection, ct) =>
        {
            accepted.TrySetResult();
            try
            {
                await connection.ReceiveAsync(new byte[16], SocketFlags.None, ct);
            }
            finally
            {
                backendEnded.TrySetResult();
            }
        });
        await using var sidecar = await TestSidecar.StartAsync(Config(
            new { name = "auto", address = "127.0.0.1", port = 0, protocol = "auto", service = "tcp", detectTimeoutMs = DefaultDetectMs, tcp = new { idleTimeoutMs = 300 } },
            Services(("tcp", new { endpoints = new[] { backend.Endpoint } }))));
        var clock = Stopwatch.StartNew();
        using var client = await Net.ConnectAsync(sidecar.Sidecar.EndpointOf("auto"));

        // A silent client (detected as server-first) whose backend is silent too: the relay ends after 300 ms
        // without bytes (a reset or a FIN, either ends the client's read) and the backend's connection ends.
        await accepted.Task.WaitAsync(TestSidecar.Deadline);
        await Net.ClosedWithoutDataAsync(client);
        Assert.InRange(clock.Elapsed, TimeSpan.FromMilliseconds(250), TimeSpan.FromSeconds(10));
        await backendEnded.Task.WaitAsync(TestSidecar.Deadline);
    }

    private static object OpaqueOnly(TcpPeer backend) => Config(
        new { name = "auto", address = "127.0.0.1", port = 0, protocol = "auto", service = "tcp", detectTimeoutMs = GenerousDetectMs },
        Services(("tcp", new { endpoints = new[] { backend.Endpoint } })));

    [Fact]
    public async Task Auto_OpaqueClientHalfCloses_BackendSeesEofThenClientGetsReply()
    {
        await using var backend = new TcpPeer("half", async (connection, ct) =>
        {
            var buffer = new byte[1024];
            var total = 0;
            int read;
            while ((read = await connection.ReceiveAsync(buffer, SocketFlags.None, ct)) > 0)
            {
                total += read;
            }

            await Net.SendAllAsync(connection, Encoding.ASCII.GetBytes($"got {total}"), ct);
            connection.Shutdown(SocketShutdown.Send);
        });
        await using var sidecar = await TestSidecar.StartAsync(OpaqueOnly(backend));
        using var client = await Net.ConnectAsync(sidecar.Sidecar.EndpointOf("auto"));

        await client.SendAsync("hello\n"u8.ToArray(), SocketFlags.None);
        client.Shutdown(SocketShutdown.Send);

        Assert.Equal("got 6", Encoding.ASCII.GetString(await Net.ReadToEndAsync(client)));
    }

    [Fact]
    public async Task Auto_OpaqueBackendResets_ClientSeesConnectionReset()
    {
        var reset = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var backend = new TcpPeer("rst", async (connection, ct) =>
        {
            await connection.ReceiveAsync(new byte[16], SocketFlags.None, ct);
            connection.LingerState = new LingerOption(true, 0);
            connection.Close();
            reset.TrySetResult();
        });
        await using var sidecar = await TestSidecar.StartAsync(OpaqueOnly(backend));
        using var client = await Net.ConnectAsync(sidecar.Sidecar.EndpointOf("auto"));
        await client.SendAsync("hello\n"u8.ToArray(), SocketFlags.None);
        await reset.Task.WaitAsync(TestSidecar.Deadline);

        var error = await Assert.ThrowsAsync<SocketException>(() => Net.ReadToEndAsync(client));
        Assert.Equal(SocketError.ConnectionReset, error.SocketErrorCode);
    }

    [Fact]
    public async Task Auto_OpaqueClientResets_BackendSeesConnectionReset()
    {
        var accepted = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var outcome = new TaskCompletionSource<SocketError>(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var backend = new TcpPeer("rst", async (connection, ct) =>
        {
            accepted.TrySetResult();
            try
            {
                while (await connection.ReceiveAsync(new byte[16], SocketFlags.None, ct) > 0)
                {
                }

                outcome.TrySetResult(SocketError.Success);
            }
            catch (SocketException ex)
            {
                outcome.TrySetResult(ex.SocketErrorCode);
            }
        });
        await using var sidecar = await TestSidecar.StartAsync(OpaqueOnly(backend));
        using var client = await Net.ConnectAsync(sidecar.Sidecar.EndpointOf("auto"));
        await client.SendAsync("hello\n"u8.ToArray(), SocketFlags.None);
        await accepted.Task.WaitAsync(TestSidecar.Deadline);
        client.LingerState = new LingerOption(true, 0);
        client.Close();

        Assert.Equal(SocketError.ConnectionReset, await outcome.Task.WaitAsync(TestSidecar.Deadline));
    }

    [Fact]
    public async Task AdminClusters_OpenAutoTcpConnection_CountedInActiveConnections()
    {
        await using var backends = await Backends.StartAsync();
        await using var sidecar = await TestSidecar.StartAsync(backends.Config);
        using var client = await Net.ConnectAsync(sidecar.Sidecar.EndpointOf("auto"));
        await client.SendAsync("hello\n"u8.ToArray(), SocketFlags.None);
        Assert.Equal("hello\n", Encoding.ASCII.GetString(await Net.ReadExactlyAsync(client, 6)));

        var clusters = await ClustersAsync(sidecar);
        Assert.Equal(1, ListenerOf(clusters, "auto").GetProperty("activeConnections").GetInt32());
        Assert.Equal(1, InFlightOf(clusters, "tcp")[backends.Tcp.Port]);

        client.Dispose();
        await WaitForClustersAsync(
            sidecar,
            c => ListenerOf(c, "auto").GetProperty("activeConnections").GetInt32() == 0 && InFlightOf(c, "tcp")[backends.Tcp.Port] == 0,
            "the closed connection gone");
    }
}
