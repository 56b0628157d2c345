// The HTTP/1.1 client's idle connections: kept, reused warmest first, expired on the pool's clock, swept, closed on disposal.
using Mesh.Sidecar.Upstream.Http1;
using Microsoft.Extensions.Time.Testing;

namespace Mesh.Sidecar.Tests.Upstream.Http1;

public sealed class Http1ConnectionPoolTests
{
    private const string Ok = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";

    [Fact]
    public async Task Return_PoolWithoutSweeper_KeepsTheConnectionForTheNextRent()
    {
        await using var upstream = new ScriptedUpstream(_ => new ScriptedReply(Ok));
        using var pool = new Http1ConnectionPool("127.0.0.1", upstream.Port);
        var connection = await pool.ConnectAsync(5000, CancellationToken.None);

        pool.Return(connection);

        Assert.Equal(1, pool.IdleCount);
        Assert.Same(connection, pool.TryRent());
        Assert.Null(pool.TryRent());
        connection.Dispose();
    }

    [Fact]
    public async Task Return_MoreThanSixteenConnections_KeepsThemAllWarmestFirst()
    {
        await using var upstream = new ScriptedUpstream(_ => new ScriptedReply(Ok));
        using var pool = new Http1ConnectionPool("127.0.0.1", upstream.Port);
        var connections = new List<Http1Connection>();
        for (var i = 0; i < 20; i++)
        {
            connections.Add(await pool.ConnectAsync(5000, CancellationToken.None));
        }

        foreach (var connection in connections)
        {
            pool.Return(connection);
        }

        Assert.Equal(20, pool.IdleCount);
        for (var i = 19; i >= 0; i--)
        {
            Assert.Same(connections[i], pool.TryRent());
        }

        Assert.Null(pool.TryRent());
        foreach (var connection in connections)
        {
            connection.Dispose();
        }
    }

    [Fact]
    public async Task Return_AfterDispose_ClosesTheConnection()
    {
        await using var upstream = new ScriptedUpstream(_ => new ScriptedReply(Ok));
        var pool = new Http1ConnectionPool("127.0.0.1", upstream.Port);
        var connection = await pool.ConnectAsync(5000, CancellationToken.None);
        pool.Dispose();

        pool.Return(connection);

        Assert.Equal(0, pool.IdleCount);
        Assert.Null(pool.TryRent());
        await upstream.NextClosedAsync();
    }

    [Fact]
    public async Task Dispose_IdleConnections_AreClosed()
    {
        await using var upstream = new ScriptedUpstream(_ => new ScriptedReply(Ok));
        var pool = new Http1ConnectionPool("127.0.0.1", upstream.Port);
        pool.Return(await pool.ConnectAsync(5000, CancellationToken.None));
        pool.Return(await pool.ConnectAsync(5000, CancellationToken.None));

        pool.Dispose();

        Assert.Equal(0, pool.IdleCount);
        await upstream.NextClosedAsync();
        await upstream.NextClosedAsync();
    }

    [Fact]
    public async Task TryRent_IdleForTheIdleTimeout_ClosesItAndOpensNew()
    {
        var time = new FakeTimeProvider();
        using var pools = new Http1PoolSet(idleTimeoutMs: 1000, sweepPeriod: Timeout.InfiniteTimeSpan, time: time);
        await using var upstream = new ScriptedUpstream(_ => new ScriptedReply(Ok));
        var pool = pools.Create("127.0.0.1", upstream.Port);
        var connection = await pool.ConnectAsync(5000, CancellationToken.None);
        pool.Return(connection);

        time.Advance(TimeSpan.FromMilliseconds(999));
        Assert.Same(connection, pool.TryRent());
        pool.Return(connection);
        time.Advance(TimeSpan.FromMilliseconds(1000));

        Assert.Null(pool.TryRent());
        Assert.Equal(0, pool.IdleCount);
        await upstream.NextClosedAsync();
    }

    [Fact]
    public async Task Sweep_ClosesExpiredConnectionsAndKeepsFreshOnes()
    {
        var time = new FakeTimeProvider();
        using var pools = new Http1PoolSet(idleTimeoutMs: 1000, sweepPeriod: Timeout.InfiniteTimeSpan, time: time);
        await using var upstream = new ScriptedUpstream(_ => new ScriptedReply(Ok));
        var pool = pools.Create("127.0.0.1", upstream.Port);
        // Fifteen old connections and a fresh one fill the pool's first array exactly.
        for (var i = 0; i < 15; i++)
        {
            pool.Return(await pool.ConnectAsync(5000, CancellationToken.None));
        }

        time.Advance(TimeSpan.FromMilliseconds(500));
        var fresh = await pool.ConnectAsync(5000, CancellationToken.None);
        pool.Return(fresh);
        time.Advance(TimeSpan.FromMilliseconds(500));

        pools.Sweep();

        Assert.Equal(1, pool.IdleCount);
        Assert.Equal(1, pools.SweptPools);
        for (var i = 0; i < 15; i++)
        {
            await upstream.NextClosedAsync();
        }

        // The pool is still swept: the fresh connection goes once it has idled long enough.
        time.Advance(TimeSpan.FromMilliseconds(500));
        pools.Sweep();
        Assert.Equal(0, pool.IdleCount);
        Assert.Equal(0, pools.SweptPools);
        await upstream.NextClosedAsync();
    }

    [Fact]
    public async Task Sweep_PoolEmptiedThenGivenAConnection_IsSweptAgain()
    {
        var time = new FakeTimeProvider();
        using var pools = new Http1PoolSet(idleTimeoutMs: 1000, sweepPeriod: Timeout.InfiniteTimeSpan, time: time);
        await using var upstream = new ScriptedUpstream(_ => new ScriptedReply(Ok));
        var pool = pools.Create("127.0.0.1", upstream.Port);
        pool.Return(await pool.ConnectAsync(5000, CancellationToken.None));
        time.Advance(TimeSpan.FromMilliseconds(1000));
        pools.Sweep();
        Assert.Equal(0, pools.SweptPools);
        await upstream.NextClosedAsync();

        pool.Return(await pool.ConnectAsync(5000, CancellationToken.None));
        Assert.Equal(1, pools.SweptPools);
        time.Advance(TimeSpan.FromMilliseconds(1000));
        pools.Sweep();

        Assert.Equal(0, pool.IdleCount);
        await upstream.NextClosedAsync();
    }

    [Theory]
    [InlineData(4000)]
    [InlineData(60_000)]
    public async Task SweepTimer_DefaultPeriod_ClosesIdleConnectionsOnThePoolSetsClock(int idleTimeoutMs)
    {
        // The default period is a quarter of the idle timeout: four periods on the fake clock reach it.
        var time = new FakeTimeProvider();
        using var pools = new Http1PoolSet(idleTimeoutMs: idleTimeoutMs, time: time);
        await using var upstream = new ScriptedUpstream(_ => new ScriptedReply(Ok));
        var pool = pools.Create("127.0.0.1", upstream.Port);
        pool.Return(await pool.ConnectAsync(5000, CancellationToken.None));

        for (var i = 0; i < 4; i++)
        {
            time.Advance(TimeSpan.FromMilliseconds(idleTimeoutMs / 4));
        }

        await upstream.NextClosedAsync();
        Assert.Equal(0, pool.IdleCount);
    }

    [Fact]
    public async Task SweepTimer_InfinitePeriod_NeverSweeps()
    {
        var time = new FakeTimeProvider();
        using var pools = new Http1PoolSet(idleTimeoutMs: 1000, sweepPeriod: Timeout.InfiniteTimeSpan, time: time);
        await using var upstream = new ScriptedUpstream(_ => new ScriptedReply(Ok));
        var pool = pools.Create("127.0.0.1", upstream.Port);
        pool.Return(await pool.ConnectAsync(5000, CancellationToken.None));

        for (var i = 0; i < 8; i++)
        {
            time.Advance(TimeSpan.FromMilliseconds(250));
        }

        Assert.Equal(1, pool.IdleCount);
    }

    [Fact]
    public async Task Dispose_PoolSet_ClosesEveryIdleConnection()
    {
        await using var upstream = new ScriptedUpstream(_ => new ScriptedReply(Ok));
        var pools = new Http1PoolSet(sweepPeriod: Timeout.InfiniteTimeSpan);
        var pool = pools.Create("127.0.0.1", upstream.Port);
        pool.Return(await pool.ConnectAsync(5000, CancellationToken.None));

        pools.Dispose();

        Assert.Equal(0, pool.IdleCount);
        Assert.Equal(0, pools.SweptPools);
        await upstream.NextClosedAsync();
    }
}
