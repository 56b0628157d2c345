// TCP passthrough end to end: bytes, half-close, reset, per-connection balancing, failover, timeouts, limits.
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;
using Mesh.FunctionalTests.Infrastructure;

namespace Mesh.FunctionalTests.L4;

public sealed class TcpL4Tests
{
    internal static object Config(object listener, IReadOnlyDictionary<string, object> services, object[]? routes = null) => new
    {
        service = new { name = "client" },
        admin = new { address = "127.0.0.1", port = 0 },
        listeners = new[] { listener },
        routes = routes ?? [],
        services,
    };

    internal static object TcpListener(string service, object? tcp = null) => tcp is null
        ? new { name = "tcp", address = "127.0.0.1", port = 0, protocol = "tcp", service }
        : new { name = "tcp", address = "127.0.0.1", port = 0, protocol = "tcp", service, tcp };

    internal static object Service(IEnumerable<object> endpoints, string policy = "round-robin") => policy == "consistent-hash"
        ? new { endpoints = endpoints.ToArray(), loadBalancing = new { policy, hash = new { source = "client-address" } } }
        : new { endpoints = endpoints.ToArray(), loadBalancing = new { policy } };

    internal static async Task WaitForMetricAsync(TestSidecar sidecar, string line)
    {
        using var client = Clients.Http1();
        using var deadline = new CancellationTokenSource(TestSidecar.Deadline);
        while (!(await client.GetStringAsync(new Uri(sidecar.Admin, "/metrics"), deadline.Token)).Contains(line, StringComparison.Ordinal))
        {
            await Task.Delay(50, deadline.Token);
        }
    }

    [Fact]
    public async Task Tcp_HalfCloseFromClient_BytesUnchangedAndReplyAfterFin()
    {
        // The backend reads to EOF, then answers with the SHA-256 of what it got and closes.
        await using var backend = new TcpPeer("hash", async (connection, ct) =>
        {
            using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
            var buffer = new byte[64 * 1024];
            int read;
            while ((read = await connection.ReceiveAsync(buffer, SocketFlags.None, ct)) > 0)
            {
                sha.AppendData(buffer, 0, read);
            }

            await connection.SendAsync(sha.GetHashAndReset(), SocketFlags.None, ct);
            connection.Shutdown(SocketShutdown.Send);
        });
        await using var sidecar = await TestSidecar.StartAsync(Config(TcpListener("svc"), new Dictionary<string, object> { ["svc"] = Service([backend.Endpoint]) }));
        using var client = await Net.ConnectAsync(sidecar.Sidecar.EndpointOf("tcp"));

        var data = RandomNumberGenerator.GetBytes(4 * 1024 * 1024);
        await client.SendAsync(data, SocketFlags.None);
        client.Shutdown(SocketShutdown.Send);
        var reply = await Net.ReadToEndAsync(client);

        Assert.Equal(SHA256.HashData(data), reply);
    }

    [Fact]
    public async Task Tcp_BackendResets_ClientSeesReset()
    {
        var got = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var backend = new TcpPeer("rst", async (connection, ct) =>
        {
            var buffer = new byte[16];
            await connection.ReceiveAsync(buffer, SocketFlags.None, ct);
            connection.LingerState = new LingerOption(true, 0);
            connection.Close();
            got.TrySetResult();
        });
        await using var sidecar = await TestSidecar.StartAsync(Config(TcpListener("svc"), new Dictionary<string, object> { ["svc"] = Service([backend.Endpoint]) }));
        using var client = await Net.ConnectAsync(sidecar.Sidecar.EndpointOf("tcp"));
        await client.SendAsync("x"u8.ToArray(), SocketFlags.None);
        await got.Task.WaitAsync(TestSidecar.Deadline);

        var error = await Assert.ThrowsAsync<SocketException>(() => Net.ReadToEndAsync(client));
        Assert.Equal(SocketError.ConnectionReset, error.SocketErrorCode);
    }

    [Theory]
    [InlineData("round-robin")]
    [InlineData("least-connections")]
    public async Task Tcp_PerConnectionBalancing_SpreadsConnections(string policy)
    {
        await using var a = new TcpPeer("a");
        await using var b = new TcpPeer("b");
        await using var c = new TcpPeer("c");
        await using var sidecar = await TestSidecar.StartAsync(Config(TcpListener("svc"), new Dictionary<string, object> { ["svc"] = Service([a.Endpoint, b.Endpoint, c.Endpoint], policy) }));

        // Connections held open: least-connections must then pick a different backend each time.
        var open = new List<Socket>();
        var seen = new List<string>();
        for (var i = 0; i < 3; i++)
        {
            var client = await Net.ConnectAsync(sidecar.Sidecar.EndpointOf("tcp"));
            open.Add(client);
            seen.Add(Net.BackendOf(await Net.AskAsync(client, "hi")));
        }

        Assert.Equal(["a", "b", "c"], seen.Order(StringComparer.Ordinal));

        // Many requests on one connection stay on its backend (the concept note's per-connection pinning).
        for (var i = 0; i < 5; i++)
        {
            Assert.Equal(seen[0], Net.BackendOf(await Net.AskAsync(open[0], $"again{i}")));
        }

        foreach (var socket in open)
        {
            socket.Dispose();
        }
    }

    [Fact]
    public async Task Tcp_ConsistentHashOnClientAddress_StickyAndAddingEndpointMovesAboutOneNth()
    {
        var peers = new[] { new TcpPeer("p1"), new TcpPeer("p2"), new TcpPeer("p3"), new TcpPeer("p4") };
        object Cfg(int n) => Config(TcpListener("svc"), new Dictionary<string, object> { ["svc"] = Service(peers[..n].Select(p => p.Endpoint), "consistent-hash") });
        await using var sidecar = await TestSidecar.StartAsync(Cfg(3));
        var listener = sidecar.Sidecar.EndpointOf("tcp");
        var addresses = Enumerable.Range(0, 300).Select(i => IPAddress.Parse($"127.0.{1 + (i / 250)}.{1 + (i % 250)}")).ToArray();

        async Task<Dictionary<IPAddress, string>> PlaceAsync()
        {
            var placement = new Dictionary<IPAddress, string>();
            foreach (var address in addresses)
            {
                using var client = await Net.ConnectAsync(listener, address);
                placement[address] = Net.BackendOf(await Net.AskAsync(client, "k"));
            }

            return placement;
        }

        var before = await PlaceAsync();
        var again = await PlaceAsync();
        Assert.Equal(before, again);
        Assert.Equal(3, before.Values.Distinct().Count());

        await sidecar.ReloadAsync(Cfg(4));
        var after = await PlaceAsync();
        var moved = addresses.Where(a => before[a] != after[a]).ToList();
        Assert.InRange(moved.Count, 30, 120);
        Assert.All(moved, a => Assert.Equal("p4", after[a]));
        foreach (var peer in peers)
        {
            await peer.DisposeAsync();
        }
    }

    [Fact]
    public async Task Tcp_FirstEndpointRefuses_FailsOverAndCounts()
    {
        // A port that was just bound and released: nothing listens there.
        var closed = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        closed.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        var deadPort = ((IPEndPoint)closed.LocalEndPoint!).Port;
        closed.Dispose();
        await using var live = new TcpPeer("live");
        await using var sidecar = await TestSidecar.StartAsync(Config(TcpListener("svc"), new Dictionary<string, object>
        {
            ["svc"] = Service([new { address = "127.0.0.1", port = deadPort }, live.Endpoint]),
        }));

        for (var i = 0; i < 4; i++)
        {
            using var client = await Net.ConnectAsync(sidecar.Sidecar.EndpointOf("tcp"));
            Assert.Equal("live", Net.BackendOf(await Net.AskAsync(client, "x")));
        }

        await WaitForMetricAsync(sidecar, "mesh_l4_connect_failures_total{listener=\"tcp\",service=\"svc\"} 2");
    }

    [Fact]
    public async Task Tcp_EndpointNeverAnswers_ConnectTimesOutAndFailsOver()
    {
        // A listener that never accepts, with its backlog filled: the kernel drops further SYNs,
        // so a connect to it hangs until the sidecar's connect timeout.
        using var black = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        black.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        black.Listen(0);
        var blackEndPoint = (IPEndPoint)black.LocalEndPoint!;
        var fillers = new List<Socket>();
        var full = false;
        for (var i = 0; i < 8 && !full; i++)
        {
            var filler = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            fillers.Add(filler);
            using var wait = new CancellationTokenSource(TimeSpan.FromSeconds(1));
            try
            {
                await filler.ConnectAsync(blackEndPoint, wait.Token);
            }
            catch (OperationCanceledException)
            {
                // This connect got no answer: the backlog is full.
                full = true;
            }
        }

        Assert.True(full, "the never-accepting listener's backlog did not fill");

        await using var live = new TcpPeer("live");
        await using var sidecar = await TestSidecar.StartAsync(Config(
            TcpListener("svc", new { connectTimeoutMs = 300 }),
            new Dictionary<string, object> { ["svc"] = Service([new { address = "127.0.0.1", port = blackEndPoint.Port }, live.Endpoint]) }));

        using var client = await Net.ConnectAsync(sidecar.Sidecar.EndpointOf("tcp"));
        Assert.Equal("live:x", await Net.AskAsync(client, "x"));
        await WaitForMetricAsync(sidecar, "mesh_l4_connect_failures_total{listener=\"tcp\",service=\"svc\"} 1");
        foreach (var filler in fillers)
        {
            filler.Dispose();
        }
    }

    [Fact]
    public async Task Tcp_IdleConnection_ClosedAfterIdleTimeout()
    {
        await using var backend = new TcpPeer("idle");
        await using var sidecar = await TestSidecar.StartAsync(Config(TcpListener("svc", new { idleTimeoutMs = 300 }), new Dictionary<string, object> { ["svc"] = Service([backend.Endpoint]) }));
        using var client = await Net.ConnectAsync(sidecar.Sidecar.EndpointOf("tcp"));
        Assert.Equal("idle:x", await Net.AskAsync(client, "x"));

        // Nothing more is sent: the sidecar closes both sides after 300 ms of silence.
        Assert.Empty(await Net.ReadToEndAsync(client));
    }

    [Fact]
    public async Task Tcp_OverConnectionLimit_RefusedAtOnceAndCounted()
    {
        await using var backend = new TcpPeer("lim");
        await using var sidecar = await TestSidecar.StartAsync(Config(TcpListener("svc", new { maxConnections = 2 }), new Dictionary<string, object> { ["svc"] = Service([backend.Endpoint]) }));
        var listener = sidecar.Sidecar.EndpointOf("tcp");
        using var first = await Net.ConnectAsync(listener);
        using var second = await Net.ConnectAsync(listener);
        Assert.Equal("lim:1", await Net.AskAsync(first, "1"));
        Assert.Equal("lim:2", await Net.AskAsync(second, "2"));

        // The reset may reach the client while connecting or on its first read.
        var error = await Assert.ThrowsAsync<SocketException>(async () =>
        {
            using var third = await Net.ConnectAsync(listener);
            await Net.ReadToEndAsync(third);
        });
        Assert.Equal(SocketError.ConnectionReset, error.SocketErrorCode);
        await WaitForMetricAsync(sidecar, "mesh_l4_connections_total{listener=\"tcp\",result=\"refused-limit\"} 1");

        // The admin API shows the two open connections on the listener and on the endpoint.
        using var admin = Clients.Http1();
        var clusters = await admin.GetStringAsync(new Uri(sidecar.Admin, "/admin/clusters"));
        Assert.Contains("\"activeConnections\": 2", clusters, StringComparison.Ordinal);
        Assert.Contains("\"inFlight\": 2", clusters, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Tcp_EndpointChangedByReload_NewConnectionsMoveOpenOneStays()
    {
        await using var oldPeer = new TcpPeer("old");
        await using var newPeer = new TcpPeer("new");
        await using var sidecar = await TestSidecar.StartAsync(Config(TcpListener("svc"), new Dictionary<string, object> { ["svc"] = Service([oldPeer.Endpoint]) }));
        using var open = await Net.ConnectAsync(sidecar.Sidecar.EndpointOf("tcp"));
        Assert.Equal("old:a", await Net.AskAsync(open, "a"));

        await sidecar.ReloadAsync(Config(TcpListener("svc"), new Dictionary<string, object> { ["svc"] = Service([newPeer.Endpoint]) }));

        Assert.Equal("old:b", await Net.AskAsync(open, "b"));
        using var fresh = await Net.ConnectAsync(sidecar.Sidecar.EndpointOf("tcp"));
        Assert.Equal("new:c", await Net.AskAsync(fresh, "c"));
    }
}
