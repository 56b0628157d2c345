// Graceful shutdown: /ready fails at once, proxy sockets stop accepting, open work finishes up to shutdown.drainTimeoutMs, then the rest is cut and counted.
using System.Collections.Concurrent;
using System.Diagnostics;
using System.Runtime.InteropServices;
using Mesh.Sidecar.Listeners;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Connections.Features;

namespace Mesh.Sidecar.Hosting;

/// <summary>
/// Runs the drain that SIGTERM, Ctrl-C or disposing a sidecar starts. The admin listener keeps
/// answering throughout, so a load balancer or health check sees <c>/ready</c> turn 503 before
/// the proxy's sockets go away. HTTP connections are asked to close after their current request
/// (HTTP/1.1 <c>Connection: close</c>, HTTP/2 GOAWAY); L4 connections run until they close.
/// What is still open at the deadline is cut, and the log says how much.
/// </summary>
internal sealed partial class ShutdownDrain(ILogger<ShutdownDrain> logger)
{
    // Proxy HTTP connections Kestrel is running (admin connections are not drained; they close last).
    private readonly ConcurrentDictionary<ConnectionContext, byte> _connections = new();

    // One counter per processor, each on its own cache line: requests start and end on every core
    // at once, and a single shared counter would bounce between their caches on every request. A
    // request may end on another processor than it started on; only the sum means anything.
    private readonly Stripe[] _requests = new Stripe[Environment.ProcessorCount];
    private int _draining;
    private int _drainStarted;

    /// <summary>True from the moment a drain starts: <c>/ready</c> answers 503.</summary>
    public bool IsDraining => Volatile.Read(ref _draining) != 0;

    /// <summary>Proxy requests being handled now.</summary>
    public int RequestsInFlight
    {
        get
        {
            var sum = 0;
            for (var i = 0; i < _requests.Length; i++)
            {
                sum += Volatile.Read(ref _requests[i].Count);
            }

            return sum;
        }
    }

    /// <summary>Open proxy HTTP connections.</summary>
    public int HttpConnections => _connections.Count;

    /// <summary>
    /// The sidecar is leaving: <c>/ready</c> answers 503 from now on while everything keeps serving
    /// (Consul deregistration and its grace period come before the drain itself).
    /// </summary>
    public void BeginLeaving() => Volatile.Write(ref _draining, 1);

    /// <summary>Counts one proxy request until the returned scope is disposed.</summary>
    public RequestScope TrackRequest()
    {
        Interlocked.Increment(ref CurrentStripe().Count);
        return new RequestScope(this);
    }

    private ref Stripe CurrentStripe() => ref _requests[(uint)Thread.GetCurrentProcessorId() % (uint)_requests.Length];

    /// <summary>A Kestrel connection started; proxy connections are drained, admin ones are not.</summary>
    public void ConnectionOpened(ConnectionContext connection, bool admin)
    {
        ArgumentNullException.ThrowIfNull(connection);
        if (!admin)
        {
            // One accepted just before the sockets closed is not asked to close here: with HTTP/1.1
            // that would drop the request it already sent. Its first response says Connection: close.
            _connections.TryAdd(connection, 0);
        }
    }

    /// <summary>True once the drain closes connections (after any Consul grace): responses then end their connection.</summary>
    public bool IsClosingConnections => Volatile.Read(ref _drainStarted) != 0;

    /// <summary>
    /// Ends the connection of <paramref name="context"/> after this response: HTTP/1.1 gets
    /// <c>Connection: close</c> (set just before the headers go, after either forwarder copied the
    /// upstream's), HTTP/2 a GOAWAY that lets open streams finish. Called only while draining.
    /// </summary>
    public static void CloseAfterResponse(HttpContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        if (HttpProtocol.IsHttp2(context.Request.Protocol))
        {
            context.Features.Get<IConnectionLifetimeNotificationFeature>()?.RequestClose();
            return;
        }

        context.Response.OnStarting(static state =>
        {
            ((HttpResponse)state).Headers.Connection = "close";
            return Task.CompletedTask;
        }, context.Response);
    }

    /// <summary>A Kestrel connection ended.</summary>
    public void ConnectionClosed(ConnectionContext connection) => _connections.TryRemove(connection, out _);

    /// <summary>
    /// Drains: stops accepting on proxy sockets, asks HTTP connections to close after their
    /// current request, and waits until nothing is open or <paramref name="deadline"/> passes.
    /// Returns true when everything finished in time. The caller then stops the host (which closes
    /// the admin listener and aborts what is left) and the listeners (which cut L4 connections).
    /// </summary>
    public async Task<bool> DrainAsync(ListenerManager listeners, TimeSpan deadline)
    {
        ArgumentNullException.ThrowIfNull(listeners);
        if (Interlocked.Exchange(ref _drainStarted, 1) != 0)
        {
            return true;
        }

        BeginLeaving();

        var started = Stopwatch.GetTimestamp();
        Log.DrainStarted(logger, deadline.TotalMilliseconds, RequestsInFlight, HttpConnections, listeners.ActiveL4Connections);
        await listeners.StopAcceptingProxiesAsync().ConfigureAwait(false);
        foreach (var connection in _connections.Keys)
        {
            RequestClose(connection);
        }

        // Polled rather than signalled: it runs once per process, and connections end on many paths.
        using var tick = new PeriodicTimer(TimeSpan.FromMilliseconds(20));
        while (HttpConnections > 0 || listeners.ActiveL4Connections > 0)
        {
            var left = deadline - Stopwatch.GetElapsedTime(started);
            if (left <= TimeSpan.Zero)
            {
                Log.DrainDeadline(logger, deadline.TotalMilliseconds, RequestsInFlight, HttpConnections, listeners.ActiveL4Connections);
                return false;
            }

            await tick.WaitForNextTickAsync().ConfigureAwait(false);
        }

        Log.Drained(logger, Stopwatch.GetElapsedTime(started).TotalMilliseconds);
        return true;
    }

    private static void RequestClose(ConnectionContext connection) =>
        connection.Features.Get<IConnectionLifetimeNotificationFeature>()?.RequestClose();

    /// <summary>Ends one tracked request when disposed; a struct, so tracking allocates nothing.</summary>
    internal readonly struct RequestScope(ShutdownDrain owner) : IDisposable
    {
        public void Dispose() => Interlocked.Decrement(ref owner.CurrentStripe().Count);
    }

    [StructLayout(LayoutKind.Explicit, Size = 128)]
    private struct Stripe
    {
        // In the middle of 128 bytes, so no neighbour shares its cache line (or the adjacent one prefetched with it).
        [FieldOffset(64)]
        public int Count;
    }

    private static partial class Log
    {
        [LoggerMessage(4101, LogLevel.Information, "Draining: /ready answers 503 and the proxy listeners stopped accepting; waiting up to {DeadlineMs} ms (shutdown.drainTimeoutMs) for {Requests} requests in flight, {HttpConnections} HTTP connections and {L4Connections} L4 connections")]
        public static partial void DrainStarted(ILogger logger, double deadlineMs, int requests, int httpConnections, int l4Connections);

        [LoggerMessage(4102, LogLevel.Information, "Drained in {ElapsedMs:0} ms: every request and connection finished")]
        public static partial void Drained(ILogger logger, double elapsedMs);

        [LoggerMessage(4103, LogLevel.Warning, "Drain deadline of {DeadlineMs} ms (shutdown.drainTimeoutMs) reached: cutting {Requests} requests in flight, {HttpConnections} HTTP connections and {L4Connections} L4 connections")]
        public static partial void DrainDeadline(ILogger logger, double deadlineMs, int requests, int httpConnections, int l4Connections);
    }
}
