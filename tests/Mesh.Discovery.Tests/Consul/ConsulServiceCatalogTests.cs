// The Consul provider against the test server: snapshots per sidecar service, one loop per Consul service, index rules, outages.
using System.Text.Json;
using Mesh.Discovery.Consul;
using Mesh.Tests;
using Mesh.Tests.Consul;
using Microsoft.Extensions.Time.Testing;

namespace Mesh.Discovery.Tests.Consul;

public sealed class ConsulServiceCatalogTests : IAsyncLifetime
{
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(20);
    private static readonly ConsulWatchOptions FastRetries = new() { RetryDelay = TimeSpan.FromMilliseconds(20), MaxRetryDelay = TimeSpan.FromMilliseconds(200), RefillInterval = TimeSpan.FromMilliseconds(50) };
    private ConsulTestServer _server = null!;
    private ConsulClient _client = null!;
    private ConsulServiceCatalog _catalog = null!;

    public async Task InitializeAsync()
    {
        _server = await ConsulTestServer.StartAsync();
        _client = new ConsulClient(new ConsulClientOptions { Address = _server.Address, MaxRetryAttempts = 1, RetryDelay = TimeSpan.FromMilliseconds(10), MaxRetryDelay = TimeSpan.FromMilliseconds(50) });
        _catalog = new ConsulServiceCatalog(watchOptions: FastRetries);
    }

    public async Task DisposeAsync()
    {
        await _catalog.DisposeAsync();
        _client.Dispose();
        await _server.DisposeAsync();
    }

    [Fact]
    public async Task Configure_PassingInstances_PublishedUnderSidecarServiceNames()
    {
        _server.AddInstance("api", 9001, tags: ["v1"], meta: new Dictionary<string, string> { ["zone"] = "a" });
        _server.AddInstance("api", 9002, status: HealthStatus.Critical);

        _catalog.Configure(_client, Queries(("backend", new ConsulServiceQuery("api"))));
        var snapshot = await SnapshotAsync(s => s.EndpointsOf("backend").Count == 1);

        var endpoint = Assert.Single(snapshot.EndpointsOf("backend"));
        Assert.Equal(("127.0.0.1", 9001, 1), (endpoint.Address, endpoint.Port, endpoint.Weight));
        Assert.Equal(["v1"], endpoint.Tags);
        Assert.Equal("a", endpoint.Metadata["zone"]);
        Assert.Equal("consul", snapshot.Provider);
        Assert.Empty(snapshot.EndpointsOf("api"));
    }

    [Fact]
    public async Task Watch_InstancesAddedRemovedAndTurnedCritical_EachPublished()
    {
        _server.AddInstance("api", 9001, id: "a");
        _catalog.Configure(_client, Queries(("api", new ConsulServiceQuery("api"))));
        await SnapshotAsync(s => Ports(s, "api") == "9001");

        _server.AddInstance("api", 9002, id: "b");
        await SnapshotAsync(s => Ports(s, "api") == "9001,9002");
        _server.SetHealth("a", HealthStatus.Critical);
        await SnapshotAsync(s => Ports(s, "api") == "9002");
        _server.State.Deregister("b");
        await SnapshotAsync(s => Ports(s, "api") == "");
        _server.SetHealth("a", HealthStatus.Passing);
        await SnapshotAsync(s => Ports(s, "api") == "9001");
    }

    [Fact]
    public async Task Watch_SameConsulServiceForTwoSubsets_OneLoopAndTagSubsets()
    {
        _server.AddInstance("api", 9001, tags: ["v1"]);
        _server.AddInstance("api", 9002, tags: ["V2", "canary"]);

        _catalog.Configure(_client, Queries(("api", new ConsulServiceQuery("api")), ("api-v2", new ConsulServiceQuery("api", Tag: "v2")), ("api-v1", new ConsulServiceQuery("api", Tag: "v1"))));
        var snapshot = await SnapshotAsync(s => s.EndpointsOf("api").Count == 2);
        await _server.WaitForHeldQueriesAsync(1, Deadline);

        Assert.Equal("9002", Ports(snapshot, "api-v2"));
        Assert.Equal("9001", Ports(snapshot, "api-v1"));
        // One blocking loop reads "api" for all three: no tag is sent, the subsets are cut locally.
        Assert.Equal(1, _server.HeldQueries);
        Assert.All(_server.Requests.Where(r => r.Path.StartsWith("/v1/health/service/", StringComparison.Ordinal)), r =>
        {
            Assert.Equal("/v1/health/service/api", r.Path);
            Assert.False(r.Query.ContainsKey("tag"));
        });
    }

    [Fact]
    public async Task Watch_Weights_PassingAndWarningWeightsHonouredZeroLeavesOut()
    {
        _server.AddInstance("api", 9001, id: "a", passingWeight: 5, warningWeight: 1);
        _server.AddInstance("api", 9002, id: "b", status: HealthStatus.Warning, passingWeight: 5, warningWeight: 2);
        _server.AddInstance("api", 9003, id: "c", status: HealthStatus.Warning, passingWeight: 5, warningWeight: 0);

        _catalog.Configure(_client, Queries(("strict", new ConsulServiceQuery("api")), ("lenient", new ConsulServiceQuery("api", PassingOnly: false))));
        var snapshot = await SnapshotAsync(s => s.EndpointsOf("lenient").Count == 2);

        Assert.Equal([(9001, 5)], snapshot.EndpointsOf("strict").Select(e => (e.Port, e.Weight)));
        Assert.Equal([(9001, 5), (9002, 2)], snapshot.EndpointsOf("lenient").Select(e => (e.Port, e.Weight)));
        // A reader that wants warnings makes the shared loop read without ?passing.
        Assert.DoesNotContain(_server.Requests, r => r.Path == "/v1/health/service/api" && r.Query.ContainsKey("passing"));
    }

    [Fact]
    public async Task Watch_ServiceWithoutAddress_UsesTheNodeAddress()
    {
        _server.State.AddNode("node-2", "127.0.0.2");
        _server.AddInstance("api", 9001, address: "", node: "node-2");

        _catalog.Configure(_client, Queries(("api", new ConsulServiceQuery("api"))));
        var snapshot = await SnapshotAsync(s => s.EndpointsOf("api").Count == 1);

        Assert.Equal("127.0.0.2", snapshot.EndpointsOf("api")[0].Address);
    }

    [Fact]
    public async Task Watch_SendsBackTheIndexWithWait()
    {
        _server.AddInstance("api", 9001);
        _catalog.Configure(_client, Queries(("api", new ConsulServiceQuery("api"))));
        await _server.WaitForHeldQueriesAsync(1, Deadline);
        var first = _server.Requests.Single(r => r.Path == "/v1/health/service/api");

        _server.AddInstance("api", 9002);
        var second = await _server.WaitForRequestAsync(r => r.Path == "/v1/health/service/api" && r.Received > first.Received, Deadline, "the held query answered");

        Assert.Equal(0UL, first.QueryIndex);
        Assert.Equal(first.Index, second.QueryIndex);
        Assert.Equal("5m", second.Query["wait"].ToString());
        Assert.Equal("true", second.Query["passing"].ToString());
        Assert.True(second.Index > first.Index);
    }

    [Fact]
    public async Task Watch_IndexGoesBackwards_NextReadIsAFullOneAndChangesStillArrive()
    {
        // Held queries come back every 300 ms, so a lower index is seen soon after the reset.
        _server.MaxWait = TimeSpan.FromMilliseconds(300);
        _server.AddInstance("api", 9001);
        _server.AddInstance("other", 1);
        _server.AddInstance("other", 2);
        _catalog.Configure(_client, Queries(("api", new ConsulServiceQuery("api"))));
        await SnapshotAsync(s => Ports(s, "api") == "9001");
        var before = _server.State.ServiceIndex("api");

        // A rebuilt cluster (restored snapshot) answers a lower index.
        _server.State.ResetIndex(1);
        var reset = await _server.WaitForRequestAsync(r => r.Path == "/v1/health/service/api" && r.Index is { } i && i < before, Deadline, "an answer with a lower index");
        var full = await _server.WaitForRequestAsync(r => r.Path == "/v1/health/service/api" && r.Received > reset.Received, Deadline, "the next read");
        _server.AddInstance("api", 9002);

        Assert.Equal(0UL, full.QueryIndex);
        await SnapshotAsync(s => Ports(s, "api") == "9001,9002");
    }

    [Fact]
    public async Task Watch_AgentDown_LastEndpointsKeptStalenessGrowsThenRecovers()
    {
        _server.AddInstance("api", 9001, id: "a");
        _catalog.Configure(_client, Queries(("api", new ConsulServiceQuery("api"))));
        var synced = await SnapshotAsync(s => Ports(s, "api") == "9001");
        await _server.WaitForHeldQueriesAsync(1, Deadline);
        Assert.True(_catalog.SyncStatusOf("api")!.Synced);

        await _server.StopAsync();
        await WaitAsync(() => _catalog.SyncStatusOf("api") is { Synced: false }, "the outage is noticed");
        var down = _catalog.SyncStatusOf("api")!;
        await WaitAsync(() => _catalog.SyncStatusOf("api")!.Staleness > down.Staleness, "staleness grows");

        Assert.Same(synced, _catalog.Current);
        Assert.Equal("9001", Ports(_catalog.Current, "api"));
        Assert.NotNull(down.LastError);
        Assert.Equal(("consul", "api"), (down.Source, down.Upstream));

        _server.State.Register(new TestServiceInstance { Id = "b", Name = "api", Address = "127.0.0.1", Port = 9002 }, [new TestCheck { Id = "service:b", Name = "b", ServiceId = "b", Status = "passing" }]);
        await _server.RestartAsync(keepState: true);
        await SnapshotAsync(s => Ports(s, "api") == "9001,9002");
        await WaitAsync(() => _catalog.SyncStatusOf("api") is { Synced: true, Staleness.Ticks: 0, LastError: null }, "synced again");
    }

    [Fact]
    public async Task Configure_ServiceDropped_EndpointsRemovedAndLoopStops()
    {
        _server.AddInstance("api", 9001);
        _server.AddInstance("web", 8001);
        _catalog.Configure(_client, Queries(("api", new ConsulServiceQuery("api")), ("web", new ConsulServiceQuery("web"))));
        await SnapshotAsync(s => s.EndpointsOf("api").Count == 1 && s.EndpointsOf("web").Count == 1);
        await _server.WaitForHeldQueriesAsync(2, Deadline);

        _catalog.Configure(_client, Queries(("web", new ConsulServiceQuery("web"))));
        var snapshot = await SnapshotAsync(s => !s.Services.ContainsKey("api"));
        await WaitAsync(() => _server.HeldQueries == 1, "the api loop's query is cut");

        Assert.Single(snapshot.EndpointsOf("web"));
        Assert.Null(_catalog.SyncStatusOf("api"));
    }

    [Fact]
    public async Task Configure_NewClient_KeepsEndpointsUntilTheNewAgentAnswers()
    {
        _server.AddInstance("api", 9001);
        _catalog.Configure(_client, Queries(("api", new ConsulServiceQuery("api"))));
        await SnapshotAsync(s => s.EndpointsOf("api").Count == 1);
        await using var other = await ConsulTestServer.StartAsync();
        other.AddInstance("api", 7001);
        using var otherClient = new ConsulClient(new ConsulClientOptions { Address = other.Address });

        _catalog.Configure(otherClient, Queries(("api", new ConsulServiceQuery("api"))));
        var snapshot = await SnapshotAsync(s => Ports(s, "api") == "7001");

        Assert.Equal("7001", Ports(snapshot, "api"));
        await WaitAsync(() => _server.HeldQueries == 0, "the old agent is no longer read");
    }

    [Fact]
    public async Task WaitForFirstAnswersAsync_AgentUp_ReturnsWithEndpoints()
    {
        _server.AddInstance("api", 9001);

        _catalog.Configure(_client, Queries(("api", new ConsulServiceQuery("api"))));
        await _catalog.WaitForFirstAnswersAsync(Deadline);

        Assert.Single(_catalog.Current.EndpointsOf("api"));
    }

    [Fact]
    public async Task Configure_ConcurrentWithChurnAndReaders_EndsConsistent()
    {
        for (var i = 0; i < 4; i++)
        {
            _server.AddInstance("api", 9000 + i, id: $"a{i}");
            _server.AddInstance("web", 8000 + i, id: $"w{i}");
        }

        // Two threads reconfigure (sets that add and drop services), one churns Consul, one reads snapshots and status.
        var sets = new[]
        {
            Queries(("api", new ConsulServiceQuery("api"))),
            Queries(("api", new ConsulServiceQuery("api")), ("web", new ConsulServiceQuery("web"))),
            Queries(("web", new ConsulServiceQuery("web")), ("api-v", new ConsulServiceQuery("api", PassingOnly: false))),
        };
        using var stop = new CancellationTokenSource();
        var configurers = Enumerable.Range(0, 2).Select(t => Task.Run(() =>
        {
            for (var i = 0; i < 150; i++)
            {
                _catalog.Configure(_client, sets[(i + t) % sets.Length]);
            }
        })).ToArray();
        var churn = Task.Run(() =>
        {
            for (var i = 0; i < 100 && !stop.IsCancellationRequested; i++)
            {
                _server.SetHealth($"a{i % 4}", i % 2 == 0 ? HealthStatus.Critical : HealthStatus.Passing);
            }
        });
        var reader = Task.Run(() =>
        {
            var reads = 0;
            while (!stop.IsCancellationRequested && reads++ < 100_000)
            {
                var snapshot = _catalog.Current;
                foreach (var (name, endpoints) in snapshot.Services)
                {
                    Assert.NotNull(endpoints);
                    _ = _catalog.SyncStatusOf(name);
                }
            }
        });

        await Task.WhenAll(configurers).WaitAsync(Deadline);
        await churn.WaitAsync(Deadline);
        for (var i = 0; i < 4; i++)
        {
            _server.SetHealth($"a{i}", HealthStatus.Passing);
        }

        _catalog.Configure(_client, sets[1]);
        await SnapshotAsync(s => Ports(s, "api") == "9000,9001,9002,9003" && Ports(s, "web") == "8000,8001,8002,8003" && !s.Services.ContainsKey("api-v"));
        await stop.CancelAsync();
        await reader.WaitAsync(Deadline);
        await WaitAsync(() => _server.HeldQueries == 2, "one held query per Consul service once reconfiguring stops");
    }

    [Fact]
    public void ToEndpoints_DocumentedHealthSample_OneEndpointAtItsWeight()
    {
        var entries = JsonSerializer.Deserialize(File.ReadAllText(TestFixtures.Path("consul-api", "health-service.response.json")), ConsulJsonContext.Default.ListServiceEntry)!;

        var endpoint = Assert.Single(ConsulServiceCatalog.ToEndpoints(entries, new ConsulServiceQuery("redis", Tag: "PRIMARY")));

        // The service's own address (the sample's, a private one: parsed, never dialled), not its wan address.
        Assert.Equal((entries[0].Service.Address, 8000, 10), (endpoint.Address, endpoint.Port, endpoint.Weight));
        Assert.NotEqual(entries[0].Service.TaggedAddresses!["wan"].Address, endpoint.Address);
        Assert.Equal(["primary"], endpoint.Tags);
        Assert.Equal("4.0", endpoint.Metadata["redis_version"]);
        Assert.Empty(ConsulServiceCatalog.ToEndpoints(entries, new ConsulServiceQuery("redis", Tag: "replica")));
    }

    [Fact]
    public async Task TokenBucket_BurstThenOnePerInterval()
    {
        var time = new FakeTimeProvider();
        var bucket = new TokenBucket(2, TimeSpan.FromSeconds(1), time);

        await bucket.TakeAsync(CancellationToken.None);
        await bucket.TakeAsync(CancellationToken.None);
        var third = bucket.TakeAsync(CancellationToken.None).AsTask();
        Assert.False(third.IsCompleted);
        time.Advance(TimeSpan.FromMilliseconds(999));
        Assert.False(third.IsCompleted);
        time.Advance(TimeSpan.FromMilliseconds(1));
        await third.WaitAsync(Deadline);
        var fourth = bucket.TakeAsync(CancellationToken.None).AsTask();
        Assert.False(fourth.IsCompleted);
        time.Advance(TimeSpan.FromSeconds(1));
        await fourth.WaitAsync(Deadline);
    }

    private static Dictionary<string, ConsulServiceQuery> Queries(params (string Name, ConsulServiceQuery Query)[] queries) =>
        queries.ToDictionary(q => q.Name, q => q.Query, StringComparer.Ordinal);

    private static string Ports(CatalogSnapshot snapshot, string service) =>
        string.Join(',', snapshot.EndpointsOf(service).Select(e => e.Port));

    private async Task<CatalogSnapshot> SnapshotAsync(Func<CatalogSnapshot, bool> condition)
    {
        using var deadline = new CancellationTokenSource(Deadline);
        await foreach (var snapshot in _catalog.WatchAsync(deadline.Token))
        {
            if (condition(snapshot))
            {
                return snapshot;
            }
        }

        throw new TimeoutException($"no matching snapshot within {Deadline}; last: {string.Join("; ", _catalog.Current.Services.Select(s => $"{s.Key}={Ports(_catalog.Current, s.Key)}"))}");
    }

    // For states with no event to wait on (status fields): re-check on each request the test server answers, or every 50 ms.
    private async Task WaitAsync(Func<bool> condition, string what)
    {
        using var deadline = new CancellationTokenSource(Deadline);
        while (!condition())
        {
            try
            {
                await Task.Delay(50, deadline.Token);
            }
            catch (OperationCanceledException)
            {
                throw new TimeoutException($"not reached within {Deadline}: {what}");
            }
        }
    }
}
