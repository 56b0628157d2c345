// Stage 1 of the data path: binds Mesh's sockets, accepts, and hands each connection to the right pipeline.
using System.Net;
using System.Net.Sockets;
using Mesh.Sidecar.Configuration;
using Mesh.Plugins;

using Mesh.Sidecar.Detection;
using Mesh.Sidecar.L4;
using Mesh.Sidecar.L4.Udp;
using Mesh.Sidecar.LoadBalancing;
using Mesh.Sidecar.Translation;
using Mesh.Sidecar.Metrics;
using Mesh.Sidecar.Security.Certificates;
using Mesh.Sidecar.Security.Tls;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Server.Kestrel.Transport.Sockets;
using Microsoft.Extensions.Options;

namespace Mesh.Sidecar.Listeners;

/// <summary>
/// Owns every listening socket (proxy listeners and admin). Sockets are bound by Mesh rather than
/// by Kestrel so that a config reload can add, move or remove listeners without a restart, and so
/// that protocol detection happens before Kestrel picks an HTTP version. Three kinds of socket:
/// Kestrel's socket transport for <c>http</c>, <c>auto</c> and admin (their connections may end in
/// Kestrel's HTTP pipelines); plain sockets for <c>tcp</c> and <c>tls-passthrough</c> (the fast relay
/// path); a UDP proxy for <c>udp</c>.
/// </summary>
internal sealed partial class ListenerManager : IAsyncDisposable
{
    /// <summary>Key of the admin socket in <see cref="BoundEndpoints"/>.</summary>
    public const string AdminKey = "@admin";

    // A client that sends nothing this long is handed to HTTP/1, whose own header timeout applies.
    private static readonly TimeSpan HttpDetectTimeout = TimeSpan.FromSeconds(5);

    private readonly SocketTransportFactory _sockets;
    private readonly VirtualConnectionListenerFactory _pipelines;
    private readonly MeshMetrics _metrics;
    private readonly MeshStateStore _store;
    private readonly L4DataPath _l4;
    private readonly ConnectionHook _hook;
    private readonly InboundTls _tls;
    private readonly ILoggerFactory _loggerFactory;
    private readonly ILogger<ListenerManager> _logger;
    private readonly CancellationTokenSource _stopping = new();
    private readonly SemaphoreSlim _applyLock = new(1, 1);
    private readonly LoadBalancer _noEndpoints = LoadBalancer.Create(Configuration.LoadBalancingPolicies.RoundRobin, []);
    private Dictionary<string, BoundSocket> _bound = new(StringComparer.Ordinal);
    private readonly List<BoundSocket> _retired = [];
    private int _disposed;
    private int _l4Active;

    public ListenerManager(
        IOptions<SocketTransportOptions> socketOptions,
        ILoggerFactory loggerFactory,
        VirtualConnectionListenerFactory pipelines,
        MeshMetrics metrics,
        MeshStateStore store,
        L4DataPath l4,
        ConnectionHook hook,
        InboundTls tls)
    {
        _sockets = new SocketTransportFactory(socketOptions, loggerFactory);
        _pipelines = pipelines;
        _metrics = metrics;
        _store = store;
        _l4 = l4;
        _hook = hook;
        _tls = tls;
        _loggerFactory = loggerFactory;
        _logger = loggerFactory.CreateLogger<ListenerManager>();
        _metrics.UdpProxies = UdpProxies;
    }

    private List<(string Listener, UdpProxy Proxy)> UdpProxies()
    {
        var proxies = new List<(string, UdpProxy)>();
        foreach (var (key, socket) in Volatile.Read(ref _bound))
        {
            if (socket.Udp is { } proxy)
            {
                proxies.Add((key, proxy));
            }
        }

        return proxies;
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

    /// <summary>Open connections per L4 listener, for the admin API.</summary>
    public int ActiveConnections(string listener) => Volatile.Read(ref _bound).TryGetValue(listener, out var socket) ? socket.Active : 0;

    /// <summary>The UDP proxy of a <c>udp</c> listener, or null.</summary>
    public UdpProxy? UdpProxyOf(string listener) => Volatile.Read(ref _bound).TryGetValue(listener, out var socket) ? socket.Udp : null;

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

            // A socket whose kind changes (say tcp to udp) at the same address must be closed before rebinding.
            foreach (var (key, spec) in desired)
            {
                if (current.TryGetValue(key, out var existing) && existing.Spec.SameAddress(spec) && existing.Spec.Kind != spec.Kind)
                {
                    await existing.StopAcceptingAsync().ConfigureAwait(false);
                }
            }

            foreach (var (key, spec) in desired)
            {
                if (current.TryGetValue(key, out var existing) && existing.Spec.SameAddress(spec) && existing.Spec.Kind == spec.Kind)
                {
                    // Same socket: keep it, update what new connections are tagged with.
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
                    errors.Add(new ConfigError(spec.Path, $"cannot bind {spec.Protocol} {spec.Address}:{spec.Port}: {ex.Message}"));
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
                    // Stop accepting; connections already accepted finish normally. The listener
                    // object owns their buffer pool, so it is disposed only at shutdown.
                    await old.StopAcceptingAsync().ConfigureAwait(false);
                    _retired.Add(old);
                    Log.ListenerStopped(_logger, key, old.Actual.ToString());
                }
            }

            foreach (var socket in added)
            {
                Log.ListenerBound(_logger, socket.Key, socket.Actual.ToString(), socket.Spec.Protocol);
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
                listener.Protocol,
                listener,
                new MeshListenerFeature(listener.Name, ListenerKind.Proxy, listener.Direction == Directions.Inbound));
        }

        desired[AdminKey] = new SocketSpec("admin", options.Admin.Address, options.Admin.Port, "admin", null, new MeshListenerFeature(AdminKey, ListenerKind.Admin, inbound: false));
        return desired;
    }

    private async Task<BoundSocket> BindAsync(string key, SocketSpec spec, CancellationToken cancellationToken)
    {
        var endpoint = new IPEndPoint(IPAddress.Parse(spec.Address), spec.Port);
        switch (spec.Kind)
        {
            case SocketKind.Raw:
            {
                var listen = new Socket(endpoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
                try
                {
                    listen.Bind(endpoint);
                    listen.Listen(512);
                }
                catch
                {
                    listen.Dispose();
                    throw;
                }

                var socket = new BoundSocket(key, spec, (IPEndPoint)listen.LocalEndPoint!, _stopping.Token) { Raw = listen };
                socket.AcceptLoop = RawAcceptLoopAsync(socket);
                return socket;
            }

            case SocketKind.Udp:
            {
                var proxy = new UdpProxy(endpoint, () => UdpBalancer(key), UdpOptions(spec.Listener!), _loggerFactory.CreateLogger<UdpProxy>());
                await proxy.StartAsync(cancellationToken).ConfigureAwait(false);
                return new BoundSocket(key, spec, proxy.LocalEndPoint, _stopping.Token) { Udp = proxy };
            }

            default:
            {
                var listener = await _sockets.BindAsync(endpoint, cancellationToken).ConfigureAwait(false);
                var socket = new BoundSocket(key, spec, (IPEndPoint)listener.EndPoint, _stopping.Token) { Transport = listener };
                socket.AcceptLoop = TransportAcceptLoopAsync(socket);
                return socket;
            }
        }
    }

    private static UdpProxyOptions UdpOptions(ListenerOptions listener) => new()
    {
        FlowIdleTimeout = TimeSpan.FromMilliseconds(listener.Udp.FlowIdleTimeoutMs),
        MaxFlows = listener.Udp.MaxFlows,
    };

    // The UDP proxy asks for the current balancer on each new flow, so endpoint changes apply to new flows.
    private LoadBalancer UdpBalancer(string listener) =>
        _store.HasState && _store.Current.L4Listeners.TryGetValue(listener, out var routes) && routes.DefaultCluster is { } cluster
            ? cluster.Balancer
            : _noEndpoints;

    private async Task TransportAcceptLoopAsync(BoundSocket socket)
    {
        await Task.Yield();
        while (!socket.Stopping.IsCancellationRequested)
        {
            ConnectionContext? connection;
            try
            {
                connection = await socket.Transport!.AcceptAsync(socket.Stopping).ConfigureAwait(false);
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

            _ = HandOffAsync(connection, socket, socket.Spec);
        }
    }

    private async Task RawAcceptLoopAsync(BoundSocket socket)
    {
        await Task.Yield();
        while (!socket.Stopping.IsCancellationRequested)
        {
            Socket client;
            try
            {
                client = await socket.Raw!.AcceptAsync(socket.Stopping).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                break;
            }
            catch (ObjectDisposedException)
            {
                break;
            }
            catch (SocketException ex)
            {
                Log.AcceptFailed(_logger, socket.Key, ex);
                continue;
            }

            var spec = socket.Spec;
            var limit = spec.Listener!.Tcp.MaxConnections;
            if (limit > 0 && socket.Active >= limit)
            {
                // Refused at once (RST), not queued: the client learns now and can go elsewhere.
                _metrics.L4Connection(spec.Listener.Name, "refused-limit");
                PipeRelay.Reset(client);
                continue;
            }

            client.NoDelay = true;
            _ = RunL4Async(socket, client, spec.Listener.Name, spec.Protocol == ListenerProtocols.TlsPassthrough);
        }
    }

    private async Task RunL4Async(BoundSocket socket, Socket client, string listener, bool tls)
    {
        socket.Opened();
        L4Opened(listener);
        try
        {
            await _l4.HandleSocketAsync(client, listener, tls, _stopping.Token).ConfigureAwait(false);
        }
        finally
        {
            socket.Closed();
            L4Closed(listener);
        }
    }

    private void L4Opened(string listener)
    {
        Interlocked.Increment(ref _l4Active);
        _metrics.L4Opened(listener);
    }

    private void L4Closed(string listener)
    {
        _metrics.L4Closed(listener);
        Interlocked.Decrement(ref _l4Active);
    }

    /// <summary>Open L4 connections on every listener (the drain waits for them).</summary>
    public int ActiveL4Connections => Volatile.Read(ref _l4Active);

    // Stage 2, protocol detection: peek the first bytes and give the connection to Kestrel's HTTP/1
    // or HTTP/2 pipeline, or (auto listeners) to the L4 path for TLS and anything else.
    private async Task HandOffAsync(ConnectionContext connection, BoundSocket socket, SocketSpec spec)
    {
        var feature = spec.Feature;
        try
        {
            connection.Features.Set(feature);
            var input = connection.Transport.Input;
            HttpPipeline pipeline;
            if (spec.Protocol == ListenerProtocols.Auto)
            {
                var started = System.Diagnostics.Stopwatch.GetTimestamp();
                var sniffed = await ProtocolSniffer.DetectAsync(input, TimeSpan.FromMilliseconds(spec.Listener!.DetectTimeoutMs), _stopping.Token).ConfigureAwait(false);
                _metrics.Detected(feature.Name, sniffed.ToString().ToLowerInvariant(), started);
                if (sniffed is not (SniffedProtocol.Http1 or SniffedProtocol.Http2))
                {
                    await RunAutoL4Async(socket, connection, feature.Name, sniffed).ConfigureAwait(false);
                    return;
                }

                pipeline = sniffed == SniffedProtocol.Http2 ? HttpPipeline.Http2 : HttpPipeline.Http1;
            }
            else
            {
                // 2a. TLS: on listeners with mtls or edge certificates a TLS record goes to Kestrel's TLS
                // pipeline (ALPN picks HTTP/1.1 or HTTP/2 after the handshake); plaintext goes on only where permissive.
                if (spec.Listener is { } options && (options.Mtls != Configuration.MtlsModes.Off || options.Tls.Certificates.Count > 0))
                {
                    var first = await FirstBytes.PeekAsync(input, HttpDetectTimeout, TlsSniff.Classify, _stopping.Token).ConfigureAwait(false);
                    if (first.Verdict == true)
                    {
                        if (!_pipelines.Dispatch(HttpPipeline.Tls, connection))
                        {
                            await connection.DisposeAsync().ConfigureAwait(false);
                        }

                        return;
                    }

                    if (options.Mtls != Configuration.MtlsModes.Permissive)
                    {
                        _tls.Refuse(feature.Name, connection.RemoteEndPoint, first.SawBytes ? RefusalReasons.Plaintext : RefusalReasons.Silent, first.SawBytes ? "a plaintext client on a listener that takes TLS only" : "the client sent nothing");
                        connection.Abort();
                        await connection.DisposeAsync().ConfigureAwait(false);
                        return;
                    }
                }

                pipeline = await HttpVersionDetector.DetectAsync(input, HttpDetectTimeout, _stopping.Token).ConfigureAwait(false);
            }

            _metrics.ConnectionDetected(feature.Name, pipeline);
            if (feature.Kind == ListenerKind.Proxy && !_hook.IsEmpty)
            {
                var remote = connection.RemoteEndPoint as IPEndPoint;
                var info = new AcceptedConnection(feature.Name, pipeline == HttpPipeline.Http2 ? "http2" : "http1", remote?.Address.ToString() ?? "", remote?.Port ?? 0, null, []);
                if (!await _hook.AllowAsync(info, _stopping.Token).ConfigureAwait(false))
                {
                    connection.Abort();
                    await connection.DisposeAsync().ConfigureAwait(false);
                    return;
                }
            }

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

    private async Task RunAutoL4Async(BoundSocket socket, ConnectionContext connection, string listener, SniffedProtocol sniffed)
    {
        // Counted on the listener too, as raw-socket connections are, so the admin API shows them.
        socket.Opened();
        L4Opened(listener);
        try
        {
            await _l4.HandleConnectionAsync(connection, listener, sniffed, _stopping.Token).ConfigureAwait(false);
        }
        finally
        {
            socket.Closed();
            L4Closed(listener);
        }
    }

    /// <summary>Closes every listening socket so shutdown can drain what was accepted.</summary>
    public async Task StopAcceptingAsync()
    {
        foreach (var socket in Volatile.Read(ref _bound).Values)
        {
            await socket.StopAcceptingAsync().ConfigureAwait(false);
        }
    }

    /// <summary>Closes the proxy listening sockets; the admin socket keeps answering (a drain's <c>/ready</c> says 503).</summary>
    public async Task StopAcceptingProxiesAsync()
    {
        foreach (var (key, socket) in Volatile.Read(ref _bound))
        {
            if (key != AdminKey)
            {
                await socket.StopAcceptingAsync().ConfigureAwait(false);
            }
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

    private enum SocketKind
    {
        Transport,
        Raw,
        Udp,
    }

    private sealed record SocketSpec(string Path, string Address, int Port, string Protocol, ListenerOptions? Listener, MeshListenerFeature Feature)
    {
        public SocketKind Kind => Protocol switch
        {
            ListenerProtocols.Tcp or ListenerProtocols.TlsPassthrough => SocketKind.Raw,
            ListenerProtocols.Udp => SocketKind.Udp,
            _ => SocketKind.Transport,
        };

        public bool SameAddress(SocketSpec other) => Port == other.Port && Address == other.Address;
    }

    private sealed class BoundSocket
    {
        private readonly CancellationTokenSource _stop;
        private int _active;
        private int _disposed;

        public BoundSocket(string key, SocketSpec spec, IPEndPoint actual, CancellationToken processStopping)
        {
            Key = key;
            Spec = spec;
            Actual = actual;
            _stop = CancellationTokenSource.CreateLinkedTokenSource(processStopping);
        }

        public string Key { get; }

        public SocketSpec Spec { get; set; }

        public IPEndPoint Actual { get; }

        public IConnectionListener? Transport { get; init; }

        public Socket? Raw { get; init; }

        public UdpProxy? Udp { get; init; }

        public Task AcceptLoop { get; set; } = Task.CompletedTask;

        public CancellationToken Stopping => _stop.Token;

        public int Active => Volatile.Read(ref _active);

        public void Opened() => Interlocked.Increment(ref _active);

        public void Closed() => Interlocked.Decrement(ref _active);

        /// <summary>Closes the listening socket; accepted connections live on.</summary>
        public async Task StopAcceptingAsync()
        {
            if (_stop.IsCancellationRequested)
            {
                return;
            }

            await _stop.CancelAsync().ConfigureAwait(false);
            if (Transport is not null)
            {
                await Transport.UnbindAsync().ConfigureAwait(false);
            }

            Raw?.Dispose();
            if (Udp is not null)
            {
                // A UDP "listener" is its flows too: stopping it ends them.
                await Udp.DisposeAsync().ConfigureAwait(false);
            }

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
            if (Interlocked.Exchange(ref _disposed, 1) == 0 && Transport is not null)
            {
                await Transport.DisposeAsync().ConfigureAwait(false);
            }
        }
    }

    private static partial class Log
    {
        [LoggerMessage(1001, LogLevel.Information, "Listener {Listener} bound on {Address} ({Protocol})")]
        public static partial void ListenerBound(ILogger logger, string listener, string address, string protocol);

        [LoggerMessage(1002, LogLevel.Information, "Listener {Listener} on {Address} stopped accepting")]
        public static partial void ListenerStopped(ILogger logger, string listener, string address);

        [LoggerMessage(1003, LogLevel.Warning, "Accept failed on listener {Listener}")]
        public static partial void AcceptFailed(ILogger logger, string listener, Exception exception);

        [LoggerMessage(1004, LogLevel.Debug, "Connection on listener {Listener} closed during protocol detection: {Reason}")]
        public static partial void DetectionFailed(ILogger logger, string listener, string reason);
    }
}
