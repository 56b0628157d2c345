// Outlier ejection (L7 and L4 connects), circuit breakers and concurrency limits, each seen by clients, in /admin/clusters and in metrics.
using System.Net;
using System.Net.Sockets;
using Mesh.FunctionalTests.Infrastructure;
using static Mesh.FunctionalTests.Resilience.ResilienceHarness;

namespace Mesh.FunctionalTests.Resilience;

public sealed class EndpointStateTests
{
    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task Outlier_DeadEndpoint_EjectedWithinFiveRequests_ReadmittedAfterItRecovers(bool meshClient)
    {
        var dead = 1;
        var deadHits = 0;
        await using var flaky = await BackendAsync("flaky", context =>
        {
            Interlocked.Increment(ref deadHits);
            if (Volatile.Read(ref dead) == 1)
            {
                // Gone mid-request, as a crashing process is.
                context.Abort();
                return Task.CompletedTask;
            }

            return context.Response.WriteAsync("back");
        });
        await using var good = await OkAsync("good");
        var clock = Clock();
        await using var sidecar = await StartAsync(Config(
            [TestConfig.Route("all", "api")],
            new Dictionary<string, object>
            {
                ["api"] = new { endpoints = new[] { flaky.Endpoint(), good.Endpoint() }, outlierDetection = new { consecutiveFailures = 5, baseEjectionMs = 30_000, maxEjectionPercent = 50 } },
            },
            meshClient),
            clock);

        var first = await SendManyAsync(sidecar.Listener(), 40, parallel: 1);

        // Mesh's own client retries a request once on a fresh connection when a pooled one dies, so 5 failures may cost up to 10 hits.
        Assert.Equal(5, first.Count(r => r.Status != HttpStatusCode.OK));
        Assert.InRange(deadHits, 5, 10);
        var entry = await EndpointAsync(sidecar, "api", flaky.Port);
        Assert.Equal("ejected", (string?)entry["health"]);
        Assert.Equal(clock.GetUtcNow().AddMilliseconds(30_000), DateTimeOffset.Parse((string)entry["ejectedUntil"]!, System.Globalization.CultureInfo.InvariantCulture));
        var metrics = await MetricsAsync(sidecar);
        Assert.Equal(1, Metric(metrics, $"mesh_outlier_ejections_total{{service=\"api\",endpoint=\"127.0.0.1:{flaky.Port}\",action=\"ejected\"}}"));

        // The endpoint recovers; after the ejection period it is readmitted and takes traffic again.
        Volatile.Write(ref dead, 0);
        var before = deadHits;
        clock.Advance(TimeSpan.FromMilliseconds(30_000));
        Assert.Equal("healthy", (string?)(await EndpointAsync(sidecar, "api", flaky.Port))["health"]);
        var after = await SendManyAsync(sidecar.Listener(), 20, parallel: 1);
        Assert.All(after, r => Assert.Equal(HttpStatusCode.OK, r.Status));
        Assert.Equal(10, after.Count(r => r.Backend == "flaky"));
        Assert.Equal(before + 10, deadHits);
    }

    [Fact]
    public async Task Outlier_EjectedAgainAfterReadmission_LastsTwiceAsLong()
    {
        var refusing = RefusingPort();
        await using var good = await OkAsync("good");
        var clock = Clock();
        await using var sidecar = await StartAsync(Config(
            [TestConfig.Route("all", "api")],
            new Dictionary<string, object>
            {
                ["api"] = new
                {
                    endpoints = new object[] { new { address = "127.0.0.1", port = refusing }, good.Endpoint() },
                    outlierDetection = new { consecutiveFailures = 2, baseEjectionMs = 1000, maxEjectionPercent = 50 },
                },
            }),
            clock);
        async Task<DateTimeOffset?> EjectedUntilAsync()
        {
            var until = (string?)(await EndpointAsync(sidecar, "api", refusing))["ejectedUntil"];
            return until is null ? null : DateTimeOffset.Parse(until, System.Globalization.CultureInfo.InvariantCulture);
        }

        // Round robin: the refusing endpoint gets requests 1 and 3, then it is out.
        var first = await SendManyAsync(sidecar.Listener(), 10, parallel: 1);
        Assert.Equal(2, first.Count(r => r.Status != HttpStatusCode.OK));
        Assert.Equal(clock.GetUtcNow().AddMilliseconds(1000), await EjectedUntilAsync());

        clock.Advance(TimeSpan.FromMilliseconds(1000));
        Assert.Null(await EjectedUntilAsync());

        // Back in rotation and still refusing: ejected again, for two base periods.
        var second = await SendManyAsync(sidecar.Listener(), 10, parallel: 1);
        Assert.Equal(2, second.Count(r => r.Status != HttpStatusCode.OK));
        Assert.Equal(clock.GetUtcNow().AddMilliseconds(2000), await EjectedUntilAsync());
        var metrics = await MetricsAsync(sidecar);
        Assert.Equal(2, Metric(metrics, $"mesh_outlier_ejections_total{{service=\"api\",endpoint=\"127.0.0.1:{refusing}\",action=\"ejected\"}}"));
        Assert.Equal(1, Metric(metrics, $"mesh_outlier_ejections_total{{service=\"api\",endpoint=\"127.0.0.1:{refusing}\",action=\"readmitted\"}}"));
    }

    [Fact]
    public async Task Outlier_NeverEjectsMoreThanMaxEjectionPercent()
    {
        var refusing = RefusingPort();
        var refusingToo = RefusingPort();
        await using var good = await OkAsync("good");
        await using var sidecar = await StartAsync(Config(
            [TestConfig.Route("all", "api")],
            new Dictionary<string, object>
            {
                ["api"] = new
                {
                    endpoints = new object[] { new { address = "127.0.0.1", port = refusing }, new { address = "127.0.0.1", port = refusingToo }, good.Endpoint() },
                    outlierDetection = new { consecutiveFailures = 2, baseEjectionMs = 60_000, maxEjectionPercent = 34 },
                },
            }),
            Clock());

        await SendManyAsync(sidecar.Listener(), 30, parallel: 1);

        // 34% of three endpoints is one: the second refusing endpoint keeps its place.
        var cluster = await ClusterAsync(sidecar, "api");
        Assert.Equal(1, cluster["endpoints"]!.AsArray().Count(e => (string?)e!["health"] == "ejected"));
        Assert.Equal(1, (int)cluster["resilience"]!["outlierDetection"]!["ejected"]!);
        Assert.Equal(2, (int)cluster["resilience"]!["available"]!);
        var metrics = await MetricsAsync(sidecar);
        Assert.Contains("action=\"skipped-max-percent\"", metrics, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Outlier_L4ConnectFailures_EjectTheEndpoint()
    {
        var refusing = RefusingPort();
        using var echo = new TcpListener(IPAddress.Loopback, 0);
        echo.Start();
        var echoPort = ((IPEndPoint)echo.LocalEndpoint).Port;
        using var stop = new CancellationTokenSource();
        var server = Task.Run(async () =>
        {
            while (!stop.IsCancellationRequested)
            {
                var socket = await echo.AcceptSocketAsync(stop.Token);
                _ = Task.Run(async () =>
                {
                    using (socket)
                    {
                        var buffer = new byte[16];
                        var read = await socket.ReceiveAsync(buffer);
                        await socket.SendAsync(buffer.AsMemory(0, read));
                    }
                });
            }
        });
        var clock = Clock();
        await using var sidecar = await StartAsync(new
        {
            service = new { name = "client", address = "127.0.0.1", port = 0 },
            admin = new { address = "127.0.0.1", port = 0 },
            listeners = new object[] { new { name = "tcp", address = "127.0.0.1", port = 0, direction = "outbound", protocol = "tcp", service = "db" } },
            services = new Dictionary<string, object>
            {
                ["db"] = new
                {
                    endpoints = new object[] { new { address = "127.0.0.1", port = refusing }, new { address = "127.0.0.1", port = echoPort } },
                    loadBalancing = new { policy = "round-robin" },
                    outlierDetection = new { consecutiveFailures = 3, baseEjectionMs = 60_000 },
                },
            },
            logging = new { level = "Warning" },
        },
            clock);

        for (var i = 0; i < 8; i++)
        {
            using var client = new TcpClient();
            await client.ConnectAsync(sidecar.Sidecar.EndpointOf("tcp"));
            var stream = client.GetStream();
            await stream.WriteAsync("ping"u8.ToArray());
            var reply = new byte[4];
            await stream.ReadExactlyAsync(reply);
            Assert.Equal("ping"u8.ToArray(), reply);
        }

        var entry = await EndpointAsync(sidecar, "db", refusing);
        Assert.Equal("ejected", (string?)entry["health"]);
        var metrics = await MetricsAsync(sidecar);
        Assert.Equal(3, Metric(metrics, "mesh_l4_connect_failures_total{listener=\"tcp\",service=\"db\"}"));
        await stop.CancelAsync();
        echo.Stop();
        await Assert.ThrowsAnyAsync<Exception>(() => server);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task Breaker_OpensHalfOpensAndCloses(bool meshClient)
    {
        var failing = 1;
        await using var backend = await BackendAsync("b", context =>
        {
            context.Response.StatusCode = Volatile.Read(ref failing) == 1 ? 500 : 200;
            return Task.CompletedTask;
        });
        var clock = Clock();
        await using var sidecar = await StartAsync(Config(
            [TestConfig.Route("all", "api")],
            new Dictionary<string, object>
            {
                ["api"] = new { endpoints = new[] { backend.Endpoint() }, circuitBreaker = new { failureRatio = 0.5, minimumThroughput = 4, samplingMs = 10_000, breakMs = 5_000 } },
            },
            meshClient),
            clock);
        using var client = Clients.Http1();
        async Task<HttpStatusCode> GetAsync()
        {
            using var response = await client.GetAsync(new Uri(sidecar.Listener(), "/"));
            return response.StatusCode;
        }

        for (var i = 0; i < 4; i++)
        {
            Assert.Equal(HttpStatusCode.InternalServerError, await GetAsync());
        }

        // Open: the endpoint is out, requests fail fast without reaching it.
        Assert.Equal("open", (string?)(await EndpointAsync(sidecar, "api", backend.Port))["breaker"]);
        Assert.Equal("breaker-open", (string?)(await EndpointAsync(sidecar, "api", backend.Port))["health"]);
        Assert.Equal(HttpStatusCode.ServiceUnavailable, await GetAsync());
        Assert.Equal(4, backend.Hits);

        // After the break one probe goes through (half-open); it succeeds and the breaker closes.
        Volatile.Write(ref failing, 0);
        clock.Advance(TimeSpan.FromMilliseconds(5_000));
        Assert.Equal("half-open", (string?)(await EndpointAsync(sidecar, "api", backend.Port))["breaker"]);
        Assert.Equal(HttpStatusCode.OK, await GetAsync());
        Assert.Equal("closed", (string?)(await EndpointAsync(sidecar, "api", backend.Port))["breaker"]);
        Assert.Equal(HttpStatusCode.OK, await GetAsync());
        var metrics = await MetricsAsync(sidecar);
        var endpoint = $"127.0.0.1:{backend.Port}";
        Assert.Equal(1, Metric(metrics, $"mesh_circuit_breaker_transitions_total{{service=\"api\",endpoint=\"{endpoint}\",state=\"open\"}}"));
        Assert.Equal(1, Metric(metrics, $"mesh_circuit_breaker_transitions_total{{service=\"api\",endpoint=\"{endpoint}\",state=\"half-open\"}}"));
        Assert.Equal(1, Metric(metrics, $"mesh_circuit_breaker_transitions_total{{service=\"api\",endpoint=\"{endpoint}\",state=\"closed\"}}"));
    }

    [Fact]
    public async Task Breaker_FailedProbe_OpensAgain()
    {
        await using var backend = await BackendAsync("b", context =>
        {
            context.Response.StatusCode = 503;
            return Task.CompletedTask;
        });
        var clock = Clock();
        await using var sidecar = await StartAsync(Config(
            [TestConfig.Route("all", "api")],
            new Dictionary<string, object> { ["api"] = new { endpoints = new[] { backend.Endpoint() }, circuitBreaker = new { minimumThroughput = 2, breakMs = 1_000 } } }),
            clock);
        using var client = Clients.Http1();
        for (var i = 0; i < 2; i++)
        {
            (await client.GetAsync(new Uri(sidecar.Listener(), "/"))).Dispose();
        }

        clock.Advance(TimeSpan.FromMilliseconds(1_000));
        (await client.GetAsync(new Uri(sidecar.Listener(), "/"))).Dispose();

        Assert.Equal(3, backend.Hits);
        Assert.Equal("open", (string?)(await EndpointAsync(sidecar, "api", backend.Port))["breaker"]);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task ConcurrencyLimit_ExcessGets503NamingTheLimit_PendingWaitsForASlot(bool meshClient)
    {
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var arrived = 0;
        var twoArrived = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var backend = await BackendAsync("b", async context =>
        {
            if (Interlocked.Increment(ref arrived) == 2)
            {
                twoArrived.TrySetResult();
            }

            await release.Task;
            await context.Response.WriteAsync("done");
        });
        await using var sidecar = await StartAsync(Config(
            [TestConfig.Route("all", "api")],
            new Dictionary<string, object>
            {
                ["api"] = new { endpoints = new[] { backend.Endpoint() }, circuitBreaker = new { maxConcurrentRequests = 2, maxPendingRequests = 1, failureRatio = 0 } },
            },
            meshClient));
        using var client = Clients.Http1();
        var held = new[] { client.GetAsync(new Uri(sidecar.Listener(), "/")), client.GetAsync(new Uri(sidecar.Listener(), "/")) };
        await twoArrived.Task.WaitAsync(TestSidecar.Deadline);
        var pending = client.GetAsync(new Uri(sidecar.Listener(), "/"));
        await WaitForAsync(async () => (int?)(await ClusterAsync(sidecar, "api"))["resilience"]!["circuitBreaker"]!["pending"] == 1);

        using (var refused = await client.GetAsync(new Uri(sidecar.Listener(), "/")))
        {
            Assert.Equal(HttpStatusCode.ServiceUnavailable, refused.StatusCode);
            Assert.Contains("maxPendingRequests", await refused.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        }

        release.SetResult();
        foreach (var response in await Task.WhenAll([.. held, pending]))
        {
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            response.Dispose();
        }

        Assert.Equal(3, backend.Hits);
        var metrics = await MetricsAsync(sidecar);
        Assert.Equal(1, Metric(metrics, "mesh_circuit_breaker_rejections_total{service=\"api\",limit=\"max-pending-requests\"}"));
    }

    [Fact]
    public async Task ConcurrencyLimit_NoQueue_RefusesAtOnce()
    {
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var arrived = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var backend = await BackendAsync("b", async context =>
        {
            arrived.TrySetResult();
            await release.Task;
        });
        await using var sidecar = await StartAsync(Config(
            [TestConfig.Route("all", "api")],
            new Dictionary<string, object> { ["api"] = new { endpoints = new[] { backend.Endpoint() }, circuitBreaker = new { maxConcurrentRequests = 1 } } }));
        using var client = Clients.Http1();
        var held = client.GetAsync(new Uri(sidecar.Listener(), "/"));
        await arrived.Task.WaitAsync(TestSidecar.Deadline);

        using (var refused = await client.GetAsync(new Uri(sidecar.Listener(), "/")))
        {
            Assert.Equal(HttpStatusCode.ServiceUnavailable, refused.StatusCode);
            Assert.Equal("service 'api' is at its limit of 1 concurrent requests (circuitBreaker.maxConcurrentRequests)\n", await refused.Content.ReadAsStringAsync());
        }

        release.SetResult();
        (await held).Dispose();
    }

    /// <summary>Polls an admin condition until it holds (the queue has no event to wait on), within the test deadline.</summary>
    internal static async Task WaitForAsync(Func<Task<bool>> condition)
    {
        using var deadline = new CancellationTokenSource(TestSidecar.Deadline);
        while (!await condition())
        {
            await Task.Delay(20, deadline.Token);
        }
    }
}
