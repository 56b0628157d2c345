// UDP proxy over real sockets on loopback: echo, consistent-hash stickiness, endpoint changes, idle expiry, flow limit.
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Mesh.Sidecar.Configuration;
using Mesh.Sidecar.L4.Udp;
using Mesh.Sidecar.LoadBalancing;
using Microsoft.Extensions.Logging.Abstractions;

namespace Mesh.Sidecar.Tests.L4.Udp;

public sealed class UdpProxyTests : IAsyncLifetime
{
    private static readonly TimeSpan CounterDeadline = TimeSpan.FromSeconds(20);

    private readonly List<UdpEchoBackend> _backends = [];
    private readonly List<UdpTestClient> _clients = [];
    private UdpProxy? _proxy;
    private volatile LoadBalancer _current = LoadBalancer.Create(LoadBalancingPolicies.ConsistentHash, []);

    public Task InitializeAsync()
    {
        for (var i = 0; i < 3; i++)
        {
            _backends.Add(new UdpEchoBackend($"backend-{i}"));
        }

        return Task.CompletedTask;
    }

    public async Task DisposeAsync()
    {
        if (_proxy is not null)
        {
            await _proxy.DisposeAsync();
        }

        foreach (var client in _clients)
        {
            client.Dispose();
        }

        foreach (var backend in _backends)
        {
            await backend.DisposeAsync();
        }
    }

    [Fact]
    public async Task StartAsync_EchoBackends_ClientGetsReplyFromListenAddress()
    {
        var proxy = await StartProxyAsync(_backends, new UdpProxyOptions());
        var client = Client(2);

        var reply = await client.SendAndReceiveAsync(proxy.LocalEndPoint, "hello");

        Assert.NotEqual(0, proxy.LocalEndPoint.Port);
        Assert.Equal(proxy.LocalEndPoint, reply.From);
        Assert.Contains(reply.Backend, _backends.Select(b => b.Name));
        Assert.Equal("hello", reply.Payload);
        Assert.Equal(1, proxy.ActiveFlows);
        Assert.Equal(1, proxy.FlowsCreated);
        Assert.Equal(1, proxy.DatagramsIn);
        // An open flow counts as in flight on its endpoint (the admin API shows it).
        Assert.Equal(1, _backends.Single(b => b.Name == reply.Backend).State.InFlight);
        await WaitUntilAsync(() => proxy.DatagramsOut == 1, "the reply to be counted");
        Assert.Equal(0, proxy.DatagramsDropped);
    }

    [Fact]
    public async Task Forward_ManyClientAddresses_EachClientStaysOnOneBackendAndClientsSpreadOverAll()
    {
        var proxy = await StartProxyAsync(_backends, new UdpProxyOptions());
        var balancer = _current;
        var clients = Enumerable.Range(2, 199).Select(Client).ToArray();

        // At most 16 clients in flight: a burst of 199 first datagrams can overflow a loopback
        // socket's receive buffer on a loaded machine, and UDP drops rather than waits.
        using var inFlight = new SemaphoreSlim(16);
        var backendsSeen = await Task.WhenAll(clients.Select(async client =>
        {
            await inFlight.WaitAsync();
            using var slot = new SemaphoreRelease(inFlight);
            var seen = new List<string>();
            for (var n = 0; n < 5; n++)
            {
                var reply = await client.SendAndReceiveAsync(proxy.LocalEndPoint, $"{client.LocalEndPoint}#{n}");
                Assert.Equal(proxy.LocalEndPoint, reply.From);
                Assert.Equal($"{client.LocalEndPoint}#{n}", reply.Payload);
                seen.Add(reply.Backend);
            }

            return (Client: client, Backends: seen);
        }));

        foreach (var (client, seen) in backendsSeen)
        {
            Assert.Single(seen.Distinct());
            Assert.Equal(ExpectedBackend(balancer, client), seen[0]);
        }

        Assert.Equal(3, backendsSeen.Select(r => r.Backends[0]).Distinct().Count());
        Assert.Equal(199, proxy.FlowsCreated);
        Assert.Equal(199, proxy.ActiveFlows);
        Assert.Equal(199 * 5, proxy.DatagramsIn);
    }

    [Fact]
    public async Task Forward_SameClientAddressTwoPorts_TwoFlowsOnOneBackend()
    {
        var proxy = await StartProxyAsync(_backends, new UdpProxyOptions());
        var first = Client(7);
        var second = Client(7);

        var firstReply = await first.SendAndReceiveAsync(proxy.LocalEndPoint, "a");
        var secondReply = await second.SendAndReceiveAsync(proxy.LocalEndPoint, "b");

        Assert.NotEqual(first.LocalEndPoint.Port, second.LocalEndPoint.Port);
        Assert.Equal(firstReply.Backend, secondReply.Backend);
        Assert.Equal("a", firstReply.Payload);
        Assert.Equal("b", secondReply.Payload);
        Assert.Equal(2, proxy.FlowsCreated);
    }

    [Fact]
    public async Task Forward_BackendRemoved_OnlyItsClientsMove()
    {
        var proxy = await StartProxyAsync(_backends, new UdpProxyOptions());
        var clients = Enumerable.Range(2, 60).Select(Client).ToArray();
        var before = await SendOnceFromEachAsync(proxy, clients, "before");
        var removed = _backends[0];
        Assert.Contains(removed.Name, before.Values);
        var created = proxy.FlowsCreated;

        var remaining = LoadBalancer.Create(LoadBalancingPolicies.ConsistentHash, [_backends[1].State, _backends[2].State]);
        _current = remaining;
        var after = await SendOnceFromEachAsync(proxy, clients, "after");

        var moved = 0;
        foreach (var client in clients)
        {
            if (before[client] == removed.Name)
            {
                moved++;
                Assert.NotEqual(removed.Name, after[client]);
                Assert.Equal(ExpectedBackend(remaining, client), after[client]);
            }
            else
            {
                Assert.Equal(before[client], after[client]);
            }
        }

        Assert.Equal(created + moved, proxy.FlowsCreated);
        Assert.Equal(clients.Length, proxy.ActiveFlows);
        Assert.Equal(0, removed.State.InFlight);
    }

    [Fact]
    public async Task Forward_BackendAdded_ExistingFlowsKeepTheirBackend()
    {
        var proxy = await StartProxyAsync(_backends.Take(2).ToList(), new UdpProxyOptions());
        var clients = Enumerable.Range(2, 60).Select(Client).ToArray();
        var before = await SendOnceFromEachAsync(proxy, clients, "before");
        var created = proxy.FlowsCreated;

        var all = LoadBalancer.Create(LoadBalancingPolicies.ConsistentHash, _backends.Select(b => b.State).ToArray());
        _current = all;
        var after = await SendOnceFromEachAsync(proxy, clients, "after");

        // The test means something only if the new ring would place some clients on the new backend.
        Assert.Contains(clients, client => ExpectedBackend(all, client) == _backends[2].Name);
        foreach (var client in clients)
        {
            Assert.Equal(before[client], after[client]);
        }

        Assert.Equal(created, proxy.FlowsCreated);
    }

    [Fact]
    public async Task Sweep_IdleFlow_ExpiresAndNextDatagramOpensNewFlow()
    {
        // 2 s, not less: on a loaded CI machine the first reply can take long enough that a shorter
        // timeout expires the flow before the reply comes back through it.
        var proxy = await StartProxyAsync(_backends, new UdpProxyOptions { FlowIdleTimeout = TimeSpan.FromSeconds(2) });
        var client = Client(2);
        var first = await client.SendAndReceiveAsync(proxy.LocalEndPoint, "one");
        var backend = _backends.Single(b => b.Name == first.Backend);

        // No in-flight check before expiry: on a loaded machine the timeout may pass before it runs.
        await WaitUntilAsync(() => proxy.ActiveFlows == 0, "the idle flow to expire");

        Assert.Equal(1, proxy.FlowsExpired);
        Assert.Equal(0, backend.State.InFlight);
        var second = await client.SendAndReceiveAsync(proxy.LocalEndPoint, "two");
        Assert.Equal(first.Backend, second.Backend);
        Assert.Equal("two", second.Payload);
        Assert.Equal(2, proxy.FlowsCreated);
        Assert.Equal(1, proxy.ActiveFlows);
    }

    [Fact]
    public async Task Forward_FlowLimitReached_NewClientDatagramDroppedAndCounted()
    {
        var proxy = await StartProxyAsync(_backends, new UdpProxyOptions { MaxFlows = 2 });
        var first = Client(2);
        var second = Client(3);
        var third = Client(4);
        await first.SendAndReceiveAsync(proxy.LocalEndPoint, "a");
        await second.SendAndReceiveAsync(proxy.LocalEndPoint, "b");

        await third.SendAsync(proxy.LocalEndPoint, "c");
        await WaitUntilAsync(() => proxy.DatagramsDropped == 1, "the third client's datagram to be dropped");

        Assert.Equal(2, proxy.ActiveFlows);
        Assert.Equal(2, proxy.FlowsCreated);
        Assert.Equal(3, proxy.DatagramsIn);
        var stillServed = await first.SendAndReceiveAsync(proxy.LocalEndPoint, "a2");
        Assert.Equal("a2", stillServed.Payload);
    }

    [Fact]
    public async Task Forward_NoEndpoints_DatagramDroppedAndCounted()
    {
        var proxy = await StartProxyAsync([], new UdpProxyOptions());
        var client = Client(2);

        await client.SendAsync(proxy.LocalEndPoint, "nobody");
        await WaitUntilAsync(() => proxy.DatagramsDropped == 1, "the datagram to be dropped");

        Assert.Equal(0, proxy.ActiveFlows);
        Assert.Equal(0, proxy.FlowsCreated);
    }

    [Fact]
    public async Task DisposeAsync_OpenFlows_ClosesFlowsAndListenSocket()
    {
        var proxy = await StartProxyAsync(_backends, new UdpProxyOptions());
        var listen = proxy.LocalEndPoint;
        foreach (var client in Enumerable.Range(2, 10).Select(Client))
        {
            await client.SendAndReceiveAsync(listen, "x");
        }

        await proxy.DisposeAsync();
        await proxy.DisposeAsync();

        Assert.Equal(0, proxy.ActiveFlows);
        Assert.All(_backends, b => Assert.Equal(0, b.State.InFlight));
        using var rebind = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        rebind.Bind(listen);
    }

    [Fact]
    public void Constructor_NonPositiveIdleTimeout_Throws()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new UdpProxy(
            new IPEndPoint(IPAddress.Loopback, 0), () => _current, new UdpProxyOptions { FlowIdleTimeout = TimeSpan.Zero }, NullLogger.Instance));
        Assert.Throws<ArgumentOutOfRangeException>(() => new UdpProxy(
            new IPEndPoint(IPAddress.Loopback, 0), () => _current, new UdpProxyOptions { MaxFlows = 0 }, NullLogger.Instance));
    }

    private async Task<UdpProxy> StartProxyAsync(IReadOnlyList<UdpEchoBackend> backends, UdpProxyOptions options)
    {
        _current = LoadBalancer.Create(LoadBalancingPolicies.ConsistentHash, backends.Select(b => b.State).ToArray());
        _proxy = new UdpProxy(new IPEndPoint(IPAddress.Loopback, 0), () => _current, options, NullLogger.Instance);
        await _proxy.StartAsync(CancellationToken.None);
        return _proxy;
    }

    private UdpTestClient Client(int n)
    {
        var client = UdpTestClient.OnLoopback(n);
        _clients.Add(client);
        return client;
    }

    private string ExpectedBackend(LoadBalancer balancer, UdpTestClient client)
    {
        var picked = balancer.Pick(StableHash.Of(client.LocalEndPoint.Address));
        Assert.NotNull(picked);
        return _backends.Single(b => ReferenceEquals(b.State, picked)).Name;
    }

    private static async Task<Dictionary<UdpTestClient, string>> SendOnceFromEachAsync(UdpProxy proxy, UdpTestClient[] clients, string payload)
    {
        var replies = await Task.WhenAll(clients.Select(c => c.SendAndReceiveAsync(proxy.LocalEndPoint, payload)));
        var backends = new Dictionary<UdpTestClient, string>();
        for (var i = 0; i < clients.Length; i++)
        {
            Assert.Equal(payload, replies[i].Payload);
            backends[clients[i]] = replies[i].Backend;
        }

        return backends;
    }

    /// <summary>Polls a counter the proxy updates on its own threads; bounded by <see cref="CounterDeadline"/>.</summary>
    private static async Task WaitUntilAsync(Func<bool> condition, string what)
    {
        var clock = Stopwatch.StartNew();
        while (!condition())
        {
            if (clock.Elapsed > CounterDeadline)
            {
                Assert.Fail($"Timed out after {CounterDeadline.TotalSeconds} s waiting for {what}.");
            }

            await Task.Delay(10);
        }
    }
}

/// <summary>Releases a semaphore slot on dispose.</summary>
internal sealed class SemaphoreRelease(SemaphoreSlim semaphore) : IDisposable
{
    public void Dispose() => semaphore.Release();
}
