// Checks a peer's certificate against the trust bundle and reads its SPIFFE ID; every refusal has a reason.
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace Mesh.Sidecar.Security.Certificates;

/// <summary>Why a peer certificate was refused; the values are metric labels.</summary>
public static class RefusalReasons
{
    /// <summary>A plaintext client on a listener that takes TLS only.</summary>
    public const string Plaintext = "plaintext";

    /// <summary>The client sent nothing before the detection timeout.</summary>
    public const string Silent = "silent";

    /// <summary>The client presented no certificate.</summary>
    public const string NoCertificate = "no-client-certificate";

    /// <summary>The certificate does not chain to the trust bundle.</summary>
    public const string UnknownCa = "unknown-ca";

    /// <summary>The certificate's not-after has passed.</summary>
    public const string Expired = "expired";

    /// <summary>The certificate's not-before is still ahead.</summary>
    public const string NotYetValid = "not-yet-valid";

    /// <summary>The chain is broken in another way (usage, signature, constraints).</summary>
    public const string InvalidChain = "invalid-chain";

    /// <summary>No SPIFFE URI SAN, several, or a malformed one.</summary>
    public const string NoSpiffeId = "no-spiffe-id";

    /// <summary>A SPIFFE ID in another trust domain.</summary>
    public const string ForeignTrustDomain = "foreign-trust-domain";

    /// <summary>A valid certificate of another service than the one expected.</summary>
    public const string WrongIdentity = "wrong-identity";

    /// <summary>A plain-TLS upstream's certificate is not valid for the server name.</summary>
    public const string NameMismatch = "name-mismatch";

    /// <summary>The sidecar has no identity of its own yet.</summary>
    public const string NoIdentity = "no-identity";

    /// <summary>The TLS handshake failed for a reason the certificate check did not see (ciphers, versions, a reset).</summary>
    public const string HandshakeFailed = "handshake-failed";

    /// <summary>A peer sidecar did not agree to HTTP/2 by ALPN.</summary>
    public const string NoHttp2 = "no-h2";
}

/// <summary>The outcome of a peer check.</summary>
/// <param name="Reason">Null when accepted; else one of <see cref="RefusalReasons"/>.</param>
/// <param name="Id">The peer's SPIFFE ID when it could be read.</param>
/// <param name="Detail">A sentence for the log.</param>
public readonly record struct PeerCheck(string? Reason, SpiffeId? Id, string Detail)
{
    /// <summary>True when the peer is accepted.</summary>
    public bool Accepted => Reason is null;
}

/// <summary>
/// Verifies mesh peers. .NET's default chain policy uses the system store and ignores URI SANs, so
/// the chain is built here with the trust bundle as the only roots (CustomRootTrust), at the time
/// the sidecar's clock gives, and the identity is read from the one SPIFFE URI SAN.
/// </summary>
public static class PeerValidator
{
    private static readonly Oid ServerAuth = new("1.3.6.1.5.5.7.3.1");
    private static readonly Oid ClientAuth = new("1.3.6.1.5.5.7.3.2");

    /// <summary>Checks <paramref name="certificate"/> (with the chain the peer sent) against <paramref name="trustBundle"/>.</summary>
    /// <param name="certificate">The peer's leaf; null when it sent none.</param>
    /// <param name="presented">The chain SslStream built from what the peer sent (its intermediates), or null.</param>
    /// <param name="trustBundle">The roots peers must chain to.</param>
    /// <param name="trustDomain">The trust domain peer IDs must belong to.</param>
    /// <param name="now">Validation time.</param>
    /// <param name="peerIsClient">True when checking a client (clientAuth usage), false for a server.</param>
    public static PeerCheck Check(X509Certificate? certificate, X509Chain? presented, X509Certificate2Collection trustBundle, string trustDomain, DateTimeOffset now, bool peerIsClient)
    {
        ArgumentNullException.ThrowIfNull(trustBundle);
        if (certificate is null)
        {
            return new PeerCheck(RefusalReasons.NoCertificate, null, "the peer presented no certificate");
        }

        var leaf = certificate as X509Certificate2 ?? X509CertificateLoader.LoadCertificate(certificate.GetRawCertData());
        using var chain = new X509Chain();
        var policy = chain.ChainPolicy;
        policy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        policy.CustomTrustStore.AddRange(trustBundle);
        policy.RevocationMode = X509RevocationMode.NoCheck;
        policy.DisableCertificateDownloads = true;
        policy.VerificationTime = now.UtcDateTime;
        policy.ApplicationPolicy.Add(peerIsClient ? ClientAuth : ServerAuth);
        if (presented is not null)
        {
            foreach (var element in presented.ChainElements)
            {
                if (!element.Certificate.RawDataMemory.Span.SequenceEqual(leaf.RawDataMemory.Span))
                {
                    policy.ExtraStore.Add(element.Certificate);
                }
            }

            policy.ExtraStore.AddRange(presented.ChainPolicy.ExtraStore);
        }

        bool built;
        try
        {
            built = chain.Build(leaf);
        }
        catch (CryptographicException ex)
        {
            return new PeerCheck(RefusalReasons.InvalidChain, null, $"the certificate chain cannot be built: {ex.Message}");
        }

        var subject = leaf.Subject;
        if (!built)
        {
            var flags = X509ChainStatusFlags.NoError;
            foreach (var status in chain.ChainStatus)
            {
                flags |= status.Status;
            }

            // Trust first: an expired certificate from a stranger is a stranger.
            if ((flags & (X509ChainStatusFlags.UntrustedRoot | X509ChainStatusFlags.PartialChain)) != 0)
            {
                return new PeerCheck(RefusalReasons.UnknownCa, null, $"'{subject}' (issuer '{leaf.Issuer}') does not chain to the trust bundle");
            }

            if ((flags & X509ChainStatusFlags.NotTimeValid) != 0)
            {
                return now.UtcDateTime > leaf.NotAfter.ToUniversalTime()
                    ? new PeerCheck(RefusalReasons.Expired, null, $"'{subject}' expired on {leaf.NotAfter.ToUniversalTime():u}")
                    : new PeerCheck(RefusalReasons.NotYetValid, null, $"'{subject}' is not valid before {leaf.NotBefore.ToUniversalTime():u}");
            }

            return new PeerCheck(RefusalReasons.InvalidChain, null, $"'{subject}' has an invalid chain: {Describe(chain)}");
        }

        var id = PemFiles.SpiffeIdOf(leaf, out var problem);
        if (id is null)
        {
            return new PeerCheck(RefusalReasons.NoSpiffeId, null, $"'{subject}': {problem}");
        }

        if (!string.Equals(id.TrustDomain, trustDomain, StringComparison.OrdinalIgnoreCase))
        {
            return new PeerCheck(RefusalReasons.ForeignTrustDomain, id, $"{id} is not in trust domain {trustDomain}");
        }

        return new PeerCheck(null, id, $"{id} verified");
    }

    private static string Describe(X509Chain chain)
    {
        var parts = new List<string>();
        foreach (var status in chain.ChainStatus)
        {
            parts.Add(status.StatusInformation.Trim());
        }

        return string.Join("; ", parts);
    }
}
