// TCP inside mTLS: terminate on inbound tcp listeners with mtls (verify, authorize, relay) and originate to mesh/tls services.
using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Authentication;
using Mesh.Plugins;
using Mesh.Sidecar.Configuration;
using Mesh.Sidecar.Endpoints;
using Mesh.Sidecar.L4.Tcp;
using Mesh.Sidecar.Security;
using Mesh.Sidecar.Security.Authorization;
using Mesh.Sidecar.Security.Certificates;
using Mesh.Sidecar.Security.Tls;

namespace Mesh.Sidecar.L4;

internal sealed partial class L4DataPath
{
    /// <summary>
    /// An inbound <c>tcp</c> listener with <c>mtls</c>: the stages of <see cref="HandleSocketAsync"/>
    /// with TLS in front. The stream relay replaces the socket relay once a side is TLS.
    /// </summary>
    private async Task HandleMtlsAsync(Socket client, string listener, L4Routes routes, IPEndPoint remote, CancellationToken stopping)
    {
        var options = routes.Listener;

        // a. TLS or plaintext, by the first byte; plaintext only on permissive listeners. A strict
        // listener waits as long as a handshake may take; a permissive one takes a client silent for
        // detectTimeoutMs (at least a second, so a peer sidecar slow to send its ClientHello is not
        // mistaken for plaintext) as a server-first plaintext protocol.
        var wait = options.Mtls == MtlsModes.Strict ? InboundTls.HandshakeTimeout : TimeSpan.FromMilliseconds(Math.Max(options.DetectTimeoutMs, 1000));
        var startsWithTls = await StartsWithTlsAsync(client, wait, stopping).ConfigureAwait(false);
        SslStream? downstream = null;
        PeerIdentityFeature? peer = null;
        if (startsWithTls != true)
        {
            if (options.Mtls != MtlsModes.Permissive)
            {
                inbound.Refuse(listener, remote, startsWithTls is null ? RefusalReasons.Silent : RefusalReasons.Plaintext, startsWithTls is null ? "the client sent nothing" : "a plaintext client on a listener that takes mTLS only");
                metrics.L4Connection(listener, "refused-tls");
                return;
            }
        }
        else
        {
            // b. Handshake: this sidecar's leaf, a client certificate from the trust bundle with a SPIFFE ID.
            var handshake = new InboundHandshake(listener, remote);
            downstream = new SslStream(new NetworkStream(client, ownsSocket: false), leaveInnerStreamOpen: false);
            try
            {
                using var deadline = CancellationTokenSource.CreateLinkedTokenSource(stopping);
                deadline.CancelAfter(InboundTls.HandshakeTimeout);
                await downstream.AuthenticateAsServerAsync(inbound.CreateOptions(handshake, serverName: null, alpn: null), deadline.Token).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is AuthenticationException or IOException or OperationCanceledException or SocketException)
            {
                inbound.Failed(handshake, ex.Message);
                metrics.L4Connection(listener, "refused-tls");
                await downstream.DisposeAsync().ConfigureAwait(false);
                return;
            }

            handshake.Established = true;
            inbound.Accepted(handshake);
            peer = handshake.Feature();
        }

        try
        {
            // c. Authorization: the caller's SPIFFE ID (or unauthenticated) against rules without an HTTP match.
            if (security.Current.Policy is { } policy)
            {
                var decision = policy.Decide(listener, peer?.PeerId);
                securityMetrics.Decision(listener, decision.Rule, decision.Allowed);
                if (!decision.Allowed)
                {
                    Log.Denied(logger, listener, remote.ToString(), peer?.PeerId.Value ?? "unauthenticated", decision.Rule);
                    metrics.L4Connection(listener, "denied");
                    return;
                }
            }

            // c2. Consul intentions: with authorization.consulIntentions, the agent decides for this caller (fails closed).
            if (store.Current.Options is { Authorization.ConsulIntentions: true } current)
            {
                var intention = await intentions.CheckAsync(current.Service.Name, peer).ConfigureAwait(false);
                securityMetrics.Decision(listener, ConsulIntentionsCheck.RuleName, intention.Authorized);
                if (!intention.Authorized)
                {
                    Log.Denied(logger, listener, remote.ToString(), peer?.PeerId.Value ?? "unauthenticated", ConsulIntentionsCheck.RuleName);
                    metrics.L4Connection(listener, "denied");
                    return;
                }
            }

            // d. Connection hook, as on any listener.
            var info = new AcceptedConnection(listener, downstream is null ? "tcp" : "tls", remote.Address.ToString(), remote.Port, null, []) { PeerIdentity = peer?.PeerId.Value };
            if (!hook.IsEmpty && !await hook.AllowAsync(info, stopping).ConfigureAwait(false))
            {
                metrics.L4Connection(listener, "denied");
                return;
            }

            var target = routes.DefaultCluster;
            if (target is null)
            {
                metrics.L4Connection(listener, "no-service");
                return;
            }

            // e. Service endpoints and balancer, then the relay.
            var connected = await ConnectAsync(target, remote.Address, listener, TimeSpan.FromMilliseconds(options.Tcp.ConnectTimeoutMs), stopping).ConfigureAwait(false);
            if (connected is not { } upstream)
            {
                metrics.L4Connection(listener, "connect-failed");
                return;
            }

            var idle = options.Tcp.IdleTimeoutMs == 0 ? Timeout.InfiniteTimeSpan : TimeSpan.FromMilliseconds(options.Tcp.IdleTimeoutMs);
            if (downstream is null && target.Tls is null)
            {
                // Plaintext both ways (permissive): the socket relay.
                metrics.L4Connection(listener, "proxied");
                try
                {
                    var result = await TcpRelay.RunAsync(client, upstream.Socket, ReadOnlyMemory<byte>.Empty, new RelayOptions { IdleTimeout = idle }, stopping).ConfigureAwait(false);
                    metrics.L4Bytes(listener, result.BytesFromClient, result.BytesFromUpstream);
                }
                finally
                {
                    upstream.Endpoint.Leave(failed: false);
                    upstream.Socket.Dispose();
                }

                return;
            }

            var clientSide = downstream is null ? SocketSide(client) : TlsSide(downstream);
            await RelayToAsync(clientSide, upstream.Socket, upstream.Endpoint, target, listener, idle, stopping).ConfigureAwait(false);
        }
        finally
        {
            if (downstream is not null)
            {
                await downstream.DisposeAsync().ConfigureAwait(false);
            }
        }
    }

    /// <summary>
    /// Relays <paramref name="clientSide"/> to a connected upstream socket, inside TLS when the
    /// service is in <c>mesh</c> or <c>tls</c> mode. Takes over the upstream socket and the endpoint's count.
    /// </summary>
    private async Task RelayToAsync(RelaySide clientSide, Socket upstreamSocket, EndpointState endpoint, Cluster target, string listener, TimeSpan idle, CancellationToken stopping)
    {
        RelaySide upstreamSide;
        var failed = false;
        try
        {
            if (target.Tls is { } tls)
            {
                // 5b. Upstream TLS: the peer sidecar must present the service's SPIFFE ID (mesh) or a trusted certificate (tls).
                try
                {
                    using var deadline = CancellationTokenSource.CreateLinkedTokenSource(stopping);
                    deadline.CancelAfter(InboundTls.HandshakeTimeout);
                    upstreamSide = TlsSide(await tls.ConnectAsync(upstreamSocket, endpoint.Endpoint.Address, alpn: null, deadline.Token).ConfigureAwait(false));
                }
                catch (Exception ex) when (ex is UpstreamTlsException or IOException or OperationCanceledException or SocketException)
                {
                    failed = true;
                    metrics.L4Connection(listener, "tls-refused");
                    Log.ConnectionEnded(logger, listener, ex.Message);
                    await clientSide.Stream.DisposeAsync().ConfigureAwait(false);
                    return;
                }
            }
            else
            {
                upstreamSide = SocketSide(upstreamSocket);
            }

            metrics.L4Connection(listener, "proxied");
            var result = await StreamRelay.RunAsync(clientSide, upstreamSide, idle, stopping).ConfigureAwait(false);
            metrics.L4Bytes(listener, result.BytesFromClient, result.BytesFromUpstream);
            Log.Relayed(logger, listener, "tls", endpoint.Authority, result.BytesFromClient, result.BytesFromUpstream, result.Outcome.ToString());
        }
        finally
        {
            endpoint.Leave(failed);
            upstreamSocket.Dispose();
        }
    }

    private static RelaySide SocketSide(Socket socket) => new(new NetworkStream(socket, ownsSocket: false), () =>
    {
        try
        {
            socket.Shutdown(SocketShutdown.Send);
        }
        catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
        {
        }

        return ValueTask.CompletedTask;
    });

    private static RelaySide TlsSide(SslStream stream) => new(stream, async () =>
    {
        try
        {
            await stream.ShutdownAsync().ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is IOException or ObjectDisposedException or InvalidOperationException)
        {
        }
    });

    // True for a TLS record, false for other bytes, null when the client closed or sent nothing in time.
    private static async Task<bool?> StartsWithTlsAsync(Socket client, TimeSpan timeout, CancellationToken stopping)
    {
        var first = new byte[1];
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(stopping);
        deadline.CancelAfter(timeout);
        try
        {
            var read = await client.ReceiveAsync(first, SocketFlags.Peek, deadline.Token).ConfigureAwait(false);
            return read == 0 ? null : first[0] == TlsSniff.HandshakeRecord;
        }
        catch (OperationCanceledException) when (!stopping.IsCancellationRequested)
        {
            return null;
        }
    }
}
