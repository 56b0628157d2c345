// Stage 1 of the data path: binds Mesh's sockets, accepts, and hands each connection to the right pipeline.
using System.Net;
using System.Net.Sockets;
using Mesh.Sidecar.Configuration;
using Mesh.Sidecar.Detection;
using Mesh.Sidecar.Metrics;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Server.Kestrel.Transport.Sockets;
using Microsoft.Extensions.Options;

namespace Mesh.Sidecar.Listeners;

/// <summary>
/// Owns every listening socket (proxy listeners and admin). Sockets are bound by Mesh rather than
/// by Kestrel so that a config reload can add, move or remove listeners without a restart, and so
/// that protocol detection happens before Kestrel picks an HTTP version.
/// </summary>
internal sealed partial class ListenerManager : IAsyncDisposable
{
    /// <summary>Key of the admin socket in <see cref="BoundEndpoints"/>.</summary>
    public const string AdminKey = "@admin";

    // A client that sends nothing this long is handed to HTTP/1, whose own header timeout applies.
    private static readonly TimeSpan DetectTimeout = TimeSpan.FromSeconds(5);

    private readonly SocketTransportFactory _sockets;
    private readonly VirtualConnectionListenerFactory _pipelines;
    private readonly MeshMetrics _metrics;
    private readonly ILogger<ListenerManager> _logger;
    private readonly CancellationTokenSource _stopping = new();
    private readonly SemaphoreSlim _applyLock = new(1, 1);
    private Dictionary<string, BoundSocket> _bound = new(StringComparer.Ordinal);
    private readonly List<BoundSocket> _retired = [];
    private int _disposed;

    public ListenerManager(
        IOptions<SocketTransportOptions> socketOptions,
        ILoggerFactory loggerFactory,
        VirtualConnectionListenerFactory pipelines,
        MeshMetrics metrics)
    {
        _sockets = new SocketTransportFactory(socketOptions, loggerFactory);
        _pipelines = pipelines;
        _metrics = metrics;
        _logger = loggerFactory.CreateLogger<ListenerManager>();
    }

    /// <summary>The address each listener (by name) and the admin socket (<see cref="AdminKey"/>) actually bound.</summary>
    public IReadOnlyDictionary<string, IPEndPoint> BoundEndpoints
    {
        get
        {
            var bound = Volatile.Read(ref _bound);
            var result = new Dictionary<string, IPEndPoint>(bound.Count, StringComparer.Ordinal);
            foreach (var (key, socket) in bound)
            {
                result[key] = socket.Actual;
            }

            return result;
        }
    }

    /// <summary>True once every configured socket is bound.</summary>
    public bool AllBound { get; private set; }

    /// <summary>
    /// Makes the bound sockets match <paramref name="options"/>: new sockets are bound first and, if
    /// any fails, none of the change is applied. Sockets that stay keep their established connections.
    /// </summary>
    public async Task<IReadOnlyList<ConfigError>> ApplyAsync(MeshOptions options, CancellationToken cancellationToken)
    {
        await _applyLock.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            var desired = Desired(options);
            var current = _bound;
            var next = new Dictionary<string, BoundSocket>(StringComparer.Ordinal);
            var added = new List<BoundSocket>();
            var errors = new List<ConfigError>();
            foreach (var (key, spec) in desired)
            {
                if (current.TryGetValue(key, out var existing) && existing.Spec.SameSocket(spec))
                {
                    // Same address and port: keep the socket, update what new connections are tagged with.
                    existing.Spec = spec;
                    next[key] = existing;
                    continue;
                }

                try
                {
                    var socket = await BindAsync(key, spec, cancellationToken).ConfigureAwait(false);
                    added.Add(socket);
                    next[key] = socket;
                }
                catch (Exception ex) when (ex is SocketException or IOException or AddressInUseException or InvalidOperationException)
                {
                    errors.Add(new ConfigError(spec.Path, $"cannot bind {spec.Address}:{spec.Port}: {ex.Message}"));
                }
            }

            if (errors.Count > 0)
            {
                foreach (var socket in added)
                {
                    await socket.StopAsync().ConfigureAwait(false);
                }

                return errors;
            }

            Volatile.Write(ref _bound, next);
            foreach (var (key, old) in current)
            {
                if (!next.TryGetValue(key, out var kept) || !ReferenceEquals(kept, old))
                {
                    // Stop accepting; connections already accepted belong to Kestrel and finish normally.
                    // The listener object owns their buffer pool, so it is disposed only at shutdown.
                    await old.StopAcceptingAsync().ConfigureAwait(false);
                    _retired.Add(old);
                    Log.ListenerStopped(_logger, key, old.Actual.ToString());
                }
            }

            foreach (var socket in added)
            {
                Log.ListenerBound(_logger, socket.Key, socket.Actual.ToString(), socket.Spec.Kind.ToString());
            }

            AllBound = true;
            return errors;
        }
        finally
        {
            _applyLock.Release();
        }
    }

    private static Dictionary<string, SocketSpec> Desired(MeshOptions options)
    {
        var desired = new Dictionary<string, SocketSpec>(StringComparer.Ordinal);
        for (var i = 0; i < options.Listeners.Count; i++)
        {
            var listener = options.Listeners[i];
            desired[listener.Name] = new SocketSpec(
                $"listeners[{i}]",
                listener.Address,
                listener.Port,
                new MeshListenerFeature(listener.Name, ListenerKind.Proxy, listener.Direction == Directions.Inbound));
        }

        desired[AdminKey] = new SocketSpec("admin", options.Admin.Address, options.Admin.Port, new MeshListenerFeature(AdminKey, ListenerKind.Admin, inbound: false));
        return desired;
    }

    private async Task<BoundSocket> BindAsync(string key, SocketSpec spec, CancellationToken cancellationToken)
    {
        var endpoint = new IPEndPoint(IPAddress.Parse(spec.Address), spec.Port);
        var listener = await _sockets.BindAsync(endpoint, cancellationToken).ConfigureAwait(false);
        var socket = new BoundSocket(key, spec, listener, _stopping.Token);
        socket.AcceptLoop = AcceptLoopAsync(socket);
        return socket;
    }

    private async Task AcceptLoopAsync(BoundSocket socket)
    {
        await Task.Yield();
        while (!socket.Stopping.IsCancellationRequested)
        {
            ConnectionContext? connection;
            try
            {
                connection = await socket.Listener.AcceptAsync(socket.Stopping).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                break;
            }
            catch (Exception ex)
            {
                Log.AcceptFailed(_logger, socket.Key, ex);
                continue;
            }

            if (connection is null)
            {
                break;
            }

            _ = HandOffAsync(connection, socket.Spec.Feature);
        }
    }

    // Stage 2, protocol detection: peek the first bytes and give the connection to Kestrel's HTTP/1 or HTTP/2 pipeline.
    private async Task HandOffAsync(ConnectionContext connection, MeshListenerFeature feature)
    {
        try
        {
            connection.Features.Set(feature);
            var input = connection.Transport.Input;
            var pipeline = await HttpVersionDetector.DetectAsync(input, DetectTimeout, _stopping.Token).ConfigureAwait(false);
            _metrics.ConnectionDetected(feature.Name, pipeline);
            if (_pipelines.Dispatch(pipeline, connection))
            {
                return;
            }
        }
        catch (Exception ex)
        {
            Log.DetectionFailed(_logger, feature.Name, ex.Message);
        }

        await connection.DisposeAsync().ConfigureAwait(false);
    }

    /// <summary>Closes every listening socket so shutdown can drain what was accepted.</summary>
    public async Task StopAcceptingAsync()
    {
        foreach (var socket in Volatile.Read(ref _bound).Values)
        {
            await socket.StopAcceptingAsync().ConfigureAwait(false);
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        await _stopping.CancelAsync().ConfigureAwait(false);
        foreach (var socket in _bound.Values.Concat(_retired))
        {
            await socket.StopAsync().ConfigureAwait(false);
        }

        _retired.Clear();

        _bound = new Dictionary<string, BoundSocket>(StringComparer.Ordinal);
    }

    private sealed record SocketSpec(string Path, string Address, int Port, MeshListenerFeature Feature)
    {
        public ListenerKind Kind => Feature.Kind;

        public bool SameSocket(SocketSpec other) => Port == other.Port && Port != 0 && Address == other.Address
            || Port == 0 && other.Port == 0 && Address == other.Address;
    }

    private sealed class BoundSocket
    {
        private readonly CancellationTokenSource _stop;
        private int _disposed;

        public BoundSocket(string key, SocketSpec spec, IConnectionListener listener, CancellationToken processStopping)
        {
            Key = key;
            Spec = spec;
            Listener = listener;
            Actual = (IPEndPoint)listener.EndPoint;
            _stop = CancellationTokenSource.CreateLinkedTokenSource(processStopping);
        }

        public string Key { get; }

        public SocketSpec Spec { get; set; }

        public IConnectionListener Listener { get; }

        public IPEndPoint Actual { get; }

        public Task AcceptLoop { get; set; } = Task.CompletedTask;

        public CancellationToken Stopping => _stop.Token;

        /// <summary>Closes the listening socket; accepted connections live on.</summary>
        public async Task StopAcceptingAsync()
        {
            if (_stop.IsCancellationRequested)
            {
                return;
            }

            await _stop.CancelAsync().ConfigureAwait(false);
            await Listener.UnbindAsync().ConfigureAwait(false);
            try
            {
                await AcceptLoop.ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
            }
        }

        /// <summary>Stops accepting and releases the listener and its buffer pool.</summary>
        public async Task StopAsync()
        {
            await StopAcceptingAsync().ConfigureAwait(false);
            if (Interlocked.Exchange(ref _disposed, 1) == 0)
            {
                await Listener.DisposeAsync().ConfigureAwait(false);
            }
        }
    }

    private static partial class Log
    {
        [LoggerMessage(1001, LogLevel.Information, "Listener {Listener} bound on {Address} ({Kind})")]
        public static partial void ListenerBound(ILogger logger, string listener, string address, string kind);

        [LoggerMessage(1002, LogLevel.Information, "Listener {Listener} on {Address} stopped accepting")]
        public static partial void ListenerStopped(ILogger logger, string listener, string address);

        [LoggerMessage(1003, LogLevel.Warning, "Accept failed on listener {Listener}")]
        public static partial void AcceptFailed(ILogger logger, string listener, Exception exception);

        [LoggerMessage(1004, LogLevel.Debug, "Connection on listener {Listener} closed during protocol detection: {Reason}")]
        public static partial void DetectionFailed(ILogger logger, string listener, string reason);
    }
}
