// Idle keep-alive connections to one upstream endpoint, and how new ones are opened.
using System.Net;
using System.Net.Sockets;

namespace Mesh.Sidecar.Upstream.Http1;

/// <summary>
/// A last-in first-out stack of idle connections to one endpoint (the warmest connection first, as
/// HttpClient does). A plain lock rather than a concurrent stack: pushes then allocate nothing.
/// </summary>
internal sealed class Http1ConnectionPool : IDisposable
{
    /// <summary>Idle connections kept per endpoint; more are closed when they come back.</summary>
    public const int MaxIdle = 1024;

    private readonly EndPoint _endPoint;
    private readonly Http1PoolSet? _owner;
    private readonly TimeProvider _time;
    private readonly long _idleTimeoutMs;
    private readonly Lock _lock = new();
    private Http1Connection?[] _idle = new Http1Connection?[16];
    private int _count;
    private bool _disposed;
    private bool _swept;

    /// <summary>A pool for <paramref name="address"/> (IP literal or host name) and <paramref name="port"/>; <paramref name="owner"/> sweeps its idle connections.</summary>
    public Http1ConnectionPool(string address, int port, Http1PoolSet? owner = null, TimeProvider? time = null)
    {
        ArgumentNullException.ThrowIfNull(address);
        _endPoint = IPAddress.TryParse(address.Trim('[', ']'), out var ip) ? new IPEndPoint(ip, port) : new DnsEndPoint(address, port);
        _owner = owner;
        _time = time ?? TimeProvider.System;
        _idleTimeoutMs = owner?.IdleTimeout ?? Http1PoolSet.IdleTimeoutMs;
    }

    /// <summary>Milliseconds on this pool's clock.</summary>
    public long NowMs => (long)_time.GetElapsedTime(0).TotalMilliseconds;

    public int IdleCount
    {
        get
        {
            lock (_lock)
            {
                return _count;
            }
        }
    }

    /// <summary>Takes an idle connection that has not outlived the idle timeout and received nothing while idle, or null when a new one must be opened.</summary>
    public Http1Connection? TryRent()
    {
        var now = NowMs;
        while (true)
        {
            Http1Connection? connection;
            lock (_lock)
            {
                if (_count == 0)
                {
                    return null;
                }

                connection = _idle[--_count];
                _idle[_count] = null;
            }

            if (now - connection!.IdleSince < _idleTimeoutMs && !connection.HasInputWhileIdle())
            {
                return connection;
            }

            // Expired (the peer has likely timed it out already), closed by the peer, or holding
            // bytes that arrived while idle and would be taken for the next response: never reuse.
            connection.Dispose();
        }
    }

    /// <summary>Opens a new connection within <paramref name="timeoutMs"/> or when <paramref name="cancellationToken"/> fires.</summary>
    public async ValueTask<Http1Connection> ConnectAsync(int timeoutMs, CancellationToken cancellationToken)
    {
        var socket = _endPoint is IPEndPoint ip
            ? new Socket(ip.AddressFamily, SocketType.Stream, ProtocolType.Tcp)
            : new Socket(SocketType.Stream, ProtocolType.Tcp);
        try
        {
            socket.NoDelay = true;
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            timeout.CancelAfter(timeoutMs);
            try
            {
                await socket.ConnectAsync(_endPoint, timeout.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
            {
                throw new TimeoutException($"connecting to {_endPoint} took longer than {timeoutMs} ms");
            }

            return new Http1Connection(socket, _time);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    /// <summary>Gives a connection that finished a request cleanly back for the next one.</summary>
    public void Return(Http1Connection connection)
    {
        var now = NowMs;
        connection.IdleSince = now;
        connection.Reused = true;
        lock (_lock)
        {
            if (!_disposed && _count < MaxIdle)
            {
                if (_count == _idle.Length)
                {
                    Array.Resize(ref _idle, _idle.Length * 2);
                }

                _idle[_count++] = connection;
                if (!_swept && _owner is not null)
                {
                    // Enrol with the sweeper only while holding connections, so pools of removed endpoints drop out of it.
                    _swept = true;
                    _owner.Enrol(this);
                }

                return;
            }
        }

        connection.Dispose();
    }

    /// <summary>
    /// Closes connections idle for the idle timeout or more (the oldest sit at the
    /// bottom). An emptied pool leaves its sweeper until a connection comes back.
    /// </summary>
    public void Sweep()
    {
        var now = NowMs;
        List<Http1Connection>? expired = null;
        lock (_lock)
        {
            var keep = 0;
            for (var i = 0; i < _count; i++)
            {
                var connection = _idle[i]!;
                if (now - connection.IdleSince >= _idleTimeoutMs)
                {
                    (expired ??= []).Add(connection);
                }
                else
                {
                    _idle[keep++] = connection;
                }
            }

            Array.Clear(_idle, keep, _count - keep);
            _count = keep;
            if (keep == 0 && _swept)
            {
                // Under this pool's lock, so a concurrent Return cannot enrol in between (lock order: pool, then set).
                _swept = false;
                _owner?.Leave(this);
            }
        }

        if (expired is not null)
        {
            foreach (var connection in expired)
            {
                connection.Dispose();
            }
        }
    }

    public void Dispose()
    {
        Http1Connection?[] idle;
        int count;
        lock (_lock)
        {
            _disposed = true;
            idle = _idle;
            count = _count;
            _idle = [];
            _count = 0;
        }

        for (var i = 0; i < count; i++)
        {
            idle[i]!.Dispose();
        }
    }
}
