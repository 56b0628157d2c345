// HTTP/1.1 and HTTP/2 (prior knowledge) on one plaintext listener, however the first bytes arrive; inbound delivery.
using System.Net;
using System.Net.Sockets;
using System.Text;
using Mesh.FunctionalTests.Infrastructure;

namespace Mesh.FunctionalTests.Listeners;

public sealed class ProtocolDetectionTests
{
    private static async Task<(TestBackend Backend, TestSidecar Sidecar)> StartAsync()
    {
        var backend = await TestBackend.StartAsync("b");
        var sidecar = await TestSidecar.StartAsync(TestConfig.Outbound(
            [TestConfig.Route("all", "svc")],
            new Dictionary<string, object> { ["svc"] = TestConfig.Service([backend]) }));
        return (backend, sidecar);
    }

    [Fact]
    public async Task Listener_Http1AndHttp2Clients_BothServedOnSamePort()
    {
        var (backend, sidecar) = await StartAsync();
        await using var _ = backend;
        await using var __ = sidecar;
        using var h1 = Clients.Http1();
        using var h2 = Clients.Http2();

        using var one = await h1.SendAsync(Clients.Get(sidecar.Listener(), "/"));
        using var two = await h2.SendAsync(Clients.Get(sidecar.Listener(), "/", http2: true));

        Assert.Equal(HttpStatusCode.OK, one.StatusCode);
        Assert.Equal(HttpVersion.Version11, one.Version);
        Assert.Equal(HttpStatusCode.OK, two.StatusCode);
        Assert.Equal(HttpVersion.Version20, two.Version);
    }

    [Fact]
    public async Task Listener_Http1RequestOneByteAtATime_IsServed()
    {
        var (backend, sidecar) = await StartAsync();
        await using var _ = backend;
        await using var __ = sidecar;
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        await socket.ConnectAsync(sidecar.Sidecar.EndpointOf("outbound"));

        // "PO" shares its first byte with the HTTP/2 preface, so detection must wait for the second.
        var request = Encoding.ASCII.GetBytes("POST /x HTTP/1.1\r\nHost: a.test\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        foreach (var b in request)
        {
            await socket.SendAsync(new[] { b }, SocketFlags.None);
        }

        var response = await ReadAllAsync(socket);
        Assert.StartsWith("HTTP/1.1 200", response, StringComparison.Ordinal);
        Assert.Contains("x-backend: b", response, StringComparison.OrdinalIgnoreCase);
    }

    [Fact]
    public async Task Listener_Http2PrefaceInPieces_AnswersWithHttp2Settings()
    {
        var (backend, sidecar) = await StartAsync();
        await using var _ = backend;
        await using var __ = sidecar;
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        await socket.ConnectAsync(sidecar.Sidecar.EndpointOf("outbound"));

        var preface = Encoding.ASCII.GetBytes("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
        byte[] emptySettings = [0, 0, 0, 0x4, 0, 0, 0, 0, 0];
        for (var i = 0; i < preface.Length; i += 5)
        {
            await socket.SendAsync(preface.AsMemory(i, Math.Min(5, preface.Length - i)), SocketFlags.None);
        }

        await socket.SendAsync(emptySettings, SocketFlags.None);

        // The server's first frame on an HTTP/2 connection is SETTINGS (type 0x4) on stream 0.
        var header = new byte[9];
        var read = 0;
        using var deadline = new CancellationTokenSource(TestSidecar.Deadline);
        while (read < header.Length)
        {
            var n = await socket.ReceiveAsync(header.AsMemory(read), SocketFlags.None, deadline.Token);
            Assert.NotEqual(0, n);
            read += n;
        }

        Assert.Equal(0x4, header[3]);
        Assert.Equal(0, header[5] | header[6] | header[7] | header[8]);
    }

    [Fact]
    public async Task InboundListener_NoRoutes_DeliversToLocalApp()
    {
        await using var app = await TestBackend.StartAsync("local-app");
        await using var sidecar = await TestSidecar.StartAsync(new
        {
            service = new { name = "web", address = "127.0.0.1", port = app.Port },
            admin = new { address = "127.0.0.1", port = 0 },
            listeners = new[] { new { name = "inbound", address = "127.0.0.1", port = 0, direction = "inbound", protocol = "http" } },
        });
        using var client = Clients.Http2();
        using var response = await client.SendAsync(Clients.Get(sidecar.Listener("inbound"), "/hello", http2: true));
        var echo = await TestBackend.ReadEchoAsync(response);
        Assert.Equal("local-app", echo.Backend);
        Assert.Equal("/hello", echo.Path);
    }

    private static async Task<string> ReadAllAsync(Socket socket)
    {
        using var deadline = new CancellationTokenSource(TestSidecar.Deadline);
        var buffer = new byte[4096];
        var text = new StringBuilder();
        while (true)
        {
            var n = await socket.ReceiveAsync(buffer, SocketFlags.None, deadline.Token);
            if (n == 0)
            {
                return text.ToString();
            }

            text.Append(Encoding.ASCII.GetString(buffer, 0, n));
        }
    }
}
