// 502 and 504 from an endpoint that refuses or stays silent: a body naming the service and the reason, and a rate-limited Warning.
using System.Net;
using System.Net.Sockets;
using Mesh.FunctionalTests.Infrastructure;

namespace Mesh.FunctionalTests.L7;

public sealed class UpstreamErrorTests
{
    private const int UpstreamFailed = 3050;

    [Theory]
    [InlineData(true, false)]
    [InlineData(true, true)]
    [InlineData(false, false)]
    [InlineData(false, true)]
    public async Task Forward_EndpointRefuses_502NamesServiceEndpointAndReason(bool meshClient, bool http2)
    {
        // Bound but not listening: every connect is refused, and no other process can take the port meanwhile.
        using var dead = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        dead.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        var port = ((IPEndPoint)dead.LocalEndPoint!).Port;
        await using var sidecar = await StartAsync(port, meshClient, requestTimeoutMs: 100_000);
        using var client = http2 ? Clients.Http2() : Clients.Http1();

        using var response = await client.SendAsync(Clients.Get(sidecar.Listener(), "/users/1", http2: http2));

        Assert.Equal(HttpStatusCode.BadGateway, response.StatusCode);
        Assert.Equal("text/plain; charset=utf-8", response.Content.Headers.ContentType?.ToString());
        var body = await response.Content.ReadAsStringAsync();
        // Both clients hand over the socket error itself.
        Assert.Equal($"service 'users': endpoint 127.0.0.1:{port} failed: Connection refused\n", body);
    }

    [Fact]
    public async Task Forward_MeshClientMalformedAnswer_502NamesWhatWasWrong()
    {
        // A status of four digits is no HTTP/1.1 status line; the body says so rather than a generic failure.
        using var upstream = new TcpListener(IPAddress.Loopback, 0);
        upstream.Start();
        var port = ((IPEndPoint)upstream.LocalEndpoint).Port;
        var answered = AnswerOnceAsync(upstream, "HTTP/1.1 2000 OK\r\nContent-Length: 0\r\n\r\n"u8.ToArray());
        await using var sidecar = await StartAsync(port, meshClient: true, requestTimeoutMs: 100_000);
        using var client = Clients.Http1();

        using var response = await client.SendAsync(Clients.Get(sidecar.Listener(), "/"));

        Assert.Equal(HttpStatusCode.BadGateway, response.StatusCode);
        Assert.Equal($"service 'users': endpoint 127.0.0.1:{port} failed: a malformed status line\n", await response.Content.ReadAsStringAsync());
        await answered.WaitAsync(TimeSpan.FromSeconds(30));
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task Forward_EndpointSilent_504NamesServiceEndpointAndTimeout(bool meshClient)
    {
        // Listening but never answering: the kernel completes the handshake and the request sits unread.
        using var silent = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        silent.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        silent.Listen(8);
        var port = ((IPEndPoint)silent.LocalEndPoint!).Port;
        await using var sidecar = await StartAsync(port, meshClient, requestTimeoutMs: 300);
        using var client = Clients.Http1();

        using var response = await client.SendAsync(Clients.Get(sidecar.Listener(), "/"));

        Assert.Equal(HttpStatusCode.GatewayTimeout, response.StatusCode);
        Assert.Equal($"service 'users': endpoint 127.0.0.1:{port} did not answer within 300 ms (requestTimeoutMs)\n", await response.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task Forward_DeadEndpoint_LogsOneWarningPerIntervalWithTheCount()
    {
        using var dead = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        dead.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        var port = ((IPEndPoint)dead.LocalEndPoint!).Port;
        var logs = new LogCapture();
        await using var sidecar = await StartAsync(port, meshClient: true, requestTimeoutMs: 100_000, logs);
        using var client = Clients.Http1();

        for (var i = 0; i < 20; i++)
        {
            using var response = await client.SendAsync(Clients.Get(sidecar.Listener(), "/"));
            Assert.Equal(HttpStatusCode.BadGateway, response.StatusCode);
        }

        // Twenty failures well inside one 10 s window: one line, naming the service and the endpoint.
        var warning = Assert.Single(logs.WithEvent(UpstreamFailed));
        Assert.Equal(LogLevel.Warning, warning.Level);
        Assert.Equal("users", warning.Values["Service"]);
        Assert.Equal($"127.0.0.1:{port}", warning.Values["Endpoint"]);
        Assert.Equal(502, warning.Values["Status"]);
        Assert.Equal(0, warning.Values["Suppressed"]);
    }

    private static Task<TestSidecar> StartAsync(int port, bool meshClient, int requestTimeoutMs, LogCapture? logs = null) => TestSidecar.StartAsync(
        new
        {
            service = new { name = "client", address = "127.0.0.1", port = 0 },
            admin = new { address = "127.0.0.1", port = 0 },
            listeners = new object[] { new { name = "outbound", address = "127.0.0.1", port = 0, direction = "outbound", protocol = "http" } },
            routes = new[] { TestConfig.Route("all", "users") },
            services = new Dictionary<string, object>
            {
                ["users"] = new { endpoints = new[] { new { address = "127.0.0.1", port } }, requestTimeoutMs },
            },
            logging = new { level = "Warning" },
            performance = new { meshHttp1Client = meshClient },
        },
        logs: logs);

    private static async Task AnswerOnceAsync(TcpListener listener, byte[] answer)
    {
        using var socket = await listener.AcceptSocketAsync();
        var buffer = new byte[4096];
        var read = 0;
        while (read < 4 || !buffer.AsSpan(0, read).EndsWith("\r\n\r\n"u8))
        {
            var n = await socket.ReceiveAsync(buffer.AsMemory(read));
            if (n == 0)
            {
                return;
            }

            read += n;
        }

        await socket.SendAsync(answer);
    }
}
