// Stage 2a of the data path: TLS termination on Kestrel's TLS pipeline; ALPN then picks HTTP/1.1 or HTTP/2.
using System.Net;
using System.Net.Security;
using Mesh.Plugins;
using Mesh.Sidecar.L4;
using Mesh.Sidecar.Metrics;
using Mesh.Sidecar.Security;
using Mesh.Sidecar.Security.Tls;
using Microsoft.AspNetCore.Connections.Features;
using Microsoft.AspNetCore.Server.Kestrel.Core.Features;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.AspNetCore.Server.Kestrel.Https;

namespace Mesh.Sidecar.Listeners;

/// <summary>
/// Configures the <see cref="HttpPipeline.Tls"/> virtual endpoint. <see cref="ListenerManager"/> sends
/// it the connections whose first byte is a TLS record on listeners with <c>mtls</c> or edge
/// certificates. Kestrel runs the handshake with options chosen per connection (<see cref="InboundTls"/>);
/// the middleware around it counts refusals once and tags accepted mTLS connections with the caller's
/// <see cref="IPeerIdentityFeature"/>.
/// </summary>
internal static class TlsTermination
{
    public static void Configure(ListenOptions listen)
    {
        var services = listen.ApplicationServices;
        var inbound = services.GetRequiredService<InboundTls>();
        var metrics = services.GetRequiredService<MeshMetrics>();
        var hook = services.GetRequiredService<ConnectionHook>();

        // Outside the handshake: a handshake that never completed, for a reason our checks did not see, is counted here.
        listen.Use(next => async connection =>
        {
            var handshake = new InboundHandshake(connection.Features.Get<MeshListenerFeature>()?.Name ?? "", connection.RemoteEndPoint);
            connection.Features.Set(handshake);
            await next(connection).ConfigureAwait(false);
            if (!handshake.Established)
            {
                inbound.Failed(handshake, "the TLS handshake did not complete (timeout, protocol or cipher mismatch, or the client gave up)");
            }
        });

        listen.UseHttps(new TlsHandshakeCallbackOptions
        {
            HandshakeTimeout = InboundTls.HandshakeTimeout,
            // ALPN left unset: Kestrel offers h2 and http/1.1 from the endpoint's protocols.
            OnConnection = context => ValueTask.FromResult(inbound.CreateOptions(context.Connection.Features.Get<InboundHandshake>()!, context.ClientHelloInfo.ServerName, alpn: null)),
        });

        // Inside: the session is up.
        listen.Use(next => async connection =>
        {
            var handshake = connection.Features.Get<InboundHandshake>()!;
            handshake.Established = true;
            inbound.Accepted(handshake);
            if (handshake.Feature() is { } peer)
            {
                connection.Features.Set<IPeerIdentityFeature>(peer);
            }

            var alpn = connection.Features.Get<ITlsApplicationProtocolFeature>()?.ApplicationProtocol ?? default;
            var http2 = alpn.Span.SequenceEqual(SslApplicationProtocol.Http2.Protocol.Span);
            metrics.ConnectionDetected(handshake.Listener, http2 ? HttpPipeline.Http2 : HttpPipeline.Http1);
            if (!hook.IsEmpty)
            {
                var remote = connection.RemoteEndPoint as IPEndPoint;
                var serverName = connection.Features.Get<ITlsHandshakeFeature>()?.HostName;
                var info = new AcceptedConnection(handshake.Listener, http2 ? "http2" : "http1", remote?.Address.ToString() ?? "", remote?.Port ?? 0, string.IsNullOrEmpty(serverName) ? null : serverName, [http2 ? "h2" : "http/1.1"])
                {
                    PeerIdentity = connection.Features.Get<IPeerIdentityFeature>()?.PeerId.Value,
                };
                if (!await hook.AllowAsync(info, connection.ConnectionClosed).ConfigureAwait(false))
                {
                    connection.Abort();
                    return;
                }
            }

            await next(connection).ConfigureAwait(false);
        });
    }
}
