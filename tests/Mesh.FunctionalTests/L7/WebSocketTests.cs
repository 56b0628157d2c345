// WebSockets end to end: HTTP/1.1 upgrade through the real sidecar to real Kestrel echo backends, routed by host.
using System.Net;
using System.Net.WebSockets;
using System.Text;
using Mesh.FunctionalTests.Infrastructure;

namespace Mesh.FunctionalTests.L7;

public sealed class WebSocketFixture : IAsyncLifetime
{
    public TestBackend Echo { get; private set; } = null!;

    public TestBackend Other { get; private set; } = null!;

    public TestSidecar Sidecar { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        Echo = await StartEchoBackendAsync("ws-echo");
        Other = await StartEchoBackendAsync("ws-other");
        var routes = new[]
        {
            TestConfig.Route("ws-other", "other", new { hosts = new[] { "other.ws.test" } }),
            TestConfig.Route("ws-host", "echo", new { hosts = new[] { "echo.ws.test" } }),
            TestConfig.Route("ws-path", "echo", new { path = new { exact = "/ws" } }),
        };
        Sidecar = await TestSidecar.StartAsync(TestConfig.Outbound(routes, new Dictionary<string, object>
        {
            ["echo"] = TestConfig.Service([Echo]),
            ["other"] = TestConfig.Service([Other]),
        }));
    }

    public async Task DisposeAsync()
    {
        await Sidecar.DisposeAsync();
        await Echo.DisposeAsync();
        await Other.DisposeAsync();
    }

    /// <summary>
    /// Accepts a WebSocket on any path and echoes every message with its type; "close-please" makes
    /// the server close first; a client close is answered in kind.
    /// </summary>
    private static Task<TestBackend> StartEchoBackendAsync(string name) => TestBackend.StartAsync(name, configure: app =>
    {
        app.UseWebSockets();
        app.Run(async context =>
        {
            if (!context.WebSockets.IsWebSocketRequest)
            {
                context.Response.StatusCode = StatusCodes.Status400BadRequest;
                return;
            }

            using var socket = await context.WebSockets.AcceptWebSocketAsync();
            var buffer = new byte[16 * 1024];
            using var message = new MemoryStream();
            while (true)
            {
                var result = await socket.ReceiveAsync(buffer, context.RequestAborted);
                if (result.MessageType == WebSocketMessageType.Close)
                {
                    await socket.CloseOutputAsync(result.CloseStatus ?? WebSocketCloseStatus.NormalClosure, result.CloseStatusDescription, context.RequestAborted);
                    return;
                }

                message.Write(buffer, 0, result.Count);
                if (!result.EndOfMessage)
                {
                    continue;
                }

                var payload = message.ToArray();
                message.SetLength(0);
                if (result.MessageType == WebSocketMessageType.Text && Encoding.UTF8.GetString(payload) == "close-please")
                {
                    await socket.CloseAsync(WebSocketCloseStatus.NormalClosure, "bye", context.RequestAborted);
                    return;
                }

                await socket.SendAsync(payload, result.MessageType, endOfMessage: true, context.RequestAborted);
            }
        });
    });
}

public sealed class WebSocketTests(WebSocketFixture fixture) : IClassFixture<WebSocketFixture>
{
    private static CancellationTokenSource Deadline() => new(TestSidecar.Deadline);

    private Uri WsUri(string path = "/ws") => new($"ws://{fixture.Sidecar.Listener().Authority}{path}");

    private static ClientWebSocket NewClient(string? host = null)
    {
        var client = new ClientWebSocket();
        client.Options.Proxy = null;
        client.Options.CollectHttpResponseDetails = true;
        if (host is not null)
        {
            client.Options.SetRequestHeader("Host", host);
        }

        return client;
    }

    private static async Task<(WebSocketMessageType Type, byte[] Payload)> ReceiveMessageAsync(WebSocket socket, CancellationToken cancellationToken)
    {
        var buffer = new byte[8 * 1024];
        using var message = new MemoryStream();
        for (var frames = 0; frames < 10_000; frames++)
        {
            var result = await socket.ReceiveAsync(buffer, cancellationToken);
            if (result.MessageType == WebSocketMessageType.Close)
            {
                return (result.MessageType, []);
            }

            message.Write(buffer, 0, result.Count);
            if (result.EndOfMessage)
            {
                return (result.MessageType, message.ToArray());
            }
        }

        throw new InvalidOperationException("message did not end within 10,000 frames");
    }

    private static async Task AssertEchoAsync(WebSocket socket, WebSocketMessageType type, byte[] payload, CancellationToken cancellationToken)
    {
        await socket.SendAsync(payload, type, endOfMessage: true, cancellationToken);
        var (receivedType, received) = await ReceiveMessageAsync(socket, cancellationToken);
        Assert.Equal(type, receivedType);
        Assert.Equal(payload, received);
    }

    [Fact]
    public async Task Echo_TextAndBinaryMessages_ArriveUnchangedAndCloseIsClean()
    {
        using var cts = Deadline();
        using var client = NewClient();
        await client.ConnectAsync(WsUri(), cts.Token);
        Assert.Equal(HttpStatusCode.SwitchingProtocols, client.HttpStatusCode);
        Assert.Equal(fixture.Echo.Name, client.HttpResponseHeaders?["x-backend"].Single());

        string[] texts = ["hello", "", "ünïcødé ✓ 世界", new string('x', 40_000)];
        foreach (var text in texts)
        {
            await AssertEchoAsync(client, WebSocketMessageType.Text, Encoding.UTF8.GetBytes(text), cts.Token);
        }

        var random = new Random(42);
        foreach (var size in new[] { 1, 125, 126, 65_535, 65_536, 200_000 })
        {
            var payload = new byte[size];
            random.NextBytes(payload);
            await AssertEchoAsync(client, WebSocketMessageType.Binary, payload, cts.Token);
        }

        await client.CloseAsync(WebSocketCloseStatus.NormalClosure, "done", cts.Token);

        Assert.Equal(WebSocketState.Closed, client.State);
        Assert.Equal(WebSocketCloseStatus.NormalClosure, client.CloseStatus);
        Assert.Equal("done", client.CloseStatusDescription);
    }

    [Fact]
    public async Task Echo_InterleavedSendsBeforeReads_AllEchoedInOrder()
    {
        using var cts = Deadline();
        using var client = NewClient();
        await client.ConnectAsync(WsUri(), cts.Token);

        const int count = 20;
        for (var i = 0; i < count; i++)
        {
            var type = i % 2 == 0 ? WebSocketMessageType.Text : WebSocketMessageType.Binary;
            await client.SendAsync(Encoding.UTF8.GetBytes($"m{i}"), type, endOfMessage: true, cts.Token);
        }

        for (var i = 0; i < count; i++)
        {
            var (type, payload) = await ReceiveMessageAsync(client, cts.Token);
            Assert.Equal(i % 2 == 0 ? WebSocketMessageType.Text : WebSocketMessageType.Binary, type);
            Assert.Equal($"m{i}", Encoding.UTF8.GetString(payload));
        }

        await client.CloseAsync(WebSocketCloseStatus.NormalClosure, null, cts.Token);
        Assert.Equal(WebSocketCloseStatus.NormalClosure, client.CloseStatus);
    }

    [Fact]
    public async Task Close_ServerInitiated_NormalClosureReachesClient()
    {
        using var cts = Deadline();
        using var client = NewClient();
        await client.ConnectAsync(WsUri(), cts.Token);
        await AssertEchoAsync(client, WebSocketMessageType.Text, "ping"u8.ToArray(), cts.Token);

        await client.SendAsync("close-please"u8.ToArray(), WebSocketMessageType.Text, endOfMessage: true, cts.Token);
        var (type, _) = await ReceiveMessageAsync(client, cts.Token);

        Assert.Equal(WebSocketMessageType.Close, type);
        Assert.Equal(WebSocketCloseStatus.NormalClosure, client.CloseStatus);
        Assert.Equal("bye", client.CloseStatusDescription);
        await client.CloseOutputAsync(WebSocketCloseStatus.NormalClosure, null, cts.Token);
        Assert.Equal(WebSocketState.Closed, client.State);
    }

    [Theory]
    [InlineData("echo.ws.test", "ws-echo")]
    [InlineData("ECHO.ws.test", "ws-echo")]
    [InlineData("other.ws.test", "ws-other")]
    public async Task HostRoute_Matches_UpgradeReachesThatService(string host, string backend)
    {
        using var cts = Deadline();
        using var client = NewClient(host);

        // A path the /ws route does not take, so only the host routes can match.
        await client.ConnectAsync(WsUri("/chat"), cts.Token);

        Assert.Equal(backend, client.HttpResponseHeaders?["x-backend"].Single());
        await AssertEchoAsync(client, WebSocketMessageType.Text, Encoding.UTF8.GetBytes(host), cts.Token);
        await client.CloseAsync(WebSocketCloseStatus.NormalClosure, null, cts.Token);
        Assert.Equal(WebSocketCloseStatus.NormalClosure, client.CloseStatus);
    }

    [Fact]
    public async Task HostRoute_NoMatch_UpgradeRejectedWith404()
    {
        using var cts = Deadline();
        using var client = NewClient("nowhere.test");

        // Neither host route matches and /elsewhere is not the path route, so no route matches.
        await Assert.ThrowsAsync<WebSocketException>(() => client.ConnectAsync(WsUri("/elsewhere"), cts.Token));

        Assert.Equal(HttpStatusCode.NotFound, client.HttpStatusCode);
    }
}
