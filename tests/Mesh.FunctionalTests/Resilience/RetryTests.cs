// Retries end to end: flaky backends, other endpoints, non-idempotent methods, the budget and bodies, on both upstream clients.
using System.Net;
using System.Text;
using Mesh.FunctionalTests.Infrastructure;
using static Mesh.FunctionalTests.Resilience.ResilienceHarness;

namespace Mesh.FunctionalTests.Resilience;

public sealed class RetryTests
{
    /// <summary>Fails a seeded 30% of requests, half with 503 and half by dropping the connection before answering.</summary>
    private static Task<TestBackend> FlakyAsync(string name, int seed)
    {
        var random = new Random(seed);
        return BackendAsync(name, context =>
        {
            double draw;
            lock (random)
            {
                draw = random.NextDouble();
            }

            if (draw < 0.15)
            {
                context.Response.StatusCode = 503;
                return context.Response.WriteAsync("flaky says no");
            }

            if (draw < 0.30)
            {
                context.Abort();
                return Task.CompletedTask;
            }

            return context.Response.WriteAsync("ok");
        });
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task Retries_OneOfTwoEndpointsFailing30Percent_ClientsSeeAtLeast999PerMille(bool meshClient)
    {
        // The defaults: two retries, a 20% budget. Each retry goes to the other, healthy endpoint.
        await using var flaky = await FlakyAsync("flaky", seed: 1);
        await using var good = await OkAsync("good");
        await using var sidecar = await StartAsync(Config(
            [TestConfig.Route("all", "api")],
            new Dictionary<string, object> { ["api"] = new { endpoints = new[] { flaky.Endpoint(), good.Endpoint() }, retries = new { } } },
            meshClient));

        var results = await SendManyAsync(sidecar.Listener(), 2000);

        var ok = results.Count(r => r.Status == HttpStatusCode.OK);
        Assert.True(ok >= 1998, $"{ok} of 2000 succeeded; statuses: {string.Join(", ", results.Where(r => r.Status != HttpStatusCode.OK).Select(r => r.Status))}");
        var metrics = await MetricsAsync(sidecar);
        Assert.True(Metric(metrics, "mesh_retries_total{service=\"api\",reason=\"503\"}") > 0, metrics);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task Retries_SingleEndpointFailing30Percent_ClientsSeeAtLeast999PerMille(bool meshClient)
    {
        // One backend: 99.9% needs six retries on average (0.3^7 is about 2 in 10,000); nine leave a
        // statistical test no room to flake (0.3^10: about 1 in 170,000 requests fails).
        await using var flaky = await FlakyAsync("flaky", seed: 2);
        await using var sidecar = await StartAsync(Config(
            [TestConfig.Route("all", "api")],
            new Dictionary<string, object>
            {
                ["api"] = new { endpoints = new[] { flaky.Endpoint() }, retries = new { attempts = 9, budgetPercent = 0, backoffBaseMs = 1, backoffMaxMs = 5 } },
            },
            meshClient));

        var results = await SendManyAsync(sidecar.Listener(), 2000);

        var ok = results.Count(r => r.Status == HttpStatusCode.OK);
        Assert.True(ok >= 1998, $"{ok} of 2000 succeeded; statuses: {string.Join(", ", results.Where(r => r.Status != HttpStatusCode.OK).Select(r => r.Status))}");
        var metrics = await MetricsAsync(sidecar);
        Assert.True(Metric(metrics, "mesh_retries_total{service=\"api\",reason=\"503\"}") > 0, metrics);
        // The flaky backend cuts connections after accepting them: both paths call that a reset, not a failed connect.
        Assert.True(Metric(metrics, "mesh_retries_total{service=\"api\",reason=\"reset\"}") > 0, metrics);
        Assert.Equal(0, Metric(metrics, "mesh_retries_total{service=\"api\",reason=\"connect-failure\"}"));
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task Retries_EveryEndpointFailing_EachTryGoesToAnotherEndpoint(bool meshClient)
    {
        var hits = new List<string>();
        Func<HttpContext, Task> fail(string name) => context =>
        {
            lock (hits)
            {
                hits.Add(name);
            }

            context.Response.StatusCode = 502;
            return context.Response.WriteAsync(new string('x', 100_000));
        };
        await using var a = await BackendAsync("a", fail("a"));
        await using var b = await BackendAsync("b", fail("b"));
        await using var c = await BackendAsync("c", fail("c"));
        await using var sidecar = await StartAsync(Config(
            [TestConfig.Route("all", "api")],
            new Dictionary<string, object> { ["api"] = new { endpoints = new[] { a.Endpoint(), b.Endpoint(), c.Endpoint() }, retries = new { budgetPercent = 0 } } },
            meshClient));
        using var client = Clients.Http1();

        for (var i = 0; i < 5; i++)
        {
            using var response = await client.GetAsync(new Uri(sidecar.Listener(), "/"));

            // The last try's answer reaches the client whole; the held ones never do.
            Assert.Equal(HttpStatusCode.BadGateway, response.StatusCode);
            Assert.Equal(100_000, (await response.Content.ReadAsByteArrayAsync()).Length);
        }

        Assert.Equal(15, hits.Count);
        for (var i = 0; i < 5; i++)
        {
            Assert.Equal(3, hits.Skip(i * 3).Take(3).Distinct().Count());
        }
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task Retries_RefusedConnect_RetriedAsConnectFailure(bool meshClient)
    {
        // Both clients tell a refused connect from a reset, so the metric names it on either path.
        using var dead = new System.Net.Sockets.Socket(System.Net.Sockets.AddressFamily.InterNetwork, System.Net.Sockets.SocketType.Stream, System.Net.Sockets.ProtocolType.Tcp);
        dead.Bind(new System.Net.IPEndPoint(System.Net.IPAddress.Loopback, 0));
        var deadPort = ((System.Net.IPEndPoint)dead.LocalEndPoint!).Port;
        await using var live = await OkAsync("live");
        await using var sidecar = await StartAsync(Config(
            [TestConfig.Route("all", "api")],
            new Dictionary<string, object>
            {
                ["api"] = new { endpoints = new object[] { new { address = "127.0.0.1", port = deadPort }, live.Endpoint() }, retries = new { backoffBaseMs = 0, budgetPercent = 0 } },
            },
            meshClient));
        using var client = Clients.Http1();

        for (var i = 0; i < 10; i++)
        {
            using var response = await client.GetAsync(new Uri(sidecar.Listener(), "/"));
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        }

        var metrics = await MetricsAsync(sidecar);
        Assert.True(Metric(metrics, "mesh_retries_total{service=\"api\",reason=\"connect-failure\"}") > 0, metrics);
        Assert.Equal(0, Metric(metrics, "mesh_retries_total{service=\"api\",reason=\"reset\"}"));
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task Retries_Post_NotRetriedUnlessNonIdempotent(bool meshClient)
    {
        var bodies = new List<string>();
        await using var backend = await BackendAsync("b", async context =>
        {
            using var reader = new StreamReader(context.Request.Body);
            var body = await reader.ReadToEndAsync();
            lock (bodies)
            {
                bodies.Add(body);
            }

            context.Response.StatusCode = bodies.Count % 3 == 0 ? 200 : 503;
            await context.Response.WriteAsync(body.Length.ToString(System.Globalization.CultureInfo.InvariantCulture));
        });
        object Services(bool nonIdempotent) => new Dictionary<string, object>
        {
            ["api"] = new { endpoints = new[] { backend.Endpoint() }, retries = new { nonIdempotent, backoffBaseMs = 0, budgetPercent = 0 } },
        };
        await using var sidecar = await StartAsync(Config([TestConfig.Route("all", "api")], (IReadOnlyDictionary<string, object>)Services(false), meshClient));
        using var client = Clients.Http1();
        var payload = new string('p', 20_000);

        using (var response = await client.PostAsync(new Uri(sidecar.Listener(), "/"), new StringContent(payload, Encoding.UTF8)))
        {
            Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
        }

        Assert.Single(bodies);

        await sidecar.ReloadAsync(Config([TestConfig.Route("all", "api")], (IReadOnlyDictionary<string, object>)Services(true), meshClient));
        bodies.Clear();
        using (var response = await client.PostAsync(new Uri(sidecar.Listener(), "/"), new StringContent(payload, Encoding.UTF8)))
        {
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        }

        // Three tries, each with the whole body replayed.
        Assert.Equal(3, bodies.Count);
        Assert.All(bodies, body => Assert.Equal(payload, body));
    }

    [Fact]
    public async Task Retries_BodyOverMaxBodyBytes_NotRetried()
    {
        var hits = 0;
        await using var backend = await BackendAsync("b", async context =>
        {
            Interlocked.Increment(ref hits);
            await context.Request.Body.CopyToAsync(Stream.Null);
            context.Response.StatusCode = 503;
        });
        await using var sidecar = await StartAsync(Config(
            [TestConfig.Route("all", "api")],
            new Dictionary<string, object> { ["api"] = new { endpoints = new[] { backend.Endpoint() }, retries = new { maxBodyBytes = 1000, budgetPercent = 0, backoffBaseMs = 0 } } }));
        using var client = Clients.Http1();

        using (var small = await client.PutAsync(new Uri(sidecar.Listener(), "/"), new ByteArrayContent(new byte[1000])))
        {
            Assert.Equal(HttpStatusCode.ServiceUnavailable, small.StatusCode);
        }

        Assert.Equal(3, hits);
        using (var large = await client.PutAsync(new Uri(sidecar.Listener(), "/"), new ByteArrayContent(new byte[1001])))
        {
            Assert.Equal(HttpStatusCode.ServiceUnavailable, large.StatusCode);
        }

        Assert.Equal(4, hits);
    }

    [Fact]
    public async Task Retries_EveryEndpointFailing_BudgetCapsRetries()
    {
        // On a fake clock the budget's 10 s window never slides: retries stay within 20% of requests
        // (the floor of 100 per window is below that from 500 requests on).
        var hits = 0;
        await using var a = await BackendAsync("a", context =>
        {
            Interlocked.Increment(ref hits);
            context.Response.StatusCode = 503;
            return Task.CompletedTask;
        });
        await using var b = await BackendAsync("b", context =>
        {
            Interlocked.Increment(ref hits);
            context.Response.StatusCode = 503;
            return Task.CompletedTask;
        });
        var clock = Clock();
        await using var sidecar = await StartAsync(Config(
            [TestConfig.Route("all", "api")],
            new Dictionary<string, object> { ["api"] = new { endpoints = new[] { a.Endpoint(), b.Endpoint() }, retries = new { attempts = 2, budgetPercent = 20, backoffBaseMs = 0 } } }),
            clock);

        var results = await SendManyAsync(sidecar.Listener(), 2000);

        Assert.All(results, r => Assert.Equal(HttpStatusCode.ServiceUnavailable, r.Status));
        var retries = hits - 2000;
        Assert.InRange(retries, 390, 400 + 4);
        var metrics = await MetricsAsync(sidecar);
        Assert.Equal(retries, Metric(metrics, "mesh_retries_total{service=\"api\",reason=\"503\"}"));
        Assert.True(Metric(metrics, "mesh_retry_budget_exhausted_total{service=\"api\"}") >= 1500, metrics);
    }
}
