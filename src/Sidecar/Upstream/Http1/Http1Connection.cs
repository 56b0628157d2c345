// One keep-alive HTTP/1.1 connection to an upstream endpoint: its socket, its buffers and its request timer.
using System.Buffers;
using System.Net.Sockets;

namespace Mesh.Sidecar.Upstream.Http1;

/// <summary>
/// A pooled upstream connection. One request uses it at a time. The timer and the client's abort
/// token race the request for <see cref="_state"/>: whoever moves it out of <c>Busy</c> first wins.
/// The timer acts only past <see cref="_deadline"/>, so a late tick never kills the next request,
/// and activity just moves the deadline instead of re-arming the timer per read.
/// </summary>
internal sealed class Http1Connection : IDisposable
{
    /// <summary>Read and write buffers start at this size (as HttpClient's) and grow only for large heads; bodies bypass them.</summary>
    public const int BufferSize = 4 * 1024;

    private const int Idle = 0;
    private const int Busy = 1;
    private const int TimedOutState = 2;
    private const int AbortedState = 3;

    private static readonly TimerCallback OnTimer = static state => ((Http1Connection)state!).Tick();

    private const int HeaderCacheSize = 16;

    private readonly ITimer _timer;
    private readonly TimeProvider _time;
    private HeaderCacheEntry[]? _headerCache;
    private int _headerCacheNext;
    private long _deadline;
    private int _state;
    private int _armed;
    private int _armedFor;
    private int _disposed;

    /// <summary>A connection over <paramref name="socket"/>; <paramref name="time"/> runs its request timer (the system clock unless a test fakes it).</summary>
    public Http1Connection(Socket socket, TimeProvider? time = null)
    {
        Socket = socket;
        _time = time ?? TimeProvider.System;
        Read = ArrayPool<byte>.Shared.Rent(BufferSize);
        Write = ArrayPool<byte>.Shared.Rent(BufferSize);
        _timer = _time.CreateTimer(OnTimer, this, Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
    }

    public Socket Socket { get; }

    /// <summary>Response bytes received and not yet consumed live in <c>Read[ReadStart..ReadEnd]</c>.</summary>
    public byte[] Read { get; private set; }

    public int ReadStart { get; set; }

    public int ReadEnd { get; set; }

    /// <summary>The request head is written here before one send.</summary>
    public byte[] Write { get; private set; }

    /// <summary>True once the connection has carried a request, so a failure may just mean the peer closed it while idle.</summary>
    public bool Reused { get; set; }

    /// <summary>When it went back to the pool (<see cref="NowMs"/>).</summary>
    public long IdleSince { get; set; }

    public bool TimedOut => Volatile.Read(ref _state) == TimedOutState;

    /// <summary>
    /// True when the idle socket is readable: bytes nobody asked for (a late or extra response that
    /// would answer the next request) or the peer's close. Either way it must not carry a request.
    /// One poll, as HttpClient checks a pooled connection before reusing it.
    /// </summary>
    public bool HasInputWhileIdle()
    {
        try
        {
            return Socket.Poll(0, SelectMode.SelectRead);
        }
        catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
        {
            return true;
        }
    }

    /// <summary>Starts a request: arms the activity timer.</summary>
    public void Begin(int timeoutMs)
    {
        ReadStart = 0;
        ReadEnd = 0;
        Volatile.Write(ref _deadline, NowMs + timeoutMs);
        Volatile.Write(ref _state, Busy);
        if (Interlocked.Exchange(ref _armed, 1) == 0 || timeoutMs < _armedFor)
        {
            // Arm only when the timer is not already running: back-to-back requests then cost no timer-queue work.
            _armedFor = timeoutMs;
            _timer.Change(TimeSpan.FromMilliseconds(timeoutMs), Timeout.InfiniteTimeSpan);
        }
    }

    /// <summary>Upstream showed activity: the timeout counts from now.</summary>
    public void Touch(int timeoutMs) => Volatile.Write(ref _deadline, NowMs + timeoutMs);

    /// <summary>Milliseconds on this connection's clock.</summary>
    public long NowMs => (long)_time.GetElapsedTime(0).TotalMilliseconds;

    /// <summary>Ends a request; false if the timer or an abort already closed the socket.</summary>
    public bool End() => Interlocked.CompareExchange(ref _state, Idle, Busy) == Busy;

    /// <summary>The client went away: close the socket so pending reads and writes fail now.</summary>
    public void Abort() => Interrupt(AbortedState);

    /// <summary>
    /// The name and value strings for a response header, reused from the last response on this
    /// connection when the bytes are the same: an upstream repeats most of its headers, so steady
    /// traffic copies headers without allocating.
    /// </summary>
    public (string Name, string Value) HeaderStrings(ReadOnlySpan<byte> name, ReadOnlySpan<byte> value)
    {
        var entries = _headerCache ??= new HeaderCacheEntry[HeaderCacheSize];
        var free = -1;
        for (var i = 0; i < entries.Length; i++)
        {
            ref var entry = ref entries[i];
            if (entry.NameBytes is null)
            {
                free = free < 0 ? i : free;
                continue;
            }

            if (!name.SequenceEqual(entry.NameBytes))
            {
                continue;
            }

            if (!value.SequenceEqual(entry.ValueBytes))
            {
                entry.ValueBytes = value.ToArray();
                entry.Value = System.Text.Encoding.Latin1.GetString(value);
            }

            return (entry.Name!, entry.Value!);
        }

        // A new name: take a free slot, or replace in turn.
        var slot = free >= 0 ? free : _headerCacheNext++ % entries.Length;
        entries[slot] = new HeaderCacheEntry
        {
            NameBytes = name.ToArray(),
            Name = System.Text.Encoding.ASCII.GetString(name),
            ValueBytes = value.ToArray(),
            Value = System.Text.Encoding.Latin1.GetString(value),
        };
        return (entries[slot].Name!, entries[slot].Value!);
    }

    /// <summary>Grows the read buffer, keeping its unread bytes; false past <paramref name="limit"/>.</summary>
    public bool GrowRead(int limit)
    {
        if (Read.Length >= limit)
        {
            return false;
        }

        var bigger = ArrayPool<byte>.Shared.Rent(Math.Min(limit, Read.Length * 2));
        Read.AsSpan(ReadStart, ReadEnd - ReadStart).CopyTo(bigger);
        ReadEnd -= ReadStart;
        ReadStart = 0;
        ArrayPool<byte>.Shared.Return(Read);
        Read = bigger;
        return true;
    }

    /// <summary>Grows the write buffer to hold at least <paramref name="needed"/> bytes, keeping the first <paramref name="used"/>.</summary>
    public void GrowWrite(int used, int needed)
    {
        var bigger = ArrayPool<byte>.Shared.Rent(Math.Max(needed, Write.Length * 2));
        Write.AsSpan(0, used).CopyTo(bigger);
        ArrayPool<byte>.Shared.Return(Write);
        Write = bigger;
    }

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        _timer.Dispose();
        Socket.Dispose();
        // The buffers go back only when no request can touch them any more (Dispose runs on the request's own path).
        ArrayPool<byte>.Shared.Return(Read);
        ArrayPool<byte>.Shared.Return(Write);
    }

    private void Tick()
    {
        if (Volatile.Read(ref _state) != Busy)
        {
            // Idle: let the timer stop. A request that began meanwhile saw it armed and did not arm it, so check again.
            Volatile.Write(ref _armed, 0);
            if (Volatile.Read(ref _state) != Busy || Interlocked.Exchange(ref _armed, 1) != 0)
            {
                return;
            }
        }

        var left = Volatile.Read(ref _deadline) - NowMs;
        if (left > 0)
        {
            try
            {
                _timer.Change(TimeSpan.FromMilliseconds(left), Timeout.InfiniteTimeSpan);
            }
            catch (ObjectDisposedException)
            {
                // Closed meanwhile; nothing to time out.
            }

            return;
        }

        Interrupt(TimedOutState);
    }

    private void Interrupt(int reason)
    {
        if (Interlocked.CompareExchange(ref _state, reason, Busy) == Busy)
        {
            // Only the socket: the request path still owns the buffers and disposes the rest.
            Socket.Dispose();
        }
    }

    private struct HeaderCacheEntry
    {
        public byte[]? NameBytes;
        public string? Name;
        public byte[]? ValueBytes;
        public string? Value;
    }
}
