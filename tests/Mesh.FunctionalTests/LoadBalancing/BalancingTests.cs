// Per-request balancing over one HTTP/2 connection, and each policy end to end through the sidecar.
using System.Net;
using Mesh.FunctionalTests.Infrastructure;
using Microsoft.AspNetCore.Server.Kestrel.Core;

namespace Mesh.FunctionalTests.LoadBalancing;

public sealed class BalancingTests
{
    private static async Task<TestBackend[]> StartBackendsAsync(int count, string prefix = "b")
    {
        var backends = new TestBackend[count];
        for (var i = 0; i < count; i++)
        {
            backends[i] = await TestBackend.StartAsync($"{prefix}{i + 1}");
        }

        return backends;
    }

    private static async Task DisposeAllAsync(IEnumerable<TestBackend> backends)
    {
        foreach (var backend in backends)
        {
            await backend.DisposeAsync();
        }
    }

    private static async Task<Dictionary<string, int>> CountAsync(HttpClient client, Uri listener, int requests, Func<int, HttpRequestMessage>? build = null)
    {
        var counts = new Dictionary<string, int>(StringComparer.Ordinal);
        for (var i = 0; i < requests; i++)
        {
            using var request = build?.Invoke(i) ?? Clients.Get(listener, "/");
            using var response = await client.SendAsync(request);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            var backend = response.Headers.GetValues("x-backend").Single();
            counts[backend] = counts.GetValueOrDefault(backend) + 1;
        }

        return counts;
    }

    [Fact]
    public async Task RoundRobin_OneHttp2Connection_SpreadsRequestsOverEveryEndpoint()
    {
        var backends = await StartBackendsAsync(3);
        await using var sidecar = await TestSidecar.StartAsync(TestConfig.Outbound(
            [TestConfig.Route("all", "svc")],
            new Dictionary<string, object> { ["svc"] = TestConfig.Service(backends) }));
        using var client = Clients.Http2();

        var counts = new Dictionary<string, int>(StringComparer.Ordinal);
        for (var i = 0; i < 300; i++)
        {
            using var response = await client.SendAsync(Clients.Get(sidecar.Listener(), "/", http2: true));
            Assert.Equal(new Version(2, 0), response.Version);
            var backend = response.Headers.GetValues("x-backend").Single();
            counts[backend] = counts.GetValueOrDefault(backend) + 1;
        }

        // The concept note's "L4 in front of HTTP/2" mistake would put all 300 on one endpoint.
        Assert.Equal(3, counts.Count);
        Assert.All(counts.Values, count => Assert.InRange(count, 90, 110));
        using var admin = Clients.Http1();
        var metrics = await admin.GetStringAsync(new Uri(sidecar.Admin, "/metrics"));
        Assert.Contains("mesh_connections_accepted_total{listener=\"outbound\",protocol=\"http2\"} 1\n", metrics, StringComparison.Ordinal);
        await DisposeAllAsync(backends);
    }

    [Fact]
    public async Task Weighted_RoundRobin_FollowsWeights()
    {
        var backends = await StartBackendsAsync(2);
        await using var sidecar = await TestSidecar.StartAsync(TestConfig.Outbound(
            [TestConfig.Route("all", "svc")],
            new Dictionary<string, object>
            {
                ["svc"] = new { endpoints = new[] { backends[0].Endpoint(weight: 3), backends[1].Endpoint(weight: 1) } },
            }));
        using var client = Clients.Http1();
        var counts = await CountAsync(client, sidecar.Listener(), 200);
        Assert.Equal(150, counts["b1"]);
        Assert.Equal(50, counts["b2"]);
        await DisposeAllAsync(backends);
    }

    [Theory]
    [InlineData("random")]
    [InlineData("least-requests")]
    [InlineData("power-of-two-choices")]
    public async Task Policy_SequentialRequests_ReachEveryEndpoint(string policy)
    {
        var backends = await StartBackendsAsync(3);
        await using var sidecar = await TestSidecar.StartAsync(TestConfig.Outbound(
            [TestConfig.Route("all", "svc")],
            new Dictionary<string, object> { ["svc"] = TestConfig.Service(backends, policy) }));
        using var client = Clients.Http1();
        var counts = await CountAsync(client, sidecar.Listener(), 150);
        Assert.Equal(3, counts.Count);
        Assert.All(counts.Values, count => Assert.InRange(count, 15, 100));
        await DisposeAllAsync(backends);
    }

    [Fact]
    public async Task LeastRequests_SlowEndpointBusy_NewRequestsGoToIdleEndpoints()
    {
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var slowEntered = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var slow = await TestBackend.StartAsync("slow", configure: app => app.Run(async context =>
        {
            slowEntered.TrySetResult();
            await release.Task;
            await context.Response.WriteAsync("slow");
        }));
        var fast = await StartBackendsAsync(2, "fast");
        await using var sidecar = await TestSidecar.StartAsync(TestConfig.Outbound(
            [TestConfig.Route("all", "svc")],
            new Dictionary<string, object> { ["svc"] = TestConfig.Service([slow, .. fast], "least-requests") }));
        using var client = Clients.Http1();

        // Keep sending until one request is parked on the slow endpoint.
        var parked = new List<Task<HttpResponseMessage>>();
        for (var i = 0; i < 3 && !slowEntered.Task.IsCompleted; i++)
        {
            parked.Add(client.SendAsync(Clients.Get(sidecar.Listener(), "/")));
            await Task.WhenAny(slowEntered.Task, Task.WhenAll(parked.Where(t => !t.IsCompleted)));
        }

        await slowEntered.Task.WaitAsync(TestSidecar.Deadline);
        var counts = await CountAsync(client, sidecar.Listener(), 40);
        Assert.False(counts.ContainsKey("slow"));
        release.SetResult();
        foreach (var response in await Task.WhenAll(parked))
        {
            response.Dispose();
        }

        await slow.DisposeAsync();
        await DisposeAllAsync(fast);
    }

    [Theory]
    [InlineData("header")]
    [InlineData("cookie")]
    public async Task ConsistentHash_SameKey_AlwaysSameEndpoint(string source)
    {
        var backends = await StartBackendsAsync(4);
        await using var sidecar = await TestSidecar.StartAsync(TestConfig.Outbound(
            [TestConfig.Route("all", "svc")],
            new Dictionary<string, object> { ["svc"] = TestConfig.Service(backends, "consistent-hash", new { source, name = "x-user" }) }));
        using var client = Clients.Http1();

        HttpRequestMessage Build(int i, string user)
        {
            var request = Clients.Get(sidecar.Listener(), "/");
            request.Headers.TryAddWithoutValidation(source == "header" ? "x-user" : "Cookie", source == "header" ? user : $"x-user={user}");
            return request;
        }

        var owners = new HashSet<string>(StringComparer.Ordinal);
        for (var user = 0; user < 40; user++)
        {
            var counts = await CountAsync(client, sidecar.Listener(), 5, i => Build(i, $"user-{user}"));
            Assert.Single(counts);
            owners.Add(counts.Keys.Single());
        }

        Assert.True(owners.Count >= 3, $"40 keys landed on only {owners.Count} of 4 endpoints");
        await DisposeAllAsync(backends);
    }

    [Fact]
    public async Task ConsistentHash_EndpointAddedByReload_MovesAboutOneNthOfKeys()
    {
        var backends = await StartBackendsAsync(5);
        object Config(IEnumerable<TestBackend> set) => TestConfig.Outbound(
            [TestConfig.Route("all", "svc")],
            new Dictionary<string, object> { ["svc"] = TestConfig.Service(set, "consistent-hash", new { source = "header", name = "x-user" }) });
        await using var sidecar = await TestSidecar.StartAsync(Config(backends[..4]));
        using var client = Clients.Http2();

        async Task<Dictionary<int, string>> PlaceAsync()
        {
            var placement = new Dictionary<int, string>();
            for (var user = 0; user < 400; user++)
            {
                using var request = Clients.Get(sidecar.Listener(), "/", http2: true);
                request.Headers.Add("x-user", $"user-{user}");
                using var response = await client.SendAsync(request);
                placement[user] = response.Headers.GetValues("x-backend").Single();
            }

            return placement;
        }

        var before = await PlaceAsync();
        await sidecar.ReloadAsync(Config(backends));
        var after = await PlaceAsync();

        var moved = before.Keys.Where(k => before[k] != after[k]).ToList();
        // Ideal is 1/5 of keys; every moved key must go to the new endpoint.
        Assert.InRange(moved.Count, 40, 130);
        Assert.All(moved, k => Assert.Equal("b5", after[k]));
        await DisposeAllAsync(backends);
    }

    [Fact]
    public async Task ConsistentHash_ClientAddress_PinsOneClient()
    {
        var backends = await StartBackendsAsync(3);
        await using var sidecar = await TestSidecar.StartAsync(TestConfig.Outbound(
            [TestConfig.Route("all", "svc")],
            new Dictionary<string, object> { ["svc"] = TestConfig.Service(backends, "consistent-hash", new { source = "client-address" }) }));

        // New connections each time: the hash is on the address, not the connection.
        var seen = new HashSet<string>(StringComparer.Ordinal);
        for (var i = 0; i < 20; i++)
        {
            using var client = Clients.Http1();
            using var response = await client.SendAsync(Clients.Get(sidecar.Listener(), "/"));
            seen.Add(response.Headers.GetValues("x-backend").Single());
        }

        Assert.Single(seen);
        await DisposeAllAsync(backends);
    }

    [Fact]
    public async Task Upstream_Http2Backend_ReceivesHttp2()
    {
        var backend = await TestBackend.StartAsync("h2", HttpProtocols.Http2);
        await using var sidecar = await TestSidecar.StartAsync(TestConfig.Outbound(
            [TestConfig.Route("all", "svc")],
            new Dictionary<string, object> { ["svc"] = TestConfig.Service([backend], protocol: "http2") }));
        using var client = Clients.Http1();
        using var response = await client.SendAsync(Clients.Get(sidecar.Listener(), "/"));
        var echo = await TestBackend.ReadEchoAsync(response);
        Assert.Equal("HTTP/2", echo.Protocol);
        await backend.DisposeAsync();
    }
}
