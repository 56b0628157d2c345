// Server-side TLS for listeners: which certificate to present, how to check the client, and every refusal logged and counted.
using System.Buffers;
using System.Net;
using System.Net.Security;
using System.Security.Authentication;
using System.Security.Cryptography.X509Certificates;
using Mesh.Sidecar.Configuration;
using Mesh.Sidecar.Security.Certificates;
using Mesh.Sidecar.Security.Identity;

namespace Mesh.Sidecar.Security.Tls;

/// <summary>
/// One inbound handshake: created when a connection is classified as TLS, it holds what the
/// certificate check found so the connection can be refused (and counted once) or tagged with the peer.
/// </summary>
internal sealed class InboundHandshake(string listener, EndPoint? remote)
{
    public string Listener { get; } = listener;

    public EndPoint? Remote { get; } = remote;

    /// <summary><c>mtls</c> or <c>edge</c>, once options are chosen.</summary>
    public string Mode { get; set; } = "";

    /// <summary>This sidecar's identity the handshake presented (mTLS).</summary>
    public IdentitySnapshot? Local { get; set; }

    /// <summary>The client check (mTLS), once done.</summary>
    public PeerCheck? Peer { get; set; }

    /// <summary>The client's certificate when it passed.</summary>
    public X509Certificate2? PeerCertificate { get; set; }

    /// <summary>True once a refusal was logged and counted, so a failed handshake is not counted twice.</summary>
    public bool Refused { get; set; }

    /// <summary>True once the TLS session is up.</summary>
    public bool Established { get; set; }

    /// <summary>The verified caller as a connection feature, or null (edge TLS has no client identity).</summary>
    public PeerIdentityFeature? Feature() =>
        Peer is { Accepted: true, Id: { } id } && PeerCertificate is { } certificate && Local is { } local ? new PeerIdentityFeature(id, certificate, local.Id) : null;
}

/// <summary>Builds server options per handshake from the listener's current security state.</summary>
internal sealed partial class InboundTls(SecurityRuntime security, SecurityMetrics metrics, ILogger<InboundTls> logger)
{
    /// <summary>How long a client may take to finish its handshake.</summary>
    public static readonly TimeSpan HandshakeTimeout = TimeSpan.FromSeconds(10);

    /// <summary>
    /// Options for one handshake on <see cref="InboundHandshake.Listener"/>: this sidecar's leaf and a
    /// required client certificate for mTLS, or the edge certificate for <paramref name="serverName"/>.
    /// Throws <see cref="AuthenticationException"/> (after counting) when the listener cannot take TLS now.
    /// </summary>
    public SslServerAuthenticationOptions CreateOptions(InboundHandshake handshake, string? serverName, List<SslApplicationProtocol>? alpn)
    {
        var listener = security.Current.Listener(handshake.Listener);
        var options = TlsDefaults.Apply(new SslServerAuthenticationOptions { ApplicationProtocols = alpn });
        if (listener is { TerminatesMtls: true })
        {
            var identity = security.Identity.Current;
            if (identity is null)
            {
                Refuse(handshake, RefusalReasons.NoIdentity, "this sidecar has no identity to present");
                throw new AuthenticationException("no identity");
            }

            handshake.Mode = "mtls";
            handshake.Local = identity;
            options.ServerCertificateContext = identity.CertificateContext;
            options.ClientCertificateRequired = true;
            options.RemoteCertificateValidationCallback = (_, certificate, chain, _) => CheckClient(handshake, certificate, chain);
            return options;
        }

        if (listener?.Edge is { } edge)
        {
            handshake.Mode = "edge";
            options.ServerCertificateContext = edge.Select(serverName);
            return options;
        }

        // The listener stopped taking TLS between accept and handshake (a reload): refuse rather than guess.
        Refuse(handshake, RefusalReasons.HandshakeFailed, "the listener no longer takes TLS");
        throw new AuthenticationException("listener no longer takes TLS");
    }

    /// <summary>Counts a completed handshake.</summary>
    public void Accepted(InboundHandshake handshake)
    {
        metrics.Handshake(handshake.Listener, handshake.Mode);
        if (handshake.Peer is { Id: { } id })
        {
            Log.PeerAccepted(logger, handshake.Listener, handshake.Remote?.ToString() ?? "", id.Value);
        }
    }

    /// <summary>Counts and logs a handshake that ended without a refusal of ours (timeouts, ciphers, resets).</summary>
    public void Failed(InboundHandshake handshake, string detail)
    {
        if (!handshake.Refused)
        {
            Refuse(handshake, RefusalReasons.HandshakeFailed, detail);
        }
    }

    /// <summary>Logs and counts a refusal of a connection on <paramref name="listener"/>.</summary>
    public void Refuse(string listener, EndPoint? remote, string reason, string detail)
    {
        metrics.Refused(listener, reason);
        Log.Refused(logger, listener, remote?.ToString() ?? "", reason, detail);
    }

    private void Refuse(InboundHandshake handshake, string reason, string detail)
    {
        handshake.Refused = true;
        Refuse(handshake.Listener, handshake.Remote, reason, detail);
    }

    private bool CheckClient(InboundHandshake handshake, X509Certificate? certificate, X509Chain? chain)
    {
        var local = handshake.Local!;
        var check = PeerValidator.Check(certificate, chain, local.TrustBundle, local.Id.TrustDomain, security.Identity.Time.GetUtcNow(), peerIsClient: true);
        handshake.Peer = check;
        if (!check.Accepted)
        {
            Refuse(handshake, check.Reason!, check.Detail);
            return false;
        }

        handshake.PeerCertificate = certificate as X509Certificate2 ?? X509CertificateLoader.LoadCertificate(certificate!.GetRawCertData());
        return true;
    }

    private static partial class Log
    {
        [LoggerMessage(6301, LogLevel.Warning, "Listener {Listener}: refused connection from {Client} ({Reason}): {Detail}")]
        public static partial void Refused(ILogger logger, string listener, string client, string reason, string detail);

        [LoggerMessage(6302, LogLevel.Debug, "Listener {Listener}: mTLS peer {Client} is {SpiffeId}")]
        public static partial void PeerAccepted(ILogger logger, string listener, string client, string spiffeId);
    }
}

/// <summary>Tells TLS from plaintext by the first byte (a TLS record starts with 0x16, handshake).</summary>
internal static class TlsSniff
{
    public const byte HandshakeRecord = 0x16;

    /// <summary>True for TLS, false for anything else, null while no byte has arrived.</summary>
    public static bool? Classify(ReadOnlySequence<byte> buffer)
    {
        if (buffer.IsEmpty)
        {
            return null;
        }

        Span<byte> first = stackalloc byte[1];
        buffer.Slice(0, 1).CopyTo(first);
        return first[0] == HandshakeRecord;
    }
}
