// Config reload while traffic flows: zero failed requests, in-flight requests finish, bad edits keep the last good config.
using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using System.Text.Json.Nodes;
using Mesh.FunctionalTests.Infrastructure;

namespace Mesh.FunctionalTests.Configuration;

public sealed class ReloadTests
{
    private static object Config(IEnumerable<TestBackend> backends, string listenerAddress = "127.0.0.1", object[]? extraListeners = null, object[]? extraRoutes = null) => new
    {
        service = new { name = "client", address = "127.0.0.1", port = 0 },
        admin = new { address = "127.0.0.1", port = 0 },
        listeners = new object[] { new { name = "outbound", address = listenerAddress, port = 0, direction = "outbound", protocol = "http" } }.Concat(extraListeners ?? []).ToArray(),
        routes = (extraRoutes ?? []).Append(TestConfig.Route("all", "svc")).ToArray(),
        services = new Dictionary<string, object> { ["svc"] = TestConfig.Service(backends) },
    };

    [Fact]
    public async Task Reload_UnderLoad_ZeroFailedRequests()
    {
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var slowStarted = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        TestBackend[] backends =
        [
            await TestBackend.StartAsync("a1", configure: app => app.Run(async context =>
            {
                if (context.Request.Path == "/slow")
                {
                    slowStarted.TrySetResult();
                    await release.Task;
                }

                await context.Response.WriteAsync("a1");
            })),
            await TestBackend.StartAsync("a2"),
            await TestBackend.StartAsync("a3"),
        ];
        await using var sidecar = await TestSidecar.StartAsync(Config([backends[0]]));
        using var client = Clients.Http1();

        // An in-flight request that spans every reload below.
        var slow = client.SendAsync(Clients.Get(sidecar.Listener(), "/slow"));
        await slowStarted.Task.WaitAsync(TestSidecar.Deadline);

        using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        var failures = 0;
        var completed = 0;
        async Task WorkerAsync()
        {
            using var worker = Clients.Http2();
            // Bounded: at most 3000 requests per worker, and never past the 60 s deadline.
            for (var i = 0; i < 3000 && !stop.IsCancellationRequested; i++)
            {
                try
                {
                    using var response = await worker.SendAsync(Clients.Get(sidecar.Listener(), "/", http2: i % 2 == 0), stop.Token);
                    if (response.StatusCode != HttpStatusCode.OK)
                    {
                        Interlocked.Increment(ref failures);
                    }
                }
                catch (OperationCanceledException) when (stop.IsCancellationRequested)
                {
                    break;
                }
                catch (HttpRequestException)
                {
                    Interlocked.Increment(ref failures);
                }

                Interlocked.Increment(ref completed);
            }
        }

        var workers = Enumerable.Range(0, 4).Select(_ => Task.Run(WorkerAsync)).ToArray();
        TestBackend[][] sets = [[backends[0], backends[1]], [backends[1], backends[2]], [backends[0]], [backends[0], backends[1], backends[2]], [backends[2], backends[0]]];
        foreach (var set in sets)
        {
            await sidecar.ReloadAsync(Config(set));
        }

        await stop.CancelAsync();
        await Task.WhenAll(workers);
        release.SetResult();
        using var slowResponse = await slow.WaitAsync(TestSidecar.Deadline);

        Assert.Equal(0, failures);
        Assert.True(completed > 0);
        Assert.Equal(HttpStatusCode.OK, slowResponse.StatusCode);
        Assert.Equal("a1", await slowResponse.Content.ReadAsStringAsync());
        foreach (var backend in backends)
        {
            await backend.DisposeAsync();
        }
    }

    [Fact]
    public async Task Reload_InvalidEdit_KeepsLastGoodConfig()
    {
        await using var backend = await TestBackend.StartAsync("good");
        await using var sidecar = await TestSidecar.StartAsync(Config([backend]));
        using var client = Clients.Http1();
        var version = sidecar.State.Current.Version;

        await sidecar.WriteConfigAsync("""{ "listeners": [ { "name": "outbound", "port": 70000 } ], "bogus": 1 }""");
        await WaitForMetricAsync(client, sidecar, "mesh_config_reloads_total{result=\"rejected\"} 1");
        await sidecar.WriteConfigAsync("{ not json");
        await WaitForMetricAsync(client, sidecar, "mesh_config_reloads_total{result=\"rejected\"} 2");

        Assert.Equal(version, sidecar.State.Current.Version);
        using var response = await client.SendAsync(Clients.Get(sidecar.Listener(), "/"));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("good", response.Headers.GetValues("x-backend").Single());

        await using var next = await TestBackend.StartAsync("next");
        await sidecar.ReloadAsync(Config([next]));
        using var after = await client.SendAsync(Clients.Get(sidecar.Listener(), "/"));
        Assert.Equal("next", after.Headers.GetValues("x-backend").Single());
    }

    [Fact]
    public async Task Reload_MalformedEditThenValidEdit_RejectsTheFirstAndAppliesTheSecond()
    {
        await using var first = await TestBackend.StartAsync("first");
        var logs = new LogCapture();
        await using var sidecar = await TestSidecar.StartAsync(Config([first]), logs: logs);
        using var client = Clients.Http1();
        var version = sidecar.State.Current.Version;

        // null where a host name belongs: this edit once killed the watcher without a word, and every later edit was ignored.
        var malformed = JsonSerializer.SerializeToNode(Config([first]))!.AsObject();
        malformed["routes"]![0]!["match"] = new JsonObject { ["hosts"] = new JsonArray((JsonNode?)null) };
        await sidecar.WriteConfigAsync(malformed.ToJsonString());
        await WaitForMetricAsync(client, sidecar, "mesh_config_reloads_total{result=\"rejected\"} 1");

        Assert.Equal(version, sidecar.State.Current.Version);
        var rejected = Assert.Single(logs.WithEvent(2002));
        Assert.Equal("routes[0].match.hosts[0]", rejected.Values["Path"]);
        Assert.Equal("Configuration rejected: routes[0].match.hosts[0]: expected a string, found null", rejected.Message);

        // The next valid edit applies.
        await using var second = await TestBackend.StartAsync("second");
        await sidecar.ReloadAsync(Config([second]));
        using var response = await client.SendAsync(Clients.Get(sidecar.Listener(), "/"));
        Assert.Equal("second", response.Headers.GetValues("x-backend").Single());
    }

    [Fact]
    public async Task Reload_ListenerMoved_EstablishedConnectionKeepsWorking()
    {
        await using var backend = await TestBackend.StartAsync("b");
        await using var sidecar = await TestSidecar.StartAsync(Config([backend]));
        var oldEndpoint = sidecar.Sidecar.EndpointOf("outbound");
        using var established = Clients.Http1();
        using (var first = await established.SendAsync(Clients.Get(sidecar.Listener(), "/")))
        {
            Assert.Equal(HttpStatusCode.OK, first.StatusCode);
        }

        // Move the listener to another loopback address: the old socket stops accepting.
        await sidecar.ReloadAsync(Config([backend], listenerAddress: "127.0.0.2"));
        var newEndpoint = sidecar.Sidecar.EndpointOf("outbound");
        Assert.Equal(IPAddress.Parse("127.0.0.2"), newEndpoint.Address);

        // The keep-alive connection accepted before the move still carries requests.
        using (var again = await established.SendAsync(Clients.Get(new Uri($"http://{oldEndpoint}"), "/")))
        {
            Assert.Equal(HttpStatusCode.OK, again.StatusCode);
        }

        using var fresh = Clients.Http1();
        using (var moved = await fresh.SendAsync(Clients.Get(new Uri($"http://{newEndpoint}"), "/")))
        {
            Assert.Equal(HttpStatusCode.OK, moved.StatusCode);
        }

        using var probe = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        var refused = await Assert.ThrowsAsync<SocketException>(() => probe.ConnectAsync(oldEndpoint));
        Assert.Equal(SocketError.ConnectionRefused, refused.SocketErrorCode);
    }

    [Fact]
    public async Task Reload_ListenerAddedWithRoute_NewListenerServesItsRoute()
    {
        await using var backend = await TestBackend.StartAsync("b");
        await using var sidecar = await TestSidecar.StartAsync(Config([backend]));
        await sidecar.ReloadAsync(Config(
            [backend],
            extraListeners: [new { name = "second", address = "127.0.0.1", port = 0, direction = "outbound", protocol = "http" }],
            extraRoutes: [TestConfig.Route("only-second", "svc", new { path = new { prefix = "/second" } }, new { responseHeaders = new { set = new Dictionary<string, string> { ["x-route"] = "only-second" } } })]));
        using var client = Clients.Http1();
        using var response = await client.SendAsync(Clients.Get(sidecar.Listener("second"), "/second/x"));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("only-second", response.Headers.GetValues("x-route").Single());
    }

    [Fact]
    public async Task Reload_PortTaken_RejectedAndOldListenerKeepsServing()
    {
        await using var backend = await TestBackend.StartAsync("b");
        await using var sidecar = await TestSidecar.StartAsync(Config([backend]));
        using var blocker = new TcpListener(IPAddress.Loopback, 0);
        blocker.Start();
        var taken = ((IPEndPoint)blocker.LocalEndpoint).Port;
        var version = sidecar.State.Current.Version;

        await sidecar.WriteConfigAsync(System.Text.Json.JsonSerializer.Serialize(Config(
            [backend],
            extraListeners: [new { name = "clash", address = "127.0.0.1", port = taken, direction = "outbound", protocol = "http" }])));
        using var client = Clients.Http1();
        await WaitForMetricAsync(client, sidecar, "mesh_config_reloads_total{result=\"rejected\"} 1");

        Assert.Equal(version, sidecar.State.Current.Version);
        Assert.False(sidecar.Sidecar.Listeners.BoundEndpoints.ContainsKey("clash"));
        using var response = await client.SendAsync(Clients.Get(sidecar.Listener(), "/"));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
    }

    // Polls the admin metrics (a signal the sidecar publishes), with a deadline; no fixed sleeps.
    private static async Task WaitForMetricAsync(HttpClient client, TestSidecar sidecar, string line)
    {
        using var deadline = new CancellationTokenSource(TestSidecar.Deadline);
        while (true)
        {
            var metrics = await client.GetStringAsync(new Uri(sidecar.Admin, "/metrics"), deadline.Token);
            if (metrics.Contains(line, StringComparison.Ordinal))
            {
                return;
            }

            await Task.Delay(50, deadline.Token);
        }
    }
}
