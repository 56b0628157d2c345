// Shutdown drains: /ready turns 503 while admin answers, listeners stop accepting, open work finishes or is cut at shutdown.drainTimeoutMs.
using System.Net;
using System.Net.Sockets;
using System.Text;
using Mesh.FunctionalTests.Infrastructure;

namespace Mesh.FunctionalTests.Hosting;

public sealed class ShutdownTests
{
    [Fact]
    public async Task Dispose_OpenTcpConnection_KeepsRelayingUntilClientCloses()
    {
        using var backend = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        backend.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        backend.Listen(8);
        var echo = EchoOnceAsync(backend);

        var sidecar = await TestSidecar.StartAsync(new
        {
            service = new { name = "client" },
            admin = new { address = "127.0.0.1", port = 0 },
            listeners = new[] { new { name = "tcp", address = "127.0.0.1", port = 0, protocol = "tcp", service = "echo" } },
            services = new Dictionary<string, object> { ["echo"] = new { endpoints = new[] { new { address = "127.0.0.1", port = ((IPEndPoint)backend.LocalEndPoint!).Port } } } },
        });
        var listener = sidecar.Sidecar.EndpointOf("tcp");
        using var client = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await client.ConnectAsync(listener);
        Assert.Equal("a", await RoundTripAsync(client, "a"));

        var disposing = sidecar.DisposeAsync().AsTask();

        // The open connection still relays both ways, and shutdown waits for it.
        Assert.Equal("b", await RoundTripAsync(client, "b"));
        Assert.False(disposing.IsCompleted);
        client.Shutdown(SocketShutdown.Send);
        await disposing.WaitAsync(TestSidecar.Deadline);
        await echo.WaitAsync(TestSidecar.Deadline);

        using var late = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        var refused = await Assert.ThrowsAsync<SocketException>(() => late.ConnectAsync(listener));
        Assert.Equal(SocketError.ConnectionRefused, refused.SocketErrorCode);
    }

    [Fact]
    public async Task Dispose_RequestInFlight_ReadyAnswers503WhileAdminAnswersAndTheRequestCompletes()
    {
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var started = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var backend = await TestBackend.StartAsync("slow", configure: app => app.Run(async context =>
        {
            started.TrySetResult();
            await release.Task;
            await context.Response.WriteAsync("done");
        }));
        var sidecar = await TestSidecar.StartAsync(TestConfig.Outbound([TestConfig.Route("all", "svc")], new Dictionary<string, object> { ["svc"] = TestConfig.Service([backend]) }));
        var listener = sidecar.Sidecar.EndpointOf("outbound");
        using var client = Clients.Http1();
        var slow = client.SendAsync(Clients.Get(sidecar.Listener(), "/"));
        await started.Task.WaitAsync(TestSidecar.Deadline);

        var disposing = sidecar.DisposeAsync().AsTask();

        // The admin listener still answers, and /ready says the sidecar is leaving.
        using var admin = Clients.Http1();
        using var deadline = new CancellationTokenSource(TestSidecar.Deadline);
        HttpResponseMessage ready;
        while (true)
        {
            ready = await admin.GetAsync(new Uri(sidecar.Admin, "/ready"), deadline.Token);
            if (ready.StatusCode == HttpStatusCode.ServiceUnavailable)
            {
                break;
            }

            ready.Dispose();
            await Task.Delay(20, deadline.Token);
        }

        Assert.Equal("not ready: draining", (await ready.Content.ReadAsStringAsync()).Trim());
        ready.Dispose();
        using (var health = await admin.GetAsync(new Uri(sidecar.Admin, "/healthz")))
        {
            Assert.Equal(HttpStatusCode.OK, health.StatusCode);
        }

        // /ready goes 503 first and the proxy socket closes right after it (so a balancer sees the sidecar
        // leave first): the socket soon refuses, but the request in flight finishes, and its connection closes after it.
        while (true)
        {
            using var late = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            try
            {
                await late.ConnectAsync(listener, deadline.Token);
            }
            catch (SocketException refused)
            {
                Assert.Equal(SocketError.ConnectionRefused, refused.SocketErrorCode);
                break;
            }

            await Task.Delay(20, deadline.Token);
        }

        Assert.False(disposing.IsCompleted);

        release.SetResult();
        using var response = await slow.WaitAsync(TestSidecar.Deadline);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("done", await response.Content.ReadAsStringAsync());
        Assert.True(response.Headers.ConnectionClose);
        await disposing.WaitAsync(TestSidecar.Deadline);
    }

    [Fact]
    public async Task Dispose_IdleKeepAliveConnections_DoNotHoldTheDrain()
    {
        await using var backend = await TestBackend.StartAsync("b");
        var config = TestConfig.Outbound([TestConfig.Route("all", "svc")], new Dictionary<string, object> { ["svc"] = TestConfig.Service([backend]) });
        var sidecar = await TestSidecar.StartAsync(WithDrainTimeout(config, 120_000));
        using var http1 = Clients.Http1();
        using var http2 = Clients.Http2();
        using (var a = await http1.SendAsync(Clients.Get(sidecar.Listener(), "/")))
        using (var b = await http2.SendAsync(Clients.Get(sidecar.Listener(), "/", http2: true)))
        {
            Assert.Equal(HttpStatusCode.OK, a.StatusCode);
            Assert.Equal(HttpVersion.Version20, b.Version);
        }

        // Both clients keep an idle connection open: HTTP/1.1 is closed at once, HTTP/2 gets a GOAWAY,
        // so the drain ends long before its two-minute deadline.
        await sidecar.DisposeAsync().AsTask().WaitAsync(TestSidecar.Deadline);
    }

    [Fact]
    public async Task Dispose_DrainDeadlinePassed_CutsWhatIsLeftAndLogsHowMuch()
    {
        var started = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var never = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var backend = await TestBackend.StartAsync("stuck", configure: app => app.Run(async context =>
        {
            started.TrySetResult();
            await never.Task.WaitAsync(context.RequestAborted);
        }));
        var logs = new LogCapture();
        var config = TestConfig.Outbound([TestConfig.Route("all", "svc")], new Dictionary<string, object> { ["svc"] = TestConfig.Service([backend]) });
        var sidecar = await TestSidecar.StartAsync(WithDrainTimeout(config, 120_000), logs: logs);

        // The deadline follows reloads.
        await sidecar.ReloadAsync(WithDrainTimeout(config, 300));

        using var client = Clients.Http1();
        var stuck = client.SendAsync(Clients.Get(sidecar.Listener(), "/"));
        await started.Task.WaitAsync(TestSidecar.Deadline);

        await sidecar.DisposeAsync().AsTask().WaitAsync(TestSidecar.Deadline);

        // The request was cut, not left hanging, and the log says what was cut.
        await Assert.ThrowsAsync<HttpRequestException>(() => stuck.WaitAsync(TestSidecar.Deadline));
        var started4101 = Assert.Single(logs.WithEvent(4101));
        Assert.Equal(300d, started4101.Values["DeadlineMs"]);
        var cut = Assert.Single(logs.WithEvent(4103));
        Assert.Equal(LogLevel.Warning, cut.Level);
        Assert.Equal(1, cut.Values["Requests"]);
        Assert.Equal(1, cut.Values["HttpConnections"]);
        Assert.Equal(0, cut.Values["L4Connections"]);
        Assert.Empty(logs.WithEvent(4102));
    }

    [Fact]
    public async Task Dispose_ConnectionAcceptedBeforeTheDrainSendsItsRequestDuring_ServedOnceThenClosed()
    {
        var started = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var backend = await TestBackend.StartAsync("b", configure: app => app.Run(async context =>
        {
            if (context.Request.Path == "/hold")
            {
                started.TrySetResult();
                await release.Task;
            }

            await context.Response.WriteAsync("served");
        }));
        var sidecar = await TestSidecar.StartAsync(TestConfig.Outbound([TestConfig.Route("all", "svc")], new Dictionary<string, object> { ["svc"] = TestConfig.Service([backend]) }));
        var listener = sidecar.Sidecar.EndpointOf("outbound");

        // Accepted, but silent: still in protocol detection, not yet an HTTP connection when the drain begins.
        using var late = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await late.ConnectAsync(listener);

        // A request in flight holds the drain open.
        using var client = Clients.Http1();
        var hold = client.SendAsync(Clients.Get(sidecar.Listener(), "/hold"));
        await started.Task.WaitAsync(TestSidecar.Deadline);
        var disposing = sidecar.DisposeAsync().AsTask();
        using var admin = Clients.Http1();
        using var deadline = new CancellationTokenSource(TestSidecar.Deadline);
        while (true)
        {
            using var ready = await admin.GetAsync(new Uri(sidecar.Admin, "/ready"), deadline.Token);
            if (ready.StatusCode == HttpStatusCode.ServiceUnavailable)
            {
                break;
            }

            await Task.Delay(20, deadline.Token);
        }

        // Its request, sent now, is answered, and the answer ends the connection.
        await late.SendAsync("GET /late HTTP/1.1\r\nHost: x\r\n\r\n"u8.ToArray(), SocketFlags.None);
        var answer = new StringBuilder();
        var buffer = new byte[4096];
        int read;
        while ((read = await late.ReceiveAsync(buffer, SocketFlags.None, deadline.Token)) > 0)
        {
            answer.Append(Encoding.ASCII.GetString(buffer, 0, read));
        }

        var text = answer.ToString();
        Assert.StartsWith("HTTP/1.1 200", text, StringComparison.Ordinal);
        Assert.Contains("Connection: close", text, StringComparison.OrdinalIgnoreCase);
        Assert.Contains("\r\nserved\r\n", text, StringComparison.Ordinal);

        release.SetResult();
        using var held = await hold.WaitAsync(TestSidecar.Deadline);
        Assert.Equal(HttpStatusCode.OK, held.StatusCode);
        await disposing.WaitAsync(TestSidecar.Deadline);
    }

    private static Dictionary<string, object?> WithDrainTimeout(object config, int drainTimeoutMs)
    {
        var copy = System.Text.Json.JsonSerializer.SerializeToNode(config)!.AsObject();
        copy["shutdown"] = new System.Text.Json.Nodes.JsonObject { ["drainTimeoutMs"] = drainTimeoutMs };
        return copy.ToDictionary(p => p.Key, p => (object?)p.Value);
    }

    private static async Task<string> RoundTripAsync(Socket client, string text)
    {
        await client.SendAsync(Encoding.ASCII.GetBytes(text), SocketFlags.None);
        var buffer = new byte[16];
        using var deadline = new CancellationTokenSource(TestSidecar.Deadline);
        var read = await client.ReceiveAsync(buffer, SocketFlags.None, deadline.Token);
        return Encoding.ASCII.GetString(buffer, 0, read);
    }

    private static async Task EchoOnceAsync(Socket listener)
    {
        using var connection = await listener.AcceptAsync();
        var buffer = new byte[1024];
        while (true)
        {
            var read = await connection.ReceiveAsync(buffer, SocketFlags.None);
            if (read == 0)
            {
                connection.Shutdown(SocketShutdown.Send);
                return;
            }

            await connection.SendAsync(buffer.AsMemory(0, read), SocketFlags.None);
        }
    }
}
