// The verified caller of an mTLS connection, as a connection feature every request of the connection can read.
using System.Security.Cryptography.X509Certificates;

namespace Mesh.Sidecar.Security;

/// <summary>
/// Set on a connection whose client passed the mTLS checks; absent on plaintext connections
/// (<c>unauthenticated</c>). Filters and plugins read the caller from here.
/// </summary>
public interface IPeerIdentityFeature
{
    /// <summary>The caller's SPIFFE ID, verified against the trust bundle.</summary>
    SpiffeId PeerId { get; }

    /// <summary>The caller's leaf certificate.</summary>
    X509Certificate2 Certificate { get; }

    /// <summary>This sidecar's own SPIFFE ID when the connection was accepted.</summary>
    SpiffeId LocalId { get; }
}

/// <summary>The feature, with the <c>x-forwarded-client-cert</c> value built once per connection.</summary>
internal sealed class PeerIdentityFeature(SpiffeId peerId, X509Certificate2 certificate, SpiffeId localId) : IPeerIdentityFeature
{
    public SpiffeId PeerId { get; } = peerId;

    public X509Certificate2 Certificate { get; } = certificate;

    public SpiffeId LocalId { get; } = localId;

    /// <summary>Envoy's format: <c>By=&lt;this sidecar&gt;;URI=&lt;caller&gt;</c>.</summary>
    public string ForwardedClientCert { get; } = $"By={localId.Value};URI={peerId.Value}";
}

/// <summary>The <c>x-forwarded-client-cert</c> stage of the L7 data path.</summary>
internal static class ForwardedClientCert
{
    public const string HeaderName = "x-forwarded-client-cert";

    /// <summary>
    /// Removes whatever the client sent (so no listener lets it be forged), then, on an mTLS
    /// connection, sets the verified caller.
    /// </summary>
    public static void Apply(IHeaderDictionary headers, PeerIdentityFeature? peer)
    {
        headers.Remove(HeaderName);
        if (peer is not null)
        {
            headers[HeaderName] = peer.ForwardedClientCert;
        }
    }
}
