// One version of the sidecar's identity: its SPIFFE leaf with key, intermediates and the trust bundle.
using System.Net.Security;
using System.Security.Cryptography.X509Certificates;
using Mesh.Sidecar.Security.Certificates;

namespace Mesh.Sidecar.Security.Identity;

/// <summary>
/// An immutable identity as a certificate source produced it. New TLS handshakes (both ways) read the
/// current snapshot, so a rotated leaf is used at once; connections keep the leaf they started with.
/// </summary>
public sealed class IdentitySnapshot
{
    private readonly Lazy<SslStreamCertificateContext> _context;

    /// <summary>Checks and wraps a leaf; throws <see cref="CertificateFileException"/> when it cannot be an identity.</summary>
    /// <param name="source">The certificate source's name (<c>ca</c>, <c>files</c>, <c>consul</c>).</param>
    /// <param name="certificate">The leaf, with its private key and exactly one SPIFFE URI SAN.</param>
    /// <param name="intermediates">Certificates between the leaf and a root, sent in handshakes; may be empty.</param>
    /// <param name="trustBundle">The roots peers must chain to.</param>
    public IdentitySnapshot(string source, X509Certificate2 certificate, X509Certificate2Collection intermediates, X509Certificate2Collection trustBundle)
    {
        ArgumentNullException.ThrowIfNull(source);
        ArgumentNullException.ThrowIfNull(certificate);
        ArgumentNullException.ThrowIfNull(intermediates);
        ArgumentNullException.ThrowIfNull(trustBundle);
        if (!certificate.HasPrivateKey)
        {
            throw new CertificateFileException($"the leaf '{certificate.Subject}' has no private key");
        }

        if (trustBundle.Count == 0)
        {
            throw new CertificateFileException("the trust bundle is empty");
        }

        Id = PemFiles.SpiffeIdOf(certificate, out var problem) ?? throw new CertificateFileException($"the leaf '{certificate.Subject}' cannot be a mesh identity: {problem}");
        Source = source;
        Certificate = certificate;
        Intermediates = intermediates;
        TrustBundle = trustBundle;
        _context = new Lazy<SslStreamCertificateContext>(() => SslStreamCertificateContext.Create(certificate, intermediates, offline: true), LazyThreadSafetyMode.ExecutionAndPublication);
    }

    /// <summary>The source that produced it.</summary>
    public string Source { get; }

    /// <summary>The sidecar's SPIFFE ID, read from the leaf.</summary>
    public SpiffeId Id { get; }

    /// <summary>The leaf with its private key.</summary>
    public X509Certificate2 Certificate { get; }

    /// <summary>Intermediates sent after the leaf.</summary>
    public X509Certificate2Collection Intermediates { get; }

    /// <summary>Roots that peers' certificates must chain to.</summary>
    public X509Certificate2Collection TrustBundle { get; }

    /// <summary>The leaf's serial number (hex).</summary>
    public string SerialNumber => Certificate.SerialNumber;

    /// <summary>Start of the leaf's validity.</summary>
    public DateTimeOffset NotBefore => Certificate.NotBefore.ToUniversalTime();

    /// <summary>End of the leaf's validity.</summary>
    public DateTimeOffset NotAfter => Certificate.NotAfter.ToUniversalTime();

    /// <summary>The leaf and its chain, prepared once for every handshake that uses this snapshot.</summary>
    internal SslStreamCertificateContext CertificateContext => _context.Value;
}
