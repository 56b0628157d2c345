// Route policies end to end: rate limits, weighted splits, mirroring, fault injection and timeouts.
using System.Net;
using System.Net.Http.Headers;
using System.Text;
using Mesh.FunctionalTests.Infrastructure;
using static Mesh.FunctionalTests.Resilience.ResilienceHarness;

namespace Mesh.FunctionalTests.Resilience;

public sealed class TrafficPolicyTests
{
    /// <summary>A route to <paramref name="service"/> with the properties of <paramref name="extra"/> added (or replacing match).</summary>
    private static Dictionary<string, object> Route(string name, string service, object extra)
    {
        var route = new Dictionary<string, object> { ["name"] = name, ["service"] = service, ["match"] = new { } };
        foreach (var property in extra.GetType().GetProperties())
        {
            route[property.Name] = property.GetValue(extra)!;
        }

        return route;
    }

    [Fact]
    public async Task RateLimit_AdmitsTheConfiguredCountPerWindow_ThenAnswers429WithRetryAfter()
    {
        await using var backend = await OkAsync("b");
        var clock = Clock();
        await using var sidecar = await StartAsync(Config(
            [Route("limited", "api", new { rateLimit = new { key = "header:x-user", rate = 5, burst = 10, periodMs = 2_000 } })],
            new Dictionary<string, object> { ["api"] = new { endpoints = new[] { backend.Endpoint() } } }),
            clock);
        using var client = Clients.Http1();
        async Task<(int Ok, int Limited, string? RetryAfter)> BurstAsync(string user, int count)
        {
            var (ok, limited, retryAfter) = (0, 0, (string?)null);
            for (var i = 0; i < count; i++)
            {
                using var request = Clients.Get(sidecar.Listener(), "/");
                request.Headers.Add("x-user", user);
                using var response = await client.SendAsync(request);
                if (response.StatusCode == HttpStatusCode.TooManyRequests)
                {
                    limited++;
                    retryAfter = response.Headers.RetryAfter?.ToString();
                }
                else
                {
                    Assert.Equal(HttpStatusCode.OK, response.StatusCode);
                    ok++;
                }
            }

            return (ok, limited, retryAfter);
        }

        // A full bucket admits the burst; the rest of the window gets 429 and the seconds to the next refill.
        Assert.Equal((10, 5, "2"), await BurstAsync("alice", 15));
        Assert.Equal((10, 0, null), await BurstAsync("bob", 10));

        // Each period adds the rate.
        clock.Advance(TimeSpan.FromMilliseconds(1_999));
        Assert.Equal((0, 1, "1"), await BurstAsync("alice", 1));
        clock.Advance(TimeSpan.FromMilliseconds(1));
        Assert.Equal((5, 3, "2"), await BurstAsync("alice", 8));
        clock.Advance(TimeSpan.FromMilliseconds(20_000));
        Assert.Equal((10, 1, "2"), await BurstAsync("alice", 11));

        Assert.Equal(35, backend.Hits);
        var metrics = await MetricsAsync(sidecar);
        Assert.Equal(10, Metric(metrics, "mesh_rate_limited_total{route=\"limited\"}"));
        using var admin = Clients.Http1();
        var policies = System.Text.Json.Nodes.JsonNode.Parse(await admin.GetStringAsync(new Uri(sidecar.Admin, "/admin/clusters")))!["routePolicies"]!;
        Assert.Equal("header:x-user", (string?)policies["limited"]!["rateLimit"]!["key"]);
    }

    [Fact]
    public async Task RateLimit_SurvivesAReloadThatKeepsIt()
    {
        await using var backend = await OkAsync("b");
        var clock = Clock();
        object Configured(string path) => Config(
            [Route("limited", "api", new { match = new { path = new { prefix = path } }, rateLimit = new { rate = 3, burst = 3 } })],
            new Dictionary<string, object> { ["api"] = new { endpoints = new[] { backend.Endpoint() } } });
        await using var sidecar = await StartAsync(Configured("/"), clock);
        using var client = Clients.Http1();
        for (var i = 0; i < 3; i++)
        {
            (await client.GetAsync(new Uri(sidecar.Listener(), "/a"))).Dispose();
        }

        await sidecar.ReloadAsync(Configured("/a"));

        using var response = await client.GetAsync(new Uri(sidecar.Listener(), "/a"));
        Assert.Equal(HttpStatusCode.TooManyRequests, response.StatusCode);
    }

    [Fact]
    public async Task Split_90To10BetweenSubsets_Within3PercentOver10000Requests()
    {
        await using var v1 = await OkAsync("v1");
        await using var v2 = await OkAsync("v2");
        await using var sidecar = await StartAsync(Config(
            [new
            {
                name = "canary",
                match = new { },
                split = new object[] { new { service = "api", subset = "v1", weight = 90 }, new { service = "api", subset = "v2", weight = 10 } },
            }],
            new Dictionary<string, object>
            {
                ["api"] = new
                {
                    endpoints = new object[]
                    {
                        new { address = "127.0.0.1", port = v1.Port, tags = new[] { "v1" } },
                        new { address = "127.0.0.1", port = v2.Port, tags = new[] { "v2" } },
                    },
                },
            }));

        var results = await SendManyAsync(sidecar.Listener(), 10_000, parallel: 8);

        Assert.All(results, r => Assert.Equal(HttpStatusCode.OK, r.Status));
        var canary = results.Count(r => r.Backend == "v2");
        Assert.InRange(canary, 700, 1300);
        var metrics = await MetricsAsync(sidecar);
        Assert.Equal(canary, Metric(metrics, "mesh_split_requests_total{route=\"canary\",service=\"api\",subset=\"v2\"}"));
        Assert.Equal(10_000 - canary, Metric(metrics, "mesh_split_requests_total{route=\"canary\",service=\"api\",subset=\"v1\"}"));
        Assert.Equal(10_000, Metric(metrics, "mesh_http_server_requests_total{route=\"canary\",service=\"api\",status_class=\"2xx\"}"));
        using var admin = Clients.Http1();
        var policies = System.Text.Json.Nodes.JsonNode.Parse(await admin.GetStringAsync(new Uri(sidecar.Admin, "/admin/clusters")))!["routePolicies"]!;
        Assert.Equal("v2", (string?)policies["canary"]!["split"]![1]!["subset"]);
        Assert.Equal(10, (int)policies["canary"]!["split"]![1]!["weight"]!);
    }

    [Fact]
    public async Task Split_BetweenServices_FollowsWeights_AndAZeroWeightGetsNothing()
    {
        await using var blue = await OkAsync("blue");
        await using var green = await OkAsync("green");
        await using var grey = await OkAsync("grey");
        await using var sidecar = await StartAsync(Config(
            [new
            {
                name = "bluegreen",
                match = new { },
                split = new object[] { new { service = "blue", weight = 1 }, new { service = "green", weight = 3 }, new { service = "grey", weight = 0 } },
            }],
            new Dictionary<string, object>
            {
                ["blue"] = new { endpoints = new[] { blue.Endpoint() } },
                ["green"] = new { endpoints = new[] { green.Endpoint() } },
                ["grey"] = new { endpoints = new[] { grey.Endpoint() } },
            }));

        var results = await SendManyAsync(sidecar.Listener(), 2000);

        Assert.InRange(results.Count(r => r.Backend == "blue"), 440, 560);
        Assert.InRange(results.Count(r => r.Backend == "green"), 1440, 1560);
        Assert.Equal(0, grey.Hits);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task Mirror_ShadowGetsCopies_ItsFailuresAndDelaysNeverReachTheClient(bool meshClient)
    {
        var copies = new List<(string Method, string Host, string Body)>();
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var primary = await BackendAsync("primary", async context =>
        {
            using var reader = new StreamReader(context.Request.Body);
            await context.Response.WriteAsync("primary:" + await reader.ReadToEndAsync());
        });
        await using var shadow = await BackendAsync("shadow", async context =>
        {
            using var reader = new StreamReader(context.Request.Body);
            var body = await reader.ReadToEndAsync();
            lock (copies)
            {
                copies.Add((context.Request.Method, context.Request.Host.Value ?? "", body));
            }

            // Slow, then failing: held until the test has every client answer, then 2 s more, then 500.
            await release.Task;
            await Task.Delay(2000);
            context.Response.StatusCode = 500;
        });
        await using var sidecar = await StartAsync(Config(
            [Route("mirrored", "api", new { mirror = new { service = "shadow", percent = 100 } })],
            new Dictionary<string, object>
            {
                ["api"] = new { endpoints = new[] { primary.Endpoint() } },
                ["shadow"] = new { endpoints = new[] { shadow.Endpoint() } },
            },
            meshClient));
        using var client = Clients.Http1();

        for (var i = 0; i < 10; i++)
        {
            using var response = await client.PostAsync(new Uri(sidecar.Listener(), "/orders?n=" + i), new StringContent("order " + i, Encoding.UTF8));
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.Equal("primary:order " + i, await response.Content.ReadAsStringAsync());
        }

        // Every client request was answered while all ten copies were still held by the shadow.
        await EndpointStateTests.WaitForAsync(() => Task.FromResult(shadow.Hits == 10));
        release.SetResult();
        await EndpointStateTests.WaitForAsync(async () => Metric(await MetricsAsync(sidecar), "mesh_mirror_requests_total{route=\"mirrored\",service=\"shadow\",result=\"answered\"}") == 10);
        lock (copies)
        {
            Assert.Equal(Enumerable.Range(0, 10).Select(i => "order " + i).Order(), copies.Select(c => c.Body).Order());
            Assert.All(copies, c => Assert.Equal("POST", c.Method));
            Assert.All(copies, c => Assert.StartsWith("127.0.0.1-shadow:", c.Host, StringComparison.Ordinal));
        }

        Assert.Equal(10, primary.Hits);
    }

    [Fact]
    public async Task Mirror_DeadShadow_DoesNotTouchTheClient_AndPercentSamples()
    {
        await using var primary = await OkAsync("primary");
        await using var sidecar = await StartAsync(Config(
            [Route("mirrored", "api", new { mirror = new { service = "shadow", percent = 25 } })],
            new Dictionary<string, object>
            {
                ["api"] = new { endpoints = new[] { primary.Endpoint() } },
                ["shadow"] = new { endpoints = new object[] { new { address = "127.0.0.1", port = RefusingPort() } } },
            }));

        var results = await SendManyAsync(sidecar.Listener(), 400);

        Assert.All(results, r => Assert.Equal(HttpStatusCode.OK, r.Status));
        await EndpointStateTests.WaitForAsync(async () =>
        {
            var metrics = await MetricsAsync(sidecar);
            return Metric(metrics, "mesh_mirror_requests_total{route=\"mirrored\",service=\"shadow\",result=\"failed\"}") is >= 70 and <= 130;
        });
    }

    [Fact]
    public async Task Fault_AbortsAndDelaysAtTheConfiguredRates()
    {
        await using var backend = await OkAsync("b");
        await using var sidecar = await StartAsync(Config(
            [Route("faulty", "api", new { fault = new { abortStatus = 418, abortPercent = 20, delayMs = 1, delayPercent = 30 } })],
            new Dictionary<string, object> { ["api"] = new { endpoints = new[] { backend.Endpoint() } } }));

        var results = await SendManyAsync(sidecar.Listener(), 4000, parallel: 8);

        var aborted = results.Count(r => (int)r.Status == 418);
        Assert.InRange(aborted, 800 - 120, 800 + 120);
        Assert.Equal(4000 - aborted, backend.Hits);
        var metrics = await MetricsAsync(sidecar);
        Assert.Equal(aborted, Metric(metrics, "mesh_faults_injected_total{route=\"faulty\",kind=\"abort\"}"));

        // Delays are drawn for the requests not aborted: 30% of the remaining 80%.
        Assert.InRange(Metric(metrics, "mesh_faults_injected_total{route=\"faulty\",kind=\"delay\"}"), 960 - 120, 960 + 120);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task PerTryTimeout_RetriesUntilTheRouteTimeout_Then504(bool meshClient)
    {
        var hits = 0;
        var arrivals = Enumerable.Range(0, 5).Select(_ => new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).ToArray();
        await using var slow = await BackendAsync("slow", async context =>
        {
            arrivals[Interlocked.Increment(ref hits) - 1].TrySetResult();
            await Task.Delay(Timeout.Infinite, context.RequestAborted);
        });
        var clock = Clock();
        await using var sidecar = await StartAsync(Config(
            [Route("timed", "api", new { timeoutMs = 250 })],
            new Dictionary<string, object>
            {
                ["api"] = new { endpoints = new[] { slow.Endpoint() }, retries = new { attempts = 4, perTryTimeoutMs = 100, backoffBaseMs = 0, budgetPercent = 0 } },
            },
            meshClient),
            clock);
        using var client = Clients.Http1();

        var call = client.GetAsync(new Uri(sidecar.Listener(), "/"));
        await arrivals[0].Task.WaitAsync(TestSidecar.Deadline);
        clock.Advance(TimeSpan.FromMilliseconds(100));
        await arrivals[1].Task.WaitAsync(TestSidecar.Deadline);
        clock.Advance(TimeSpan.FromMilliseconds(100));
        await arrivals[2].Task.WaitAsync(TestSidecar.Deadline);
        clock.Advance(TimeSpan.FromMilliseconds(50));
        using var response = await call.WaitAsync(TestSidecar.Deadline);

        // Three tries of 100 ms fit in 250 ms only partly: the third is cut by the route's timeout.
        Assert.Equal(HttpStatusCode.GatewayTimeout, response.StatusCode);
        Assert.Equal("route 'timed' timed out after 250 ms (timeoutMs)\n", await response.Content.ReadAsStringAsync());
        Assert.Equal(3, hits);
        var metrics = await MetricsAsync(sidecar);
        Assert.Equal(2, Metric(metrics, "mesh_retries_total{service=\"api\",reason=\"per-try-timeout\"}"));
        Assert.Equal(1, Metric(metrics, "mesh_route_timeouts_total{route=\"timed\"}"));
    }

    [Fact]
    public async Task PerTryTimeout_AloneAnswers504NamingIt()
    {
        var arrived = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var slow = await BackendAsync("slow", async context =>
        {
            arrived.TrySetResult();
            await Task.Delay(Timeout.Infinite, context.RequestAborted);
        });
        var clock = Clock();
        await using var sidecar = await StartAsync(Config(
            [TestConfig.Route("all", "api")],
            new Dictionary<string, object> { ["api"] = new { endpoints = new[] { slow.Endpoint() }, retries = new { attempts = 0, perTryTimeoutMs = 100 } } }),
            clock);
        using var client = Clients.Http1();

        var call = client.GetAsync(new Uri(sidecar.Listener(), "/"));
        await arrived.Task.WaitAsync(TestSidecar.Deadline);
        clock.Advance(TimeSpan.FromMilliseconds(100));
        using var response = await call.WaitAsync(TestSidecar.Deadline);

        Assert.Equal(HttpStatusCode.GatewayTimeout, response.StatusCode);
    }

    [Fact]
    public async Task RouteTimeout_ShorterGrpcTimeoutWins()
    {
        var arrived = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var slow = await TestBackend.StartAsync("slow", Microsoft.AspNetCore.Server.Kestrel.Core.HttpProtocols.Http2, configure: app => app.Run(async context =>
        {
            arrived.TrySetResult();
            await Task.Delay(Timeout.Infinite, context.RequestAborted);
        }));
        var clock = Clock();
        await using var sidecar = await StartAsync(Config(
            [Route("grpc", "api", new { timeoutMs = 10_000 })],
            new Dictionary<string, object> { ["api"] = new { endpoints = new[] { slow.Endpoint() }, protocol = "http2" } }),
            clock);
        using var client = Clients.Http2();
        using var request = new HttpRequestMessage(HttpMethod.Post, new Uri(sidecar.Listener(), "/echo.Echo/Say"))
        {
            Version = HttpVersion.Version20,
            VersionPolicy = HttpVersionPolicy.RequestVersionExact,
            Content = new ByteArrayContent([0, 0, 0, 0, 0]),
        };
        request.Content.Headers.ContentType = new MediaTypeHeaderValue("application/grpc");
        request.Headers.Add("grpc-timeout", "100m");
        request.Headers.TryAddWithoutValidation("te", "trailers");

        var call = client.SendAsync(request);
        await arrived.Task.WaitAsync(TestSidecar.Deadline);
        clock.Advance(TimeSpan.FromMilliseconds(100));
        using var response = await call.WaitAsync(TestSidecar.Deadline);

        // gRPC's answer to a missed deadline: DEADLINE_EXCEEDED (4), trailers-only.
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("4", response.Headers.GetValues("grpc-status").Single());
    }
}
