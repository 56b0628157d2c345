// Every endpoint's HTTP/1.1 connection pool, and the timer that closes connections left idle.
namespace Mesh.Sidecar.Upstream.Http1;

/// <summary>
/// Creates the per-endpoint pools and sweeps the ones holding idle connections. A pool whose
/// endpoint left the config stops being used, so the sweep closes its connections and drops it.
/// </summary>
internal sealed class Http1PoolSet : IDisposable
{
    /// <summary>How long a connection may sit idle: below the 75 s of nginx and the 90 s of Go, as HttpClient's pool was set.</summary>
    public const int IdleTimeoutMs = 60_000;

    private readonly Dictionary<Http1ConnectionPool, byte> _swept = [];
    private readonly Lock _lock = new();
    private readonly ITimer _timer;
    private readonly TimeProvider _time;
    private readonly long _idleTimeoutMs;

    /// <summary>
    /// Pools whose connections may idle <paramref name="idleTimeoutMs"/>, swept every
    /// <paramref name="sweepPeriod"/> (default: a quarter of it, at most 15 s; infinite: only when
    /// <see cref="Sweep"/> is called), on <paramref name="time"/> (the system clock unless a test fakes it).
    /// </summary>
    public Http1PoolSet(long idleTimeoutMs = IdleTimeoutMs, TimeSpan? sweepPeriod = null, TimeProvider? time = null)
    {
        _idleTimeoutMs = idleTimeoutMs;
        _time = time ?? TimeProvider.System;
        var period = sweepPeriod ?? TimeSpan.FromMilliseconds(Math.Clamp(idleTimeoutMs / 4, 10, 15_000));
        _timer = _time.CreateTimer(static state => ((Http1PoolSet)state!).Sweep(), this, period, period);
    }

    /// <summary>How long a pooled connection may stay idle, in milliseconds.</summary>
    public long IdleTimeout => _idleTimeoutMs;

    /// <summary>Pools that currently hold idle connections.</summary>
    public int SweptPools
    {
        get
        {
            lock (_lock)
            {
                return _swept.Count;
            }
        }
    }

    public Http1ConnectionPool Create(string address, int port) => new(address, port, this, _time);

    internal void Enrol(Http1ConnectionPool pool)
    {
        lock (_lock)
        {
            _swept[pool] = 0;
        }
    }

    internal void Leave(Http1ConnectionPool pool)
    {
        lock (_lock)
        {
            _swept.Remove(pool);
        }
    }

    /// <summary>Closes expired idle connections now (the timer calls this too).</summary>
    public void Sweep()
    {
        Http1ConnectionPool[] pools;
        lock (_lock)
        {
            pools = [.. _swept.Keys];
        }

        foreach (var pool in pools)
        {
            pool.Sweep();
        }
    }

    public void Dispose()
    {
        _timer.Dispose();
        Http1ConnectionPool[] pools;
        lock (_lock)
        {
            pools = [.. _swept.Keys];
            _swept.Clear();
        }

        foreach (var pool in pools)
        {
            pool.Dispose();
        }
    }
}
