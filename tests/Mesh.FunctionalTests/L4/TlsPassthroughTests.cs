// TLS passthrough end to end: SNI routes to real TLS backends, no-SNI handling, ClientHello bytes unchanged, misses counted.
using System.Buffers.Binary;
using System.Diagnostics;
using System.Net.Security;
using System.Net.Sockets;
using Mesh.FunctionalTests.Infrastructure;
using static Mesh.FunctionalTests.L4.L4Harness;

namespace Mesh.FunctionalTests.L4;

public sealed class TlsPassthroughTests
{
    // A short peek timeout only where it is under test: a ClientHello sent one byte at a time, or a
    // process's first TLS client, can take longer than 300 ms on a loaded machine.
    private static object TlsListener(string noSni = "default", object[]? routes = null, int peekTimeoutMs = 20_000) => new
    {
        name = "tls",
        address = "127.0.0.1",
        port = 0,
        protocol = "tls-passthrough",
        service = "a",
        tls = new
        {
            routes = routes ?? new object[]
            {
                new { name = "exact", serverNames = new[] { "a.example.com" }, service = "a" },
                new { name = "wild", serverNames = new[] { "*.b.example.com" }, service = "b" },
            },
            noSni,
            peekTimeoutMs,
        },
    };

    private static Dictionary<string, object> TwoServices(object a, object b) =>
        Services(("a", new { endpoints = new[] { a } }), ("b", new { endpoints = new[] { b } }));

    private static string Misses(string reason) => $"mesh_tls_sni_misses_total{{listener=\"tls\",reason=\"{reason}\"}}";

    [Fact]
    public async Task SniRoute_ExactWildcardAndDefault_ClientSeesEachBackendsOwnCertificate()
    {
        await using var a = new TlsPeer("A", "a.example.com");
        await using var b = new TlsPeer("B", "b.example.com", "b.example.com", "*.b.example.com");
        await using var sidecar = await TestSidecar.StartAsync(Config(TlsListener(), TwoServices(a.Endpoint, b.Endpoint)));
        var listener = sidecar.Sidecar.EndpointOf("tls");

        Assert.Equal(("CN=a.example.com", "A"), await TlsPeer.HandshakeAsync(listener, "a.example.com"));
        Assert.Equal(("CN=b.example.com", "B"), await TlsPeer.HandshakeAsync(listener, "x.b.example.com"));
        Assert.Equal(("CN=b.example.com", "B"), await TlsPeer.HandshakeAsync(listener, "deep.x.b.example.com"));

        // No route matches: the listener's service. "*.b.example.com" does not match "b.example.com" itself.
        Assert.Equal(("CN=a.example.com", "A"), await TlsPeer.HandshakeAsync(listener, "other.example.org"));
        Assert.Equal(("CN=a.example.com", "A"), await TlsPeer.HandshakeAsync(listener, "b.example.com"));

        // The backends' own TLS stacks read the names the clients sent: the ClientHello arrived intact.
        Assert.Equal(["a.example.com", "other.example.org", "b.example.com"], a.ServerNames);
        Assert.Equal(["x.b.example.com", "deep.x.b.example.com"], b.ServerNames);
    }

    [Fact]
    public async Task SniRoute_WithAlpn_TakenOnlyWhenClientOffersIt()
    {
        await using var a = new TlsPeer("A", "a.example.com");
        await using var b = new TlsPeer("B", "b.example.com");
        await using var sidecar = await TestSidecar.StartAsync(Config(
            TlsListener(routes: [new { name = "mqtt", serverNames = new[] { "*" }, alpn = new[] { "mqtt" }, service = "b" }]),
            TwoServices(a.Endpoint, b.Endpoint)));
        var listener = sidecar.Sidecar.EndpointOf("tls");

        Assert.Equal("B", (await TlsPeer.HandshakeAsync(listener, "broker.example.org", [SslApplicationProtocol.Http11, new SslApplicationProtocol("mqtt")])).Line);
        Assert.Equal("A", (await TlsPeer.HandshakeAsync(listener, "broker.example.org", [SslApplicationProtocol.Http2])).Line);
        Assert.Equal("A", (await TlsPeer.HandshakeAsync(listener, "broker.example.org")).Line);
    }

    [Theory]
    [InlineData("default", "")]
    [InlineData("default", "127.0.0.1")]
    [InlineData("refuse", "")]
    [InlineData("refuse", "127.0.0.1")]
    public async Task NoSni_ClientSendsNoServerName_DefaultServiceOrClosedPerConfig(string noSni, string targetHost)
    {
        await using var a = new TlsPeer("A", "a.example.com");
        await using var b = new TlsPeer("B", "b.example.com");
        await using var sidecar = await TestSidecar.StartAsync(Config(TlsListener(noSni), TwoServices(a.Endpoint, b.Endpoint)));

        // An empty target host or an IP address: the client's ClientHello has no server_name extension.
        var handshake = TlsPeer.HandshakeAsync(sidecar.Sidecar.EndpointOf("tls"), targetHost);
        if (noSni == "default")
        {
            Assert.Equal(("CN=a.example.com", "A"), await handshake);
            Assert.Equal([""], a.ServerNames);
        }
        else
        {
            await Assert.ThrowsAnyAsync<IOException>(() => handshake);
            await WaitForMetricAsync(sidecar, Misses("no-sni"), 1);
            Assert.Equal(0, a.Accepted);
            Assert.Equal(0, b.Accepted);
        }
    }

    [Theory]
    [InlineData("openssl-sni-alpn.bin", "api.example.com")]
    [InlineData("gnutls-sni-alpn.bin", "mqtt.example.com")]
    [InlineData("chromium-sni.three-records.bin", "www.example.com")]
    public async Task ClientHello_SentOneByteAtATime_RoutedBySniAndBackendReceivesIdenticalBytes(string file, string serverName)
    {
        var hello = await File.ReadAllBytesAsync(ClientHello(file));
        await RelayRawHelloAsync(hello, serverName, async client =>
        {
            foreach (var b in hello)
            {
                await client.SendAsync(new[] { b }, SocketFlags.None);
            }
        });
    }

    [Fact]
    public async Task ClientHello_LargerThanTheFirstPeekBuffer_RoutedBySniAndRelayedUnchanged()
    {
        // The OpenSSL hello grown past 8 KB with a padding extension: the peek buffer must grow.
        var hello = Padded(await File.ReadAllBytesAsync(ClientHello("openssl-sni-alpn.bin")), 9000);
        await RelayRawHelloAsync(hello, "api.example.com", async client =>
        {
            // In pieces that straddle the buffer sizes.
            for (var offset = 0; offset < hello.Length; offset += 1000)
            {
                await Net.SendAllAsync(client, hello.AsMemory(offset, Math.Min(1000, hello.Length - offset)));
            }
        });
    }

    [Fact]
    public async Task SniRoute_NoRouteAndNoDefaultService_ClosedAndCounted()
    {
        await using var a = new TlsPeer("A", "a.example.com");
        await using var sidecar = await TestSidecar.StartAsync(Config(
            new
            {
                name = "tls",
                address = "127.0.0.1",
                port = 0,
                protocol = "tls-passthrough",
                tls = new { routes = new[] { new { name = "exact", serverNames = new[] { "a.example.com" }, service = "a" } } },
            },
            Services(("a", new { endpoints = new[] { a.Endpoint } }))));
        var listener = sidecar.Sidecar.EndpointOf("tls");

        await Assert.ThrowsAnyAsync<IOException>(() => TlsPeer.HandshakeAsync(listener, "other.example.org"));
        await WaitForMetricAsync(sidecar, Misses("no-route"), 1);
        Assert.Equal(0, a.Accepted);
        Assert.Equal("A", (await TlsPeer.HandshakeAsync(listener, "a.example.com")).Line);
    }

    [Fact]
    public async Task NotTls_HttpRequestOnTlsListener_ClosedCleanlyAndCounted()
    {
        await using var a = new TlsPeer("A", "a.example.com");
        await using var sidecar = await TestSidecar.StartAsync(Config(TlsListener(), TwoServices(a.Endpoint, a.Endpoint)));
        using var garbage = await Net.ConnectAsync(sidecar.Sidecar.EndpointOf("tls"));

        await garbage.SendAsync("GET / HTTP/1.1\r\nHost: a.example.com\r\n\r\n"u8.ToArray(), SocketFlags.None);

        // A clean close (FIN), no bytes, and the backend never hears of it.
        Assert.Empty(await Net.ReadToEndAsync(garbage));
        await WaitForMetricAsync(sidecar, Misses("not-tls"), 1);
        Assert.Equal(0, a.Accepted);
    }

    [Fact]
    public async Task PeekTimeout_SilentClient_ClosedAfterTimeoutAndCounted()
    {
        await using var a = new TlsPeer("A", "a.example.com");
        await using var sidecar = await TestSidecar.StartAsync(Config(TlsListener(peekTimeoutMs: 300), TwoServices(a.Endpoint, a.Endpoint)));
        var clock = Stopwatch.StartNew();
        using var silent = await Net.ConnectAsync(sidecar.Sidecar.EndpointOf("tls"));

        // Sends nothing: closed once tls.peekTimeoutMs (300) has passed.
        Assert.Empty(await Net.ReadToEndAsync(silent));
        Assert.InRange(clock.Elapsed, TimeSpan.FromMilliseconds(250), TimeSpan.FromSeconds(10));
        await WaitForMetricAsync(sidecar, Misses("timeout"), 1);
        Assert.Equal(0, a.Accepted);
    }

    // Sends a captured ClientHello through a tls-passthrough listener whose only route is its server
    // name, to a raw-socket backend, and asserts the backend got exactly those bytes (the default
    // service is another raw backend that must see nothing).
    private static async Task RelayRawHelloAsync(byte[] hello, string serverName, Func<Socket, Task> send)
    {
        var received = new TaskCompletionSource<byte[]>(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var raw = new TcpPeer("raw", async (connection, ct) =>
        {
            using var all = new MemoryStream();
            var buffer = new byte[16 * 1024];
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
        await using var decoy = new TcpPeer("decoy", TcpPeer.MirrorAsync);
        await using var sidecar = await TestSidecar.StartAsync(Config(
            TlsListener(routes: [new { name = "named", serverNames = new[] { serverName }, service = "b" }]),
            TwoServices(decoy.Endpoint, raw.Endpoint)));
        using var client = await Net.ConnectAsync(sidecar.Sidecar.EndpointOf("tls"));

        await send(client);

        Assert.Equal(hello, await received.Task.WaitAsync(TestSidecar.Deadline));
        Assert.Equal(0, decoy.Accepted);
    }

    // Appends a padding extension (type 21) of <paramref name="padding"/> zero bytes to a single-record
    // ClientHello, fixing the record, handshake and extensions lengths.
    private static byte[] Padded(byte[] hello, int padding)
    {
        var body = 5 + 4;
        var sessionId = body + 2 + 32;
        var cipherSuites = sessionId + 1 + hello[sessionId];
        var compression = cipherSuites + 2 + BinaryPrimitives.ReadUInt16BigEndian(hello.AsSpan(cipherSuites));
        var extensions = compression + 1 + hello[compression];
        Assert.Equal(hello.Length, extensions + 2 + BinaryPrimitives.ReadUInt16BigEndian(hello.AsSpan(extensions)));

        var added = 4 + padding;
        var result = new byte[hello.Length + added];
        hello.CopyTo(result, 0);
        BinaryPrimitives.WriteUInt16BigEndian(result.AsSpan(hello.Length), 21);
        BinaryPrimitives.WriteUInt16BigEndian(result.AsSpan(hello.Length + 2), (ushort)padding);
        BinaryPrimitives.WriteUInt16BigEndian(result.AsSpan(3), (ushort)(BinaryPrimitives.ReadUInt16BigEndian(hello.AsSpan(3)) + added));
        var handshakeLength = (hello[6] << 16) | (hello[7] << 8) | hello[8];
        handshakeLength += added;
        result[6] = (byte)(handshakeLength >> 16);
        result[7] = (byte)(handshakeLength >> 8);
        result[8] = (byte)handshakeLength;
        BinaryPrimitives.WriteUInt16BigEndian(result.AsSpan(extensions), (ushort)(BinaryPrimitives.ReadUInt16BigEndian(hello.AsSpan(extensions)) + added));
        return result;
    }
}
