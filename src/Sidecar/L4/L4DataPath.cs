// The L4 data path in one place: listener → (SNI peek) → connection hook → service → balancer → connect with failover → relay.
using System.Buffers;
using System.IO.Pipelines;
using System.Net;
using System.Net.Sockets;
using Mesh.Plugins;

using Mesh.Sidecar.Detection;
using Mesh.Sidecar.Endpoints;
using Mesh.Sidecar.L4.Tcp;
using Mesh.Sidecar.L4.Tls;
using Mesh.Sidecar.LoadBalancing;
using Mesh.Sidecar.Metrics;
using Mesh.Sidecar.Security;
using Mesh.Sidecar.Security.Authorization;
using Mesh.Sidecar.Security.Tls;
using Mesh.Sidecar.Configuration;
using Mesh.Sidecar.Translation;
using Microsoft.AspNetCore.Connections;

namespace Mesh.Sidecar.L4;

/// <summary>
/// Per-connection L4 proxying for <c>tcp</c> and <c>tls-passthrough</c> listeners (raw sockets, the
/// fast path) and for the L4 side of <c>auto</c> listeners (Kestrel transport pipes). Balancing is per
/// connection; the payload is never decoded, and TLS terminates on the backend.
/// </summary>
internal sealed partial class L4DataPath(
    MeshStateStore store,
    MeshMetrics metrics,
    ConnectionHook hook,
    SecurityRuntime security,
    InboundTls inbound,
    SecurityMetrics securityMetrics,
    ILogger<L4DataPath> logger,
    ConsulIntentionsCheck intentions)
{
    private const int MaxClientHello = 64 * 1024;

    /// <summary>A connection accepted on a raw-socket listener (<c>tcp</c> or <c>tls-passthrough</c>).</summary>
    public async Task HandleSocketAsync(Socket client, string listener, bool tls, CancellationToken stopping)
    {
        byte[]? hello = null;
        var helloLength = 0;
        try
        {
            // 1. Listener: its L4 routes in the current state.
            if (!store.Current.L4Listeners.TryGetValue(listener, out var routes))
            {
                return;
            }

            var remote = (IPEndPoint)client.RemoteEndPoint!;

            // 1b. mTLS (inbound tcp listeners with mtls): terminate TLS and verify the caller first; authorization then decides on its SPIFFE ID.
            if (routes.Listener.Mtls != MtlsModes.Off)
            {
                await HandleMtlsAsync(client, listener, routes, remote, stopping).ConfigureAwait(false);
                return;
            }

            var target = routes.DefaultCluster;
            var route = "default";
            string? serverName = null;
            IReadOnlyList<string> alpn = [];

            // 2. TLS: read the ClientHello (kept to forward unchanged) and route by its SNI.
            if (tls)
            {
                var peek = await ReadClientHelloAsync(client, TimeSpan.FromMilliseconds(routes.Listener.Tls.PeekTimeoutMs), stopping).ConfigureAwait(false);
                hello = peek.Buffer;
                helloLength = peek.Length;
                if (peek.Result.Status != ClientHelloStatus.Success)
                {
                    metrics.SniMiss(listener, peek.Result.Status == ClientHelloStatus.NeedMoreData ? "timeout" : peek.Result.Status == ClientHelloStatus.NotTls ? "not-tls" : "invalid");
                    Log.NotTls(logger, listener, remote.ToString(), peek.Result.Status.ToString());
                    return;
                }

                serverName = peek.Result.ServerName;
                alpn = peek.Result.Alpn;
                (target, route) = routes.RouteTls(serverName, alpn);
                if (target is null)
                {
                    metrics.SniMiss(listener, serverName is null ? "no-sni" : "no-route");
                    return;
                }
            }

            // 3. Connection hook: allow or deny before any byte goes upstream.
            if (!await hook.AllowAsync(new AcceptedConnection(listener, tls ? "tls" : "tcp", remote.Address.ToString(), remote.Port, serverName, alpn), stopping).ConfigureAwait(false))
            {
                metrics.L4Connection(listener, "denied");
                PipeRelay.Reset(client);
                return;
            }

            if (target is null)
            {
                metrics.L4Connection(listener, "no-service");
                return;
            }

            // 4-5. Service endpoints and balancer: connect, trying other endpoints if one fails.
            var connected = await ConnectAsync(target, remote.Address, listener, TimeSpan.FromMilliseconds(routes.Listener.Tcp.ConnectTimeoutMs), stopping).ConfigureAwait(false);
            if (connected is not { } upstream)
            {
                metrics.L4Connection(listener, "connect-failed");
                PipeRelay.Reset(client);
                return;
            }

            // 5b. Upstream TLS: a service in mesh mode gets the stream inside mTLS to the peer's strict tcp listener (tls mode: plain TLS).
            if (target.Tls is not null)
            {
                var idleTimeout = routes.Listener.Tcp.IdleTimeoutMs == 0 ? Timeout.InfiniteTimeSpan : TimeSpan.FromMilliseconds(routes.Listener.Tcp.IdleTimeoutMs);
                await RelayToAsync(SocketSide(client), upstream.Socket, upstream.Endpoint, target, listener, idleTimeout, stopping).ConfigureAwait(false);
                return;
            }

            // 6. Relay: bytes both ways unchanged, the ClientHello first.
            metrics.L4Connection(listener, "proxied");
            try
            {
                var idle = routes.Listener.Tcp.IdleTimeoutMs == 0 ? Timeout.InfiniteTimeSpan : TimeSpan.FromMilliseconds(routes.Listener.Tcp.IdleTimeoutMs);
                var result = await TcpRelay.RunAsync(client, upstream.Socket, hello.AsMemory(0, helloLength), new RelayOptions { IdleTimeout = idle }, stopping).ConfigureAwait(false);
                metrics.L4Bytes(listener, result.BytesFromClient, result.BytesFromUpstream);
                Log.Relayed(logger, listener, route, upstream.Endpoint.Authority, result.BytesFromClient, result.BytesFromUpstream, result.Outcome.ToString());
            }
            finally
            {
                upstream.Endpoint.Leave(failed: false);
                upstream.Socket.Dispose();
            }
        }
        catch (Exception ex) when (ex is SocketException or IOException or ObjectDisposedException or OperationCanceledException)
        {
            Log.ConnectionEnded(logger, listener, ex.Message);
        }
        finally
        {
            if (hello is not null)
            {
                ArrayPool<byte>.Shared.Return(hello);
            }

            client.Dispose();
        }
    }

    /// <summary>The L4 side of an <c>auto</c> listener: TLS (routed by SNI) or opaque TCP, over Kestrel's pipes.</summary>
    public async Task HandleConnectionAsync(ConnectionContext connection, string listener, SniffedProtocol sniffed, CancellationToken stopping)
    {
        try
        {
            if (!store.Current.L4Listeners.TryGetValue(listener, out var routes))
            {
                return;
            }

            var remote = connection.RemoteEndPoint as IPEndPoint;
            var target = routes.DefaultCluster;
            string? serverName = null;
            IReadOnlyList<string> alpn = [];
            if (sniffed == SniffedProtocol.Tls)
            {
                var hello = await PeekClientHelloAsync(connection.Transport.Input, TimeSpan.FromMilliseconds(routes.Listener.Tls.PeekTimeoutMs), stopping).ConfigureAwait(false);
                if (hello.Status != ClientHelloStatus.Success)
                {
                    metrics.SniMiss(listener, hello.Status == ClientHelloStatus.NeedMoreData ? "timeout" : "invalid");
                    return;
                }

                serverName = hello.ServerName;
                alpn = hello.Alpn;
                (target, _) = routes.RouteTls(serverName, alpn);
                if (target is null)
                {
                    metrics.SniMiss(listener, serverName is null ? "no-sni" : "no-route");
                    return;
                }
            }

            var info = new AcceptedConnection(listener, sniffed == SniffedProtocol.Tls ? "tls" : "tcp", remote?.Address.ToString() ?? "", remote?.Port ?? 0, serverName, alpn);
            if (!await hook.AllowAsync(info, stopping).ConfigureAwait(false))
            {
                metrics.L4Connection(listener, "denied");
                connection.Abort();
                return;
            }

            if (target is null)
            {
                metrics.L4Connection(listener, "no-service");
                return;
            }

            var connected = await ConnectAsync(target, remote?.Address ?? IPAddress.Loopback, listener, TimeSpan.FromMilliseconds(routes.Listener.Tcp.ConnectTimeoutMs), stopping).ConfigureAwait(false);
            if (connected is not { } upstream)
            {
                metrics.L4Connection(listener, "connect-failed");
                connection.Abort();
                return;
            }

            metrics.L4Connection(listener, "proxied");
            try
            {
                var idle = routes.Listener.Tcp.IdleTimeoutMs == 0 ? Timeout.InfiniteTimeSpan : TimeSpan.FromMilliseconds(routes.Listener.Tcp.IdleTimeoutMs);
                var (fromClient, fromUpstream) = await PipeRelay.RunAsync(connection, upstream.Socket, idle, stopping).ConfigureAwait(false);
                metrics.L4Bytes(listener, fromClient, fromUpstream);
            }
            finally
            {
                upstream.Endpoint.Leave(failed: false);
            }
        }
        catch (Exception ex) when (ex is SocketException or IOException or ObjectDisposedException or OperationCanceledException or ConnectionResetException)
        {
            Log.ConnectionEnded(logger, listener, ex.Message);
        }
        finally
        {
            await connection.DisposeAsync().ConfigureAwait(false);
        }
    }

    private readonly record struct Upstream(Socket Socket, EndpointState Endpoint);

    // Picks by the balancer (hashing the client address where the policy hashes), then walks the
    // other endpoints on connect failure: nothing has been relayed yet, so retrying is safe. Only
    // available endpoints are tried, and outlier detection hears of each connect's outcome.
    private async Task<Upstream?> ConnectAsync(Cluster cluster, IPAddress client, string listener, TimeSpan timeout, CancellationToken stopping)
    {
        var balancer = cluster.Balancer;
        var endpoints = balancer.Endpoints;
        var outlier = cluster.Resilience?.Outlier;
        var first = balancer.Pick(balancer.UsesHash ? StableHash.Of(client) : null);
        if (first is null)
        {
            return null;
        }

        var start = Array.IndexOf(endpoints, first);
        for (var attempt = 0; attempt < endpoints.Length; attempt++)
        {
            var endpoint = endpoints[(start + attempt) % endpoints.Length];
            var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
            using var deadline = CancellationTokenSource.CreateLinkedTokenSource(stopping);
            deadline.CancelAfter(timeout);
            try
            {
                await socket.ConnectAsync(endpoint.Endpoint.Address, endpoint.Endpoint.Port, deadline.Token).ConfigureAwait(false);
                endpoint.Enter();
                outlier?.Success(endpoint);
                return new Upstream(socket, endpoint);
            }
            catch (Exception ex) when (ex is SocketException or OperationCanceledException && !stopping.IsCancellationRequested)
            {
                socket.Dispose();
                outlier?.Failure(cluster, endpoint);
                metrics.L4ConnectFailure(listener, cluster.Name);
                Log.ConnectFailed(logger, listener, endpoint.Authority, ex.Message);
            }
        }

        return null;
    }

    // Returns the pooled buffer holding the bytes read (the caller returns it to the pool). The buffer
    // may be replaced by a larger one while reading, so on an exception it is returned here, not by the caller.
    private static async Task<(ClientHelloResult Result, byte[] Buffer, int Length)> ReadClientHelloAsync(Socket client, TimeSpan timeout, CancellationToken stopping)
    {
        var buffer = ArrayPool<byte>.Shared.Rent(4096);
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(stopping);
        deadline.CancelAfter(timeout);
        var length = 0;
        var result = default(ClientHelloResult);
        try
        {
            while (true)
            {
                if (length == buffer.Length)
                {
                    if (buffer.Length >= MaxClientHello)
                    {
                        return (ClientHelloParser.Parse(buffer.AsSpan(0, length)), buffer, length);
                    }

                    var larger = ArrayPool<byte>.Shared.Rent(buffer.Length * 2);
                    buffer.AsSpan(0, length).CopyTo(larger);
                    ArrayPool<byte>.Shared.Return(buffer);
                    buffer = larger;
                }

                var read = await client.ReceiveAsync(buffer.AsMemory(length), SocketFlags.None, deadline.Token).ConfigureAwait(false);
                if (read == 0)
                {
                    return (ClientHelloParser.Parse(buffer.AsSpan(0, length)), buffer, length);
                }

                length += read;
                result = ClientHelloParser.Parse(buffer.AsSpan(0, length));
                if (result.Status != ClientHelloStatus.NeedMoreData)
                {
                    return (result, buffer, length);
                }
            }
        }
        catch (OperationCanceledException) when (!stopping.IsCancellationRequested)
        {
            // A client that sends nothing (or half a ClientHello) is dropped after the peek timeout.
            return (ClientHelloParser.Parse(buffer.AsSpan(0, length)), buffer, length);
        }
        catch
        {
            ArrayPool<byte>.Shared.Return(buffer);
            throw;
        }
    }

    // Reads the ClientHello from the pipe without consuming it: the relay sends these same bytes.
    private static async Task<ClientHelloResult> PeekClientHelloAsync(PipeReader input, TimeSpan timeout, CancellationToken stopping)
    {
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(stopping);
        deadline.CancelAfter(timeout);
        input.CancelPendingRead();
        try
        {
            while (true)
            {
                var read = await input.ReadAsync(deadline.Token).ConfigureAwait(false);
                var result = ClientHelloParser.Parse(read.Buffer);
                // Nothing is consumed; the relay starts by cancelling the pending read, so marking
                // everything examined here does not hide these bytes from it.
                input.AdvanceTo(read.Buffer.Start, read.Buffer.End);
                if (result.Status != ClientHelloStatus.NeedMoreData || read.IsCompleted || read.Buffer.Length > MaxClientHello)
                {
                    return result;
                }
            }
        }
        catch (OperationCanceledException) when (!stopping.IsCancellationRequested)
        {
            return ClientHelloParser.Parse(ReadOnlySpan<byte>.Empty);
        }
    }

    private static partial class Log
    {
        [LoggerMessage(4001, LogLevel.Debug, "Listener {Listener}: connection from {Client} is not a usable TLS ClientHello ({Status})")]
        public static partial void NotTls(ILogger logger, string listener, string client, string status);

        [LoggerMessage(4002, LogLevel.Debug, "Listener {Listener}: connect to {Endpoint} failed: {Reason}")]
        public static partial void ConnectFailed(ILogger logger, string listener, string endpoint, string reason);

        [LoggerMessage(4003, LogLevel.Debug, "Listener {Listener} route {Route} to {Endpoint}: {FromClient} bytes up, {FromUpstream} down ({Outcome})")]
        public static partial void Relayed(ILogger logger, string listener, string route, string endpoint, long fromClient, long fromUpstream, string outcome);

        [LoggerMessage(4004, LogLevel.Debug, "Listener {Listener}: connection ended: {Reason}")]
        public static partial void ConnectionEnded(ILogger logger, string listener, string reason);

        [LoggerMessage(4005, LogLevel.Information, "Listener {Listener}: connection from {Client} ({Caller}) denied by authorization rule {Rule}")]
        public static partial void Denied(ILogger logger, string listener, string client, string caller, string rule);
    }
}
