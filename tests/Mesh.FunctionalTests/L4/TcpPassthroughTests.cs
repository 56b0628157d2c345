// TCP passthrough end to end: bytes, half-close, reset, per-connection balancing, failover, timeouts, limits, reload, admin.
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using Mesh.FunctionalTests.Infrastructure;
using static Mesh.FunctionalTests.L4.L4Harness;

namespace Mesh.FunctionalTests.L4;

public sealed class TcpPassthroughTests
{
    private const string ConnectFailures = "mesh_l4_connect_failures_total{listener=\"tcp\",service=\"svc\"}";

    [Fact]
    public async Task Relay_EchoOfRandomBytes_BytesUnchangedBothWays()
    {
        await using var mirror = new TcpPeer("mirror", TcpPeer.MirrorAsync);
        await using var sidecar = await TestSidecar.StartAsync(Config(TcpListener("svc"), Services(("svc", Service([mirror.Endpoint])))));
        using var client = await Net.ConnectAsync(sidecar.Sidecar.EndpointOf("tcp"));

        // Every byte value, many times, both ways at once (reading while writing so neither side stalls).
        var data = RandomNumberGenerator.GetBytes(3 * 1024 * 1024);
        var reading = Net.ReadToEndAsync(client);
        await Net.SendAllAsync(client, data);
        client.Shutdown(SocketShutdown.Send);

        Assert.Equal(data, await reading);
    }

    [Fact]
    public async Task Relay_ClientHalfCloses_BackendSeesEofThenClientGetsWholeReply()
    {
        var eof = new TaskCompletionSource<byte[]>(TaskCreationOptions.RunContinuationsAsynchronously);
        var reply = RandomNumberGenerator.GetBytes(2 * 1024 * 1024);
        await using var backend = new TcpPeer("half", async (connection, ct) =>
        {
            // Reads to EOF, then answers with the SHA-256 of what it got and a large body, then closes.
            using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
            var buffer = new byte[64 * 1024];
            int read;
            while ((read = await connection.ReceiveAsync(buffer, SocketFlags.None, ct)) > 0)
            {
                sha.AppendData(buffer, 0, read);
            }

            var hash = sha.GetHashAndReset();
            eof.TrySetResult(hash);
            await Net.SendAllAsync(connection, hash, ct);
            await Net.SendAllAsync(connection, reply, ct);
            connection.Shutdown(SocketShutdown.Send);
        });
        await using var sidecar = await TestSidecar.StartAsync(Config(TcpListener("svc"), Services(("svc", Service([backend.Endpoint])))));
        using var client = await Net.ConnectAsync(sidecar.Sidecar.EndpointOf("tcp"));

        var data = RandomNumberGenerator.GetBytes(1024 * 1024);
        await Net.SendAllAsync(client, data);
        client.Shutdown(SocketShutdown.Send);

        // The backend saw the client's FIN (its read returned 0) while the client's read side stayed open.
        Assert.Equal(SHA256.HashData(data), await eof.Task.WaitAsync(TestSidecar.Deadline));
        var received = await Net.ReadToEndAsync(client);
        Assert.Equal([.. SHA256.HashData(data), .. reply], received);
    }

    [Fact]
    public async Task Relay_BackendResetsWithLingerZero_ClientSeesConnectionReset()
    {
        var reset = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var backend = new TcpPeer("rst", async (connection, ct) =>
        {
            var buffer = new byte[16];
            await connection.ReceiveAsync(buffer, SocketFlags.None, ct);
            connection.LingerState = new LingerOption(true, 0);
            connection.Close();
            reset.TrySetResult();
        });
        await using var sidecar = await TestSidecar.StartAsync(Config(TcpListener("svc"), Services(("svc", Service([backend.Endpoint])))));
        using var client = await Net.ConnectAsync(sidecar.Sidecar.EndpointOf("tcp"));
        await client.SendAsync("x"u8.ToArray(), SocketFlags.None);
        await reset.Task.WaitAsync(TestSidecar.Deadline);

        var error = await Assert.ThrowsAsync<SocketException>(() => Net.ReadToEndAsync(client));
        Assert.Equal(SocketError.ConnectionReset, error.SocketErrorCode);
    }

    [Fact]
    public async Task Relay_ClientResetsWithLingerZero_BackendSeesConnectionReset()
    {
        var accepted = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var outcome = new TaskCompletionSource<SocketError>(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var backend = new TcpPeer("rst", async (connection, ct) =>
        {
            accepted.TrySetResult();
            try
            {
                var buffer = new byte[16];
                while (await connection.ReceiveAsync(buffer, SocketFlags.None, ct) > 0)
                {
                }

                outcome.TrySetResult(SocketError.Success);
            }
            catch (SocketException ex)
            {
                outcome.TrySetResult(ex.SocketErrorCode);
            }
        });
        await using var sidecar = await TestSidecar.StartAsync(Config(TcpListener("svc"), Services(("svc", Service([backend.Endpoint])))));
        using var client = await Net.ConnectAsync(sidecar.Sidecar.EndpointOf("tcp"));
        await accepted.Task.WaitAsync(TestSidecar.Deadline);
        client.LingerState = new LingerOption(true, 0);
        client.Close();

        Assert.Equal(SocketError.ConnectionReset, await outcome.Task.WaitAsync(TestSidecar.Deadline));
    }

    [Fact]
    public async Task RoundRobin_ThreeBackends_ConnectionsTakeTurns()
    {
        await using var a = new TcpPeer("a");
        await using var b = new TcpPeer("b");
        await using var c = new TcpPeer("c");
        await using var sidecar = await TestSidecar.StartAsync(Config(TcpListener("svc"), Services(("svc", Service([a.Endpoint, b.Endpoint, c.Endpoint])))));

        var seen = new List<string>();
        for (var i = 0; i < 9; i++)
        {
            using var client = await Net.ConnectAsync(sidecar.Sidecar.EndpointOf("tcp"));
            seen.Add(Net.BackendOf(await Net.AskAsync(client, $"n{i}")));
        }

        // A rotation: the first three are the three backends, and the order repeats.
        Assert.Equal(["a", "b", "c"], seen.Take(3).Order(StringComparer.Ordinal));
        for (var i = 3; i < seen.Count; i++)
        {
            Assert.Equal(seen[i - 3], seen[i]);
        }
    }

    [Fact]
    public async Task RoundRobin_ManyWritesOnOneConnection_StayOnItsBackend()
    {
        await using var a = new TcpPeer("a");
        await using var b = new TcpPeer("b");
        await using var sidecar = await TestSidecar.StartAsync(Config(TcpListener("svc"), Services(("svc", Service([a.Endpoint, b.Endpoint])))));
        using var client = await Net.ConnectAsync(sidecar.Sidecar.EndpointOf("tcp"));

        var first = Net.BackendOf(await Net.AskAsync(client, "0"));
        for (var i = 1; i < 10; i++)
        {
            Assert.Equal(first, Net.BackendOf(await Net.AskAsync(client, $"{i}")));
        }

        Assert.Equal(1, a.Accepted + b.Accepted);
    }

    [Fact]
    public async Task LeastConnections_OpenConnections_NewOneGoesToTheLeastLoaded()
    {
        var peers = new[] { new TcpPeer("a"), new TcpPeer("b"), new TcpPeer("c") };
        try
        {
            await using var sidecar = await TestSidecar.StartAsync(Config(TcpListener("svc"), Services(("svc", Service(peers.Select(p => p.Endpoint), "least-connections")))));
            var listener = sidecar.Sidecar.EndpointOf("tcp");
            var open = new Dictionary<string, Socket>(StringComparer.Ordinal);
            try
            {
                // Three connections held open: each lands on a different backend.
                for (var i = 0; i < 3; i++)
                {
                    var client = await Net.ConnectAsync(listener);
                    open.Add(Net.BackendOf(await Net.AskAsync(client, "hi")), client);
                }

                Assert.Equal(["a", "b", "c"], open.Keys.Order(StringComparer.Ordinal));

                // Close the one on "b" and wait until the sidecar has let go of it.
                var bPort = peers[1].Port;
                open["b"].Dispose();
                open.Remove("b");
                await WaitForClustersAsync(sidecar, c => InFlightOf(c, "svc")[bPort] == 0, "b with no open connection");

                // The next connection goes to "b", the only endpoint without an open connection.
                var next = await Net.ConnectAsync(listener);
                open.Add("next", next);
                Assert.Equal("b", Net.BackendOf(await Net.AskAsync(next, "again")));
            }
            finally
            {
                foreach (var socket in open.Values)
                {
                    socket.Dispose();
                }
            }
        }
        finally
        {
            foreach (var peer in peers)
            {
                await peer.DisposeAsync();
            }
        }
    }

    [Fact]
    public async Task ConsistentHash_ClientAddress_StickyAndAddingEndpointMovesAboutOneNthToIt()
    {
        var peers = new[] { new TcpPeer("p1"), new TcpPeer("p2"), new TcpPeer("p3"), new TcpPeer("p4") };
        try
        {
            object Cfg(int n) => Config(TcpListener("svc"), Services(("svc", Service(peers[..n].Select(p => p.Endpoint), "consistent-hash"))));
            await using var sidecar = await TestSidecar.StartAsync(Cfg(3));
            var listener = sidecar.Sidecar.EndpointOf("tcp");

            // 300 client addresses from 127.0.0.2 on (x.y.z.0 and x.y.z.255 left out); each client binds before connecting.
            var addresses = Enumerable.Range(2, 400)
                .Where(i => i % 256 is not (0 or 255))
                .Take(300)
                .Select(i => IPAddress.Parse($"127.0.{i / 256}.{i % 256}"))
                .ToArray();

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
            Assert.Equal(before, await PlaceAsync());
            Assert.Equal(["p1", "p2", "p3"], before.Values.Distinct().Order(StringComparer.Ordinal));

            await sidecar.ReloadAsync(Cfg(4));
            var after = await PlaceAsync();
            var moved = addresses.Where(a => before[a] != after[a]).ToList();

            // About 1/4 of 300 (75) move, and only to the new endpoint.
            Assert.InRange(moved.Count, 30, 120);
            Assert.All(moved, a => Assert.Equal("p4", after[a]));
            Assert.Equal(after, await PlaceAsync());
        }
        finally
        {
            foreach (var peer in peers)
            {
                await peer.DisposeAsync();
            }
        }
    }

    [Fact]
    public async Task Connect_FirstEndpointRefuses_FailsOverAndCountsFailures()
    {
        // A port that was just bound and released: nothing listens there, so connects are refused.
        int deadPort;
        using (var closed = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp))
        {
            closed.Bind(new IPEndPoint(IPAddress.Loopback, 0));
            deadPort = ((IPEndPoint)closed.LocalEndPoint!).Port;
        }

        await using var live = new TcpPeer("live");
        await using var sidecar = await TestSidecar.StartAsync(Config(TcpListener("svc"), Services(("svc", Service([new { address = "127.0.0.1", port = deadPort }, live.Endpoint])))));

        // Round robin picks the dead endpoint for every other connection; each still reaches "live".
        for (var i = 0; i < 4; i++)
        {
            using var client = await Net.ConnectAsync(sidecar.Sidecar.EndpointOf("tcp"));
            Assert.Equal($"live:x{i}", await Net.AskAsync(client, $"x{i}"));
        }

        await WaitForMetricAsync(sidecar, ConnectFailures, 2);
        Assert.Equal(4, live.Accepted);
    }

    [Fact]
    public async Task Connect_EveryEndpointRefuses_ClientResetAndCounted()
    {
        var deadPorts = new List<int>();
        for (var i = 0; i < 2; i++)
        {
            using var closed = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            closed.Bind(new IPEndPoint(IPAddress.Loopback, 0));
            deadPorts.Add(((IPEndPoint)closed.LocalEndPoint!).Port);
        }

        await using var sidecar = await TestSidecar.StartAsync(Config(TcpListener("svc"), Services(("svc", Service(deadPorts.Select(p => (object)new { address = "127.0.0.1", port = p }))))));

        try
        {
            using var client = await Net.ConnectAsync(sidecar.Sidecar.EndpointOf("tcp"));
            Assert.True(await Net.ClosedWithoutDataAsync(client), "closed with a FIN, not a reset");
        }
        catch (SocketException ex) when (ex.SocketErrorCode == SocketError.ConnectionReset)
        {
            // The reset came before the connect completed.
        }

        await WaitForMetricAsync(sidecar, ConnectFailures, 2);
        await WaitForMetricAsync(sidecar, "mesh_l4_connections_total{listener=\"tcp\",result=\"connect-failed\"}", 1);
    }

    [Fact]
    public async Task Connect_EndpointNeverAnswersSyn_TimesOutAndFailsOver()
    {
        // A listener that never accepts, whose backlog is filled first: the kernel then drops further
        // SYNs, so a connect to it hangs until the sidecar's connect timeout.
        using var black = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        black.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        black.Listen(1);
        var blackEndPoint = (IPEndPoint)black.LocalEndPoint!;
        var fillers = new List<Socket>();
        try
        {
            var full = false;
            for (var i = 0; i < 16 && !full; i++)
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
                    // This connect got no answer: the queue is full.
                    full = true;
                }
            }

            Assert.True(full, "the never-accepting listener's backlog did not fill");

            await using var live = new TcpPeer("live");
            await using var sidecar = await TestSidecar.StartAsync(Config(
                TcpListener("svc", new { connectTimeoutMs = 300 }),
                Services(("svc", Service([new { address = "127.0.0.1", port = blackEndPoint.Port }, live.Endpoint])))));

            var clock = Stopwatch.StartNew();
            using var client = await Net.ConnectAsync(sidecar.Sidecar.EndpointOf("tcp"));
            Assert.Equal("live:x", await Net.AskAsync(client, "x"));

            // The first pick was the silent endpoint: the answer came only after its 300 ms connect timeout.
            Assert.True(clock.Elapsed >= TimeSpan.FromMilliseconds(250), $"answered after {clock.Elapsed}");
            await WaitForMetricAsync(sidecar, ConnectFailures, 1);
        }
        finally
        {
            foreach (var filler in fillers)
            {
                filler.Dispose();
            }
        }
    }

    [Fact]
    public async Task IdleTimeout_NoBytesFor300Ms_BothSidesClosed()
    {
        var accepted = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var backendEnd = new TaskCompletionSource<int>(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var backend = new TcpPeer("idle", async (connection, ct) =>
        {
            accepted.TrySetResult();
            backendEnd.TrySetResult(await connection.ReceiveAsync(new byte[16], SocketFlags.None, ct));
        });
        await using var sidecar = await TestSidecar.StartAsync(Config(TcpListener("svc", new { idleTimeoutMs = 300 }), Services(("svc", Service([backend.Endpoint])))));
        var clock = Stopwatch.StartNew();
        using var client = await Net.ConnectAsync(sidecar.Sidecar.EndpointOf("tcp"));
        await accepted.Task.WaitAsync(TestSidecar.Deadline);

        // Nothing is sent either way: once 300 ms pass in silence the sidecar closes the client (FIN) and the backend.
        Assert.Empty(await Net.ReadToEndAsync(client));
        Assert.InRange(clock.Elapsed, TimeSpan.FromMilliseconds(250), TimeSpan.FromSeconds(10));
        Assert.Equal(0, await backendEnd.Task.WaitAsync(TestSidecar.Deadline));
    }

    [Fact]
    public async Task MaxConnections_ThirdWhileTwoOpen_ResetAtOnceAndCounted()
    {
        await using var backend = new TcpPeer("lim");
        await using var sidecar = await TestSidecar.StartAsync(Config(TcpListener("svc", new { maxConnections = 2 }), Services(("svc", Service([backend.Endpoint])))));
        var listener = sidecar.Sidecar.EndpointOf("tcp");
        using var first = await Net.ConnectAsync(listener);
        using var second = await Net.ConnectAsync(listener);
        Assert.Equal("lim:1", await Net.AskAsync(first, "1"));
        Assert.Equal("lim:2", await Net.AskAsync(second, "2"));

        // The reset reaches the client on its first read (or already while connecting), not after a wait.
        var clock = Stopwatch.StartNew();
        var error = await Assert.ThrowsAsync<SocketException>(async () =>
        {
            using var third = await Net.ConnectAsync(listener);
            await Net.ReadToEndAsync(third);
        });
        Assert.Equal(SocketError.ConnectionReset, error.SocketErrorCode);
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(5), $"reset after {clock.Elapsed}");
        await WaitForMetricAsync(sidecar, "mesh_l4_connections_total{listener=\"tcp\",result=\"refused-limit\"}", 1);
        Assert.Equal(2, backend.Accepted);

        // The two open connections still work; once one closes, a new one is let in.
        Assert.Equal("lim:3", await Net.AskAsync(second, "3"));
        first.Dispose();
        await WaitForClustersAsync(sidecar, c => ListenerOf(c, "tcp").GetProperty("activeConnections").GetInt32() == 1, "one open connection");
        using var fourth = await Net.ConnectAsync(listener);
        Assert.Equal("lim:4", await Net.AskAsync(fourth, "4"));
    }

    [Fact]
    public async Task Reload_EndpointChanged_NewConnectionsMoveWhileOpenOneKeepsWorking()
    {
        await using var oldPeer = new TcpPeer("old");
        await using var newPeer = new TcpPeer("new");
        await using var sidecar = await TestSidecar.StartAsync(Config(TcpListener("svc"), Services(("svc", Service([oldPeer.Endpoint])))));
        using var open = await Net.ConnectAsync(sidecar.Sidecar.EndpointOf("tcp"));
        Assert.Equal("old:a", await Net.AskAsync(open, "a"));

        await sidecar.ReloadAsync(Config(TcpListener("svc"), Services(("svc", Service([newPeer.Endpoint])))));

        using var fresh = await Net.ConnectAsync(sidecar.Sidecar.EndpointOf("tcp"));
        Assert.Equal("new:c", await Net.AskAsync(fresh, "c"));
        Assert.Equal("old:b", await Net.AskAsync(open, "b"));
        open.Shutdown(SocketShutdown.Send);
        Assert.Empty(await Net.ReadToEndAsync(open));
    }

    [Fact]
    public async Task AdminClusters_WhileConnectionOpen_ShowsListenerActiveConnectionsAndEndpointInFlight()
    {
        await using var backend = new TcpPeer("adm");
        await using var idle = new TcpPeer("idle");
        await using var sidecar = await TestSidecar.StartAsync(Config(TcpListener("svc"), Services(("svc", Service([backend.Endpoint, idle.Endpoint], "least-connections")))));
        using var client = await Net.ConnectAsync(sidecar.Sidecar.EndpointOf("tcp"));
        var used = Net.BackendOf(await Net.AskAsync(client, "x")) == "adm" ? backend.Port : idle.Port;

        var clusters = await ClustersAsync(sidecar);
        var listener = ListenerOf(clusters, "tcp");
        Assert.Equal("tcp", listener.GetProperty("protocol").GetString());
        Assert.Equal("svc", listener.GetProperty("service").GetString());
        Assert.Equal(1, listener.GetProperty("activeConnections").GetInt32());
        var inFlight = InFlightOf(clusters, "svc");
        Assert.Equal(1, inFlight[used]);
        Assert.Equal(1, inFlight.Values.Sum());

        client.Dispose();
        await WaitForClustersAsync(
            sidecar,
            c => ListenerOf(c, "tcp").GetProperty("activeConnections").GetInt32() == 0 && InFlightOf(c, "svc").Values.Sum() == 0,
            "the closed connection gone");
    }
}
