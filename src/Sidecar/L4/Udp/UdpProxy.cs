// UDP L4 proxy: one flow per client address and port, consistent-hashed on the client address, replies from the listen socket.
using System.Buffers;
using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using Mesh.Discovery;
using Mesh.Sidecar.LoadBalancing;

namespace Mesh.Sidecar.L4.Udp;

/// <summary>
/// Proxies a datagram protocol (a game server's, for example) to the endpoints of one service.
/// </summary>
/// <remarks>
/// <para>Each client source address and port is a flow. The first datagram of a flow picks an
/// endpoint with <c>balancer().Pick(StableHash.Of(client address))</c>, so one client machine keeps
/// its backend across ports and across sidecars, and opens a connected upstream socket for the flow.
/// Replies on that socket go back to the client from the listen socket, so the client sees them
/// come from the address it sent to.</para>
/// <para>Flows close after <see cref="UdpProxyOptions.FlowIdleTimeout"/> without a datagram either
/// way (a sweep every quarter of the timeout), when their endpoint leaves the balancer's endpoint
/// set (the next datagram picks again), or when the proxy is disposed. Endpoints added to the set do
/// not move existing flows.</para>
/// <para>The listen socket is read by one loop with one buffer; an upstream loop holds no buffer while
/// it waits (a zero-byte peek) and rents one from <see cref="ArrayPool{T}"/> per reply, so idle flows
/// cost a socket and nothing else.</para>
/// </remarks>
internal sealed partial class UdpProxy : IAsyncDisposable
{
    /// <summary>Larger than any UDP payload (65,507 bytes over IPv4, 65,527 over IPv6).</summary>
    private const int MaxDatagramSize = 1 << 16;

    /// <summary>Repeated warnings (flow limit, no endpoint, upstream errors) are logged at most this often.</summary>
    private const long WarningIntervalMs = 10_000;

    private readonly IPEndPoint _listen;
    private readonly Func<LoadBalancer> _balancer;
    private readonly UdpProxyOptions _options;
    private readonly ILogger _logger;
    private readonly ConcurrentDictionary<SocketAddress, UdpFlow> _flows = new();
    private readonly CancellationTokenSource _stopping = new();
    private readonly Lock _balancerLock = new();
    private readonly long _idleTimeoutMs;

    private Socket? _listenSocket;
    private IPEndPoint? _localEndPoint;
    private Task _receiveLoop = Task.CompletedTask;
    private Task _sweepLoop = Task.CompletedTask;
    private LoadBalancer? _appliedBalancer;
    private int _started;
    private int _disposed;

    private int _activeFlows;
    private long _flowsCreated;
    private long _flowsExpired;
    private long _datagramsIn;
    private long _datagramsOut;
    private long _datagramsDropped;

    private long _lastLimitWarning = -WarningIntervalMs;
    private long _lastNoEndpointWarning = -WarningIntervalMs;
    private long _lastUpstreamWarning = -WarningIntervalMs;

    /// <param name="listen">Where clients send datagrams; port 0 picks a free port (see <see cref="LocalEndPoint"/>).</param>
    /// <param name="balancer">Returns the current balancer; called per datagram, so it must be cheap (a field read).
    /// A different instance means the endpoint set changed.</param>
    /// <param name="options">Flow idle timeout and flow limit.</param>
    /// <param name="logger">Lifecycle and rate-limited warnings; nothing per datagram.</param>
    public UdpProxy(IPEndPoint listen, Func<LoadBalancer> balancer, UdpProxyOptions options, ILogger logger)
    {
        ArgumentNullException.ThrowIfNull(listen);
        ArgumentNullException.ThrowIfNull(balancer);
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(logger);
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(options.FlowIdleTimeout, TimeSpan.Zero, nameof(options));
        ArgumentOutOfRangeException.ThrowIfLessThan(options.MaxFlows, 1, nameof(options));
        _listen = listen;
        _balancer = balancer;
        _options = options;
        _logger = logger;
        _idleTimeoutMs = Math.Max(1, (long)options.FlowIdleTimeout.TotalMilliseconds);
    }

    /// <summary>The bound listen address; valid after <see cref="StartAsync"/>.</summary>
    public IPEndPoint LocalEndPoint => _localEndPoint ?? throw new InvalidOperationException("The UDP proxy has not been started.");

    /// <summary>Flows open now.</summary>
    public int ActiveFlows => Volatile.Read(ref _activeFlows);

    /// <summary>Flows opened since start.</summary>
    public long FlowsCreated => Interlocked.Read(ref _flowsCreated);

    /// <summary>Flows closed by the idle timeout.</summary>
    public long FlowsExpired => Interlocked.Read(ref _flowsExpired);

    /// <summary>Datagrams received from clients, dropped ones included.</summary>
    public long DatagramsIn => Interlocked.Read(ref _datagramsIn);

    /// <summary>Replies sent back to clients.</summary>
    public long DatagramsOut => Interlocked.Read(ref _datagramsOut);

    /// <summary>
    /// Datagrams not delivered: a new flow over <see cref="UdpProxyOptions.MaxFlows"/>, no endpoint to
    /// pick, an upstream socket that could not be opened, or a send that failed (either direction).
    /// </summary>
    public long DatagramsDropped => Interlocked.Read(ref _datagramsDropped);

    /// <summary>Binds the listen socket and starts the receive loop and the idle sweep.</summary>
    public Task StartAsync(CancellationToken cancellationToken)
    {
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        cancellationToken.ThrowIfCancellationRequested();
        if (Interlocked.Exchange(ref _started, 1) != 0)
        {
            throw new InvalidOperationException("The UDP proxy has already been started.");
        }

        var socket = new Socket(_listen.AddressFamily, SocketType.Dgram, ProtocolType.Udp);
        try
        {
            if (_listen.AddressFamily == AddressFamily.InterNetworkV6 && _listen.Address.Equals(IPAddress.IPv6Any))
            {
                socket.DualMode = true;
            }

            socket.Bind(_listen);
        }
        catch
        {
            socket.Dispose();
            throw;
        }

        _listenSocket = socket;
        _localEndPoint = (IPEndPoint)socket.LocalEndPoint!;
        _appliedBalancer = _balancer();
        var stopping = _stopping.Token;
        _receiveLoop = Task.Run(() => ReceiveLoopAsync(socket, stopping), CancellationToken.None);
        _sweepLoop = Task.Run(() => SweepLoopAsync(stopping), CancellationToken.None);
        Log.Started(_logger, _localEndPoint, _options.FlowIdleTimeout, _options.MaxFlows);
        return Task.CompletedTask;
    }

    /// <summary>Stops the loops and closes the listen socket and every flow. Safe to call more than once.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        await _stopping.CancelAsync().ConfigureAwait(false);
        _listenSocket?.Dispose();

        // The receive loop is the only creator of flows: once it has stopped, closing all is final.
        await Task.WhenAll(_receiveLoop, _sweepLoop).ConfigureAwait(false);
        var receiving = new List<Task>(_flows.Count);
        foreach (var pair in _flows)
        {
            receiving.Add(pair.Value.Receiving);
            CloseFlow(pair.Value, expired: false);
        }

        await Task.WhenAll(receiving).ConfigureAwait(false);
        _stopping.Dispose();
        if (_localEndPoint is not null)
        {
            Log.Stopped(_logger, _localEndPoint);
        }
    }

    /// <summary>Client to upstream. The only place flows are created, so the flow limit needs no lock.</summary>
    private async Task ReceiveLoopAsync(Socket socket, CancellationToken stopping)
    {
        var buffer = GC.AllocateUninitializedArray<byte>(MaxDatagramSize, pinned: true);
        var maxAddressSize = SocketAddress.GetMaximumAddressSize(socket.AddressFamily);
        var from = new SocketAddress(socket.AddressFamily, maxAddressSize);
        while (!stopping.IsCancellationRequested)
        {
            int length;
            try
            {
                from.Size = maxAddressSize;
                length = await socket.ReceiveFromAsync(buffer, SocketFlags.None, from, stopping).ConfigureAwait(false);
            }
            catch (Exception) when (stopping.IsCancellationRequested)
            {
                break;
            }
            catch (SocketException)
            {
                // ICMP errors surface here on some platforms (WSAECONNRESET on Windows); the socket is fine.
                continue;
            }

            Interlocked.Increment(ref _datagramsIn);
            try
            {
                var balancer = _balancer();
                if (!ReferenceEquals(balancer, Volatile.Read(ref _appliedBalancer)))
                {
                    ApplyBalancer(balancer);
                }

                if (!_flows.TryGetValue(from, out var flow) || flow.IsClosed)
                {
                    flow = await OpenFlowAsync(from, balancer, stopping).ConfigureAwait(false);
                    if (flow is null)
                    {
                        Interlocked.Increment(ref _datagramsDropped);
                        continue;
                    }
                }

                flow.Touch();
                await flow.Upstream.SendAsync(buffer.AsMemory(0, length), SocketFlags.None, stopping).ConfigureAwait(false);
            }
            catch (Exception) when (stopping.IsCancellationRequested)
            {
                break;
            }
            catch (Exception e) when (e is SocketException or ObjectDisposedException)
            {
                // The backend refused an earlier datagram (ICMP port unreachable), or the flow closed
                // between lookup and send. UDP is lossy; the client retries on its own terms.
                Interlocked.Increment(ref _datagramsDropped);
            }
            catch (Exception e)
            {
                Interlocked.Increment(ref _datagramsDropped);
                if (ShouldWarn(ref _lastUpstreamWarning))
                {
                    Log.ForwardFailed(_logger, _localEndPoint!, e);
                }
            }
        }
    }

    /// <summary>Upstream to client, one loop per flow until the flow closes.</summary>
    private async Task UpstreamLoopAsync(UdpFlow flow, Socket listenSocket, CancellationToken stopping)
    {
        var upstream = flow.Upstream;
        while (!flow.IsClosed)
        {
            byte[]? buffer = null;
            try
            {
                // Wait for a reply without holding a buffer; the datagram stays queued.
                try
                {
                    await upstream.ReceiveAsync(Memory<byte>.Empty, SocketFlags.Peek, stopping).ConfigureAwait(false);
                }
                catch (SocketException e) when (e.SocketErrorCode == SocketError.MessageSize)
                {
                    // Windows reports a peeked datagram larger than the buffer this way; it is still queued.
                }

                buffer = ArrayPool<byte>.Shared.Rent(MaxDatagramSize);
                var length = await upstream.ReceiveAsync(buffer, SocketFlags.None, stopping).ConfigureAwait(false);
                flow.Touch();
                try
                {
                    await listenSocket.SendToAsync(buffer.AsMemory(0, length), SocketFlags.None, flow.ClientAddress, stopping).ConfigureAwait(false);
                    Interlocked.Increment(ref _datagramsOut);
                }
                catch (SocketException)
                {
                    Interlocked.Increment(ref _datagramsDropped);
                }
            }
            catch (Exception) when (flow.IsClosed || stopping.IsCancellationRequested)
            {
                break;
            }
            catch (SocketException e) when (e.SocketErrorCode is SocketError.ConnectionRefused or SocketError.ConnectionReset)
            {
                // ICMP port unreachable for an earlier datagram: nothing listens on the backend right now.
                // Keep the flow; the balancer, not one lost datagram, decides when the endpoint is gone.
            }
            catch (Exception e)
            {
                if (ShouldWarn(ref _lastUpstreamWarning))
                {
                    Log.UpstreamFailed(_logger, flow.Client, flow.Endpoint.Authority, e);
                }

                CloseFlow(flow, expired: false);
                break;
            }
            finally
            {
                if (buffer is not null)
                {
                    ArrayPool<byte>.Shared.Return(buffer);
                }
            }
        }
    }

    /// <summary>Closes idle flows every quarter of the idle timeout; also notices endpoint changes without traffic.</summary>
    private async Task SweepLoopAsync(CancellationToken stopping)
    {
        var interval = TimeSpan.FromMilliseconds(Math.Max(1, _idleTimeoutMs / 4));
        using var timer = new PeriodicTimer(interval);
        try
        {
            while (await timer.WaitForNextTickAsync(stopping).ConfigureAwait(false))
            {
                try
                {
                    var balancer = _balancer();
                    if (!ReferenceEquals(balancer, Volatile.Read(ref _appliedBalancer)))
                    {
                        ApplyBalancer(balancer);
                    }

                    var cutoff = Environment.TickCount64 - _idleTimeoutMs;
                    foreach (var pair in _flows)
                    {
                        if (pair.Value.LastActivity <= cutoff)
                        {
                            CloseFlow(pair.Value, expired: true);
                        }
                    }
                }
                catch (Exception e) when (!stopping.IsCancellationRequested)
                {
                    Log.SweepFailed(_logger, _localEndPoint!, e);
                }
            }
        }
        catch (OperationCanceledException) when (stopping.IsCancellationRequested)
        {
        }
    }

    /// <summary>Opens the flow for a client's first datagram, or returns null when it must be dropped.</summary>
    private async ValueTask<UdpFlow?> OpenFlowAsync(SocketAddress from, LoadBalancer balancer, CancellationToken stopping)
    {
        if (Volatile.Read(ref _activeFlows) >= _options.MaxFlows)
        {
            if (ShouldWarn(ref _lastLimitWarning))
            {
                Log.FlowLimitReached(_logger, _localEndPoint!, _options.MaxFlows);
            }

            return null;
        }

        var client = (IPEndPoint)_localEndPoint!.Create(from);
        var endpoint = balancer.Pick(StableHash.Of(client.Address));
        if (endpoint is null)
        {
            if (ShouldWarn(ref _lastNoEndpointWarning))
            {
                Log.NoEndpoint(_logger, _localEndPoint);
            }

            return null;
        }

        IPEndPoint remote;
        Socket? upstream = null;
        try
        {
            remote = await ResolveAsync(endpoint.Endpoint, stopping).ConfigureAwait(false);
            upstream = new Socket(remote.AddressFamily, SocketType.Dgram, ProtocolType.Udp);
            upstream.Bind(new IPEndPoint(LocalAddressFor(remote.Address), 0));
            upstream.Connect(remote);
        }
        catch (Exception e) when (e is SocketException or ArgumentException && !stopping.IsCancellationRequested)
        {
            upstream?.Dispose();
            if (ShouldWarn(ref _lastUpstreamWarning))
            {
                Log.UpstreamOpenFailed(_logger, client, endpoint.Authority, e);
            }

            return null;
        }

        var key = new SocketAddress(from.Family, from.Size);
        from.Buffer.Span[..from.Size].CopyTo(key.Buffer.Span);
        var flow = new UdpFlow(key, client, endpoint, remote, upstream);

        lock (_balancerLock)
        {
            // Inserting under the lock ApplyBalancer holds keeps a flow to a just-removed endpoint from
            // slipping in after the change closed that endpoint's flows. Losing that race drops the datagram.
            if (!ReferenceEquals(balancer, _appliedBalancer))
            {
                upstream.Dispose();
                return null;
            }

            // A closed flow still in the table is replaced; its own removal only removes itself.
            _flows[key] = flow;
        }

        Interlocked.Increment(ref _activeFlows);
        Interlocked.Increment(ref _flowsCreated);
        endpoint.Enter();
        flow.Receiving = UpstreamLoopAsync(flow, _listenSocket!, stopping);
        Log.FlowOpened(_logger, client, endpoint.Authority);
        return flow;
    }

    /// <summary>
    /// Adopts a new endpoint set: flows whose endpoint (by address and port) is gone are closed, so their
    /// next datagram picks again; every other flow keeps its endpoint.
    /// </summary>
    private void ApplyBalancer(LoadBalancer balancer)
    {
        lock (_balancerLock)
        {
            if (ReferenceEquals(balancer, _appliedBalancer))
            {
                return;
            }

            var live = new HashSet<string>(balancer.Endpoints.Length, StringComparer.OrdinalIgnoreCase);
            foreach (var endpoint in balancer.Endpoints)
            {
                live.Add(endpoint.Authority);
            }

            var closed = 0;
            foreach (var pair in _flows)
            {
                if (!live.Contains(pair.Value.Endpoint.Authority))
                {
                    CloseFlow(pair.Value, expired: false);
                    closed++;
                }
            }

            Volatile.Write(ref _appliedBalancer, balancer);
            Log.EndpointsChanged(_logger, _localEndPoint!, balancer.Endpoints.Length, closed);
        }
    }

    private void CloseFlow(UdpFlow flow, bool expired)
    {
        if (!flow.TryClose())
        {
            return;
        }

        _flows.TryRemove(new KeyValuePair<SocketAddress, UdpFlow>(flow.ClientAddress, flow));
        if (expired)
        {
            Interlocked.Increment(ref _flowsExpired);
        }

        flow.Endpoint.Leave(failed: false);
        flow.Upstream.Dispose();

        // Last, so a reader that sees the flow gone from ActiveFlows sees everything above done.
        Interlocked.Decrement(ref _activeFlows);
        Log.FlowClosed(_logger, flow.Client, flow.Endpoint.Authority, expired);
    }

    private static async ValueTask<IPEndPoint> ResolveAsync(ServiceEndpoint endpoint, CancellationToken cancellationToken)
    {
        if (IPAddress.TryParse(endpoint.Address, out var address))
        {
            return new IPEndPoint(address, endpoint.Port);
        }

        // Discovery normally reports addresses; a host name costs a lookup per new flow.
        var addresses = await Dns.GetHostAddressesAsync(endpoint.Address, cancellationToken).ConfigureAwait(false);
        foreach (var candidate in addresses)
        {
            if (candidate.AddressFamily == AddressFamily.InterNetwork)
            {
                return new IPEndPoint(candidate, endpoint.Port);
            }
        }

        return addresses.Length > 0
            ? new IPEndPoint(addresses[0], endpoint.Port)
            : throw new SocketException((int)SocketError.HostNotFound);
    }

    /// <summary>Loopback backends get a loopback source; others let the route choose the source address.</summary>
    private static IPAddress LocalAddressFor(IPAddress remote) => remote.AddressFamily == AddressFamily.InterNetworkV6
        ? (IPAddress.IsLoopback(remote) ? IPAddress.IPv6Loopback : IPAddress.IPv6Any)
        : (IPAddress.IsLoopback(remote) ? IPAddress.Loopback : IPAddress.Any);

    private static bool ShouldWarn(ref long last)
    {
        var now = Environment.TickCount64;
        var previous = Volatile.Read(ref last);
        return now - previous >= WarningIntervalMs && Interlocked.CompareExchange(ref last, now, previous) == previous;
    }

    private static partial class Log
    {
        [LoggerMessage(4501, LogLevel.Information, "UDP proxy listening on {EndPoint} (flow idle timeout {IdleTimeout}, max flows {MaxFlows})")]
        public static partial void Started(ILogger logger, IPEndPoint endPoint, TimeSpan idleTimeout, int maxFlows);

        [LoggerMessage(4502, LogLevel.Information, "UDP proxy on {EndPoint} stopped")]
        public static partial void Stopped(ILogger logger, IPEndPoint endPoint);

        [LoggerMessage(4503, LogLevel.Debug, "UDP flow {Client} -> {Endpoint} opened")]
        public static partial void FlowOpened(ILogger logger, IPEndPoint client, string endpoint);

        [LoggerMessage(4504, LogLevel.Debug, "UDP flow {Client} -> {Endpoint} closed (expired: {Expired})")]
        public static partial void FlowClosed(ILogger logger, IPEndPoint client, string endpoint, bool expired);

        [LoggerMessage(4505, LogLevel.Warning, "UDP proxy on {EndPoint} reached its flow limit ({MaxFlows}); datagrams from new clients are dropped")]
        public static partial void FlowLimitReached(ILogger logger, IPEndPoint endPoint, int maxFlows);

        [LoggerMessage(4506, LogLevel.Warning, "UDP proxy on {EndPoint} has no endpoint to send to; datagrams from new clients are dropped")]
        public static partial void NoEndpoint(ILogger logger, IPEndPoint endPoint);

        [LoggerMessage(4507, LogLevel.Warning, "UDP flow {Client} could not open an upstream socket to {Endpoint}")]
        public static partial void UpstreamOpenFailed(ILogger logger, IPEndPoint client, string endpoint, Exception exception);

        [LoggerMessage(4508, LogLevel.Warning, "UDP flow {Client} -> {Endpoint} failed and was closed")]
        public static partial void UpstreamFailed(ILogger logger, IPEndPoint client, string endpoint, Exception exception);

        [LoggerMessage(4509, LogLevel.Warning, "UDP proxy on {EndPoint} failed to forward a datagram")]
        public static partial void ForwardFailed(ILogger logger, IPEndPoint endPoint, Exception exception);

        [LoggerMessage(4510, LogLevel.Error, "UDP proxy on {EndPoint}: idle sweep failed")]
        public static partial void SweepFailed(ILogger logger, IPEndPoint endPoint, Exception exception);

        [LoggerMessage(4511, LogLevel.Information, "UDP proxy on {EndPoint}: endpoint set changed ({Endpoints} endpoints, {Closed} flows closed)")]
        public static partial void EndpointsChanged(ILogger logger, IPEndPoint endPoint, int endpoints, int closed);
    }
}
