// TLS passthrough by SNI, auto protocol detection, UDP flows and the connection hook, end to end.
using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Text;
using Mesh.FunctionalTests.Infrastructure;
using Mesh.Plugins;

namespace Mesh.FunctionalTests.L4;

public sealed class TlsAutoUdpL4Tests
{
    private static string FixturesDirectory()
    {
        var directory = new DirectoryInfo(AppContext.BaseDirectory);
        while (directory is not null && !File.Exists(Path.Combine(directory.FullName, "Mesh.sln")))
        {
            directory = directory.Parent;
        }

        return Path.Combine(directory!.Parent!.FullName, "shared", "tls-clienthellos");
    }

    private static object TlsListener(string noSni = "default", string protocol = "tls-passthrough") => new
    {
        name = "tls",
        address = "127.0.0.1",
        port = 0,
        protocol,
        service = "a",
        tls = new
        {
            routes = new object[]
            {
                new { name = "exact", serverNames = new[] { "a.example.com" }, service = "a" },
                new { name = "wild", serverNames = new[] { "*.b.example.com" }, service = "b" },
                new { name = "mqtt", serverNames = new[] { "*" }, alpn = new[] { "mqtt" }, service = "b" },
            },
            noSni,
            peekTimeoutMs = 300,
        },
    };

    [Fact]
    public async Task Tls_SniRoutes_ClientSeesEachBackendsOwnCertificate()
    {
        await using var a = new TlsPeer("A", "a.example.com");
        await using var b = new TlsPeer("B", "x.b.example.com");
        await using var sidecar = await TestSidecar.StartAsync(TcpL4Tests.Config(TlsListener(), new Dictionary<string, object>
        {
            ["a"] = new { endpoints = new[] { a.Endpoint } },
            ["b"] = new { endpoints = new[] { b.Endpoint } },
        }));
        var listener = sidecar.Sidecar.EndpointOf("tls");

        Assert.Equal(("CN=a.example.com", "A"), await TlsPeer.HandshakeAsync(listener, "a.example.com"));
        Assert.Equal(("CN=x.b.example.com", "B"), await TlsPeer.HandshakeAsync(listener, "x.b.example.com"));
        Assert.Equal(("CN=a.example.com", "A"), await TlsPeer.HandshakeAsync(listener, "other.example.org"));
        Assert.Equal(("CN=x.b.example.com", "B"), await TlsPeer.HandshakeAsync(listener, "broker.example.org", [new SslApplicationProtocol("mqtt")]));
    }

    [Theory]
    [InlineData("default", true)]
    [InlineData("refuse", false)]
    public async Task Tls_NoSni_DefaultOrRefusedPerConfig(string noSni, bool served)
    {
        await using var a = new TlsPeer("A", "a.example.com");
        await using var sidecar = await TestSidecar.StartAsync(TcpL4Tests.Config(TlsListener(noSni), new Dictionary<string, object>
        {
            ["a"] = new { endpoints = new[] { a.Endpoint } },
            ["b"] = new { endpoints = new[] { a.Endpoint } },
        }));

        // An IP address as target host: the client sends no SNI.
        var handshake = TlsPeer.HandshakeAsync(sidecar.Sidecar.EndpointOf("tls"), "127.0.0.1");
        if (served)
        {
            Assert.Equal("A", (await handshake).Line);
        }
        else
        {
            await Assert.ThrowsAnyAsync<IOException>(() => handshake);
            await TcpL4Tests.WaitForMetricAsync(sidecar, "mesh_tls_sni_misses_total{listener=\"tls\",reason=\"no-sni\"} 1");
            Assert.Equal(0, a.Accepted);
        }
    }

    [Fact]
    public async Task Tls_ClientHelloOneByteAtATime_BackendReceivesIdenticalBytes()
    {
        var hello = await File.ReadAllBytesAsync(Path.Combine(FixturesDirectory(), "openssl-sni-alpn.bin"));
        var received = new TaskCompletionSource<byte[]>(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var raw = new TcpPeer("raw", async (connection, ct) =>
        {
            var all = new MemoryStream();
            var buffer = new byte[4096];
            while (all.Length < hello.Length)
            {
                var read = await connection.ReceiveAsync(buffer, SocketFlags.None, ct);
                if (read == 0)
                {
                    break;
                }

                all.Write(buffer, 0, read);
            }

            received.TrySetResult(all.ToArray());
        });
        await using var sidecar = await TestSidecar.StartAsync(TcpL4Tests.Config(
            new { name = "tls", address = "127.0.0.1", port = 0, protocol = "tls-passthrough", tls = new { routes = new[] { new { name = "any", serverNames = new[] { "*" }, service = "raw" } } } },
            new Dictionary<string, object> { ["raw"] = new { endpoints = new[] { raw.Endpoint } } }));
        using var client = await Net.ConnectAsync(sidecar.Sidecar.EndpointOf("tls"));
        foreach (var b in hello)
        {
            await client.SendAsync(new[] { b }, SocketFlags.None);
        }

        Assert.Equal(hello, await received.Task.WaitAsync(TestSidecar.Deadline));
    }

    [Fact]
    public async Task Tls_GarbageAndSilentClients_ClosedAndCounted()
    {
        await using var a = new TlsPeer("A", "a.example.com");
        await using var sidecar = await TestSidecar.StartAsync(TcpL4Tests.Config(TlsListener(), new Dictionary<string, object>
        {
            ["a"] = new { endpoints = new[] { a.Endpoint } },
            ["b"] = new { endpoints = new[] { a.Endpoint } },
        }));
        var listener = sidecar.Sidecar.EndpointOf("tls");

        using (var garbage = await Net.ConnectAsync(listener))
        {
            await garbage.SendAsync("GET / HTTP/1.1\r\nHost: x\r\n\r\n"u8.ToArray(), SocketFlags.None);
            Assert.Empty(await Net.ReadToEndAsync(garbage));
        }

        using (var silent = await Net.ConnectAsync(listener))
        {
            // Sends nothing: closed after the 300 ms peek timeout.
            Assert.Empty(await Net.ReadToEndAsync(silent));
        }

        await TcpL4Tests.WaitForMetricAsync(sidecar, "mesh_tls_sni_misses_total{listener=\"tls\",reason=\"not-tls\"} 1");
        await TcpL4Tests.WaitForMetricAsync(sidecar, "mesh_tls_sni_misses_total{listener=\"tls\",reason=\"timeout\"} 1");
        Assert.Equal(0, a.Accepted);
    }

    [Fact]
    public async Task Auto_FirstBytes_TlsHttp1Http2OpaqueAndServerFirstEachReachTheirPath()
    {
        await using var tlsBackend = new TlsPeer("A", "a.example.com");
        await using var http = await TestBackend.StartAsync("web");
        await using var banner = new TcpPeer("tcp", async (connection, ct) =>
        {
            // A server-first protocol: the backend speaks before the client.
            await connection.SendAsync("220 ready\n"u8.ToArray(), SocketFlags.None, ct);
            var buffer = new byte[256];
            int read;
            while ((read = await connection.ReceiveAsync(buffer, SocketFlags.None, ct)) > 0)
            {
                await connection.SendAsync(buffer.AsMemory(0, read), SocketFlags.None, ct);
            }
        });
        await using var sidecar = await TestSidecar.StartAsync(TcpL4Tests.Config(
            new
            {
                name = "auto",
                address = "127.0.0.1",
                port = 0,
                protocol = "auto",
                service = "tcp",
                tls = new { routes = new[] { new { name = "a", serverNames = new[] { "a.example.com" }, service = "a" } } },
            },
            new Dictionary<string, object>
            {
                ["a"] = new { endpoints = new[] { tlsBackend.Endpoint } },
                ["tcp"] = new { endpoints = new[] { banner.Endpoint } },
                ["web"] = TestConfig.Service([http]),
            },
            [TestConfig.Route("web", "web")]));
        var listener = sidecar.Sidecar.EndpointOf("auto");

        Assert.Equal(("CN=a.example.com", "A"), await TlsPeer.HandshakeAsync(listener, "a.example.com"));

        using var h1 = Clients.Http1();
        using (var response = await h1.SendAsync(Clients.Get(new Uri($"http://{listener}"), "/")))
        {
            Assert.Equal("web", response.Headers.GetValues("x-backend").Single());
        }

        using var h2 = Clients.Http2();
        using (var response = await h2.SendAsync(Clients.Get(new Uri($"http://{listener}"), "/", http2: true)))
        {
            Assert.Equal(HttpVersion.Version20, response.Version);
            Assert.Equal("web", response.Headers.GetValues("x-backend").Single());
        }

        using (var silent = await Net.ConnectAsync(listener))
        {
            var buffer = new byte[64];
            using var deadline = new CancellationTokenSource(TestSidecar.Deadline);
            var read = await silent.ReceiveAsync(buffer, SocketFlags.None, deadline.Token);
            Assert.Equal("220 ready\n", Encoding.ASCII.GetString(buffer, 0, read));
        }

        using (var opaque = await Net.ConnectAsync(listener))
        {
            await opaque.SendAsync("hello\n"u8.ToArray(), SocketFlags.None);
            opaque.Shutdown(SocketShutdown.Send);
            Assert.Equal("220 ready\nhello\n", Encoding.ASCII.GetString(await Net.ReadToEndAsync(opaque)));
        }

        foreach (var result in new[] { "tls", "http1", "http2", "silent", "opaque" })
        {
            await TcpL4Tests.WaitForMetricAsync(sidecar, $"mesh_detection_results_total{{listener=\"auto\",result=\"{result}\"}} 1");
        }
    }

    [Fact]
    public async Task ConnectionHook_DeniedSni_ClosedBeforeBackendSeesIt()
    {
        await using var a = new TlsPeer("A", "a.example.com");
        var filter = new DenyFilter("deny.example.com");
        await using var sidecar = await TestSidecar.StartAsync(
            TcpL4Tests.Config(TlsListener(), new Dictionary<string, object>
            {
                ["a"] = new { endpoints = new[] { a.Endpoint } },
                ["b"] = new { endpoints = new[] { a.Endpoint } },
            }),
            services => services.AddSingleton<IConnectionFilter>(filter));
        var listener = sidecar.Sidecar.EndpointOf("tls");

        await Assert.ThrowsAnyAsync<IOException>(() => TlsPeer.HandshakeAsync(listener, "deny.example.com"));
        Assert.Equal(0, a.Accepted);
        Assert.Equal("A", (await TlsPeer.HandshakeAsync(listener, "a.example.com", [SslApplicationProtocol.Http2])).Line);

        var seen = filter.Seen.ToArray();
        Assert.Contains(seen, c => c.ServerName == "deny.example.com");
        var allowed = Assert.Single(seen, c => c.ServerName == "a.example.com");
        Assert.Equal(["h2"], allowed.Alpn);
        Assert.Equal("tls", allowed.Listener);
        Assert.Equal("127.0.0.1", allowed.RemoteAddress);
    }

    [Fact]
    public async Task Udp_ManyClients_EachStaysOnOneBackendAndRepliesComeFromListener()
    {
        var backends = Enumerable.Range(1, 3).Select(i => new UdpEcho($"u{i}")).ToArray();
        await using var sidecar = await TestSidecar.StartAsync(TcpL4Tests.Config(
            new { name = "udp", address = "127.0.0.1", port = 0, protocol = "udp", service = "game", udp = new { flowIdleTimeoutMs = 300 } },
            new Dictionary<string, object> { ["game"] = TcpL4Tests.Service(backends.Select(b => b.Endpoint), "consistent-hash") }));
        var listener = sidecar.Sidecar.EndpointOf("udp");

        var owners = new HashSet<string>(StringComparer.Ordinal);
        for (var i = 2; i < 62; i++)
        {
            using var client = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
            client.Bind(new IPEndPoint(IPAddress.Parse($"127.0.3.{i}"), 0));
            var seen = new HashSet<string>(StringComparer.Ordinal);
            for (var n = 0; n < 3; n++)
            {
                var (from, text) = await UdpEcho.AskAsync(client, listener, $"m{n}");
                Assert.Equal(listener, from);
                seen.Add(text[..text.IndexOf(':', StringComparison.Ordinal)]);
            }

            owners.Add(Assert.Single(seen));
        }

        Assert.Equal(3, owners.Count);

        // Idle flows expire.
        await TcpL4Tests.WaitForMetricAsync(sidecar, "mesh_udp_flows_active{listener=\"udp\"} 0");
        await TcpL4Tests.WaitForMetricAsync(sidecar, "mesh_udp_flows_created_total{listener=\"udp\"} 60");
        foreach (var backend in backends)
        {
            backend.Dispose();
        }
    }

    private sealed class DenyFilter(string serverName) : IConnectionFilter
    {
        public System.Collections.Concurrent.ConcurrentQueue<AcceptedConnection> Seen { get; } = new();

        public ValueTask<bool> AllowAsync(AcceptedConnection connection, CancellationToken cancellationToken)
        {
            Seen.Enqueue(connection);
            return ValueTask.FromResult(connection.ServerName != serverName);
        }
    }

    private sealed class UdpEcho : IDisposable
    {
        private readonly Socket _socket = new(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        private readonly CancellationTokenSource _stop = new();

        public UdpEcho(string name)
        {
            _socket.Bind(new IPEndPoint(IPAddress.Loopback, 0));
            _ = RunAsync(name);
        }

        public object Endpoint => new { address = "127.0.0.1", port = ((IPEndPoint)_socket.LocalEndPoint!).Port };

        private async Task RunAsync(string name)
        {
            var buffer = new byte[2048];
            var prefix = Encoding.ASCII.GetBytes(name + ":");
            try
            {
                while (true)
                {
                    var got = await _socket.ReceiveFromAsync(buffer, SocketFlags.None, new IPEndPoint(IPAddress.Any, 0), _stop.Token);
                    byte[] reply = [.. prefix, .. buffer.AsSpan(0, got.ReceivedBytes)];
                    await _socket.SendToAsync(reply, SocketFlags.None, got.RemoteEndPoint, _stop.Token);
                }
            }
            catch (Exception ex) when (ex is OperationCanceledException or SocketException or ObjectDisposedException)
            {
            }
        }

        /// <summary>Sends and waits for the reply, resending every 2 s: UDP may drop on a loaded machine.</summary>
        public static async Task<(IPEndPoint From, string Text)> AskAsync(Socket client, IPEndPoint target, string text)
        {
            var buffer = new byte[2048];
            for (var attempt = 0; attempt < 10; attempt++)
            {
                await client.SendToAsync(Encoding.ASCII.GetBytes(text), SocketFlags.None, target);
                using var wait = new CancellationTokenSource(TimeSpan.FromSeconds(2));
                try
                {
                    var got = await client.ReceiveFromAsync(buffer, SocketFlags.None, new IPEndPoint(IPAddress.Any, 0), wait.Token);
                    return ((IPEndPoint)got.RemoteEndPoint, Encoding.ASCII.GetString(buffer, 0, got.ReceivedBytes));
                }
                catch (OperationCanceledException)
                {
                }
            }

            throw new TimeoutException($"no UDP reply to '{text}'");
        }

        public void Dispose()
        {
            _stop.Cancel();
            _socket.Dispose();
            _stop.Dispose();
        }
    }
}
