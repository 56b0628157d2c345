// Certificates for the mTLS tests, made here with CertificateRequest (not with Mesh's CA code): CAs, SPIFFE leaves, bad leaves, PEM files.
using System.Formats.Asn1;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace Mesh.FunctionalTests.Infrastructure;

/// <summary>A PEM certificate and key on disk.</summary>
public sealed record PemPair(string CertificateFile, string KeyFile);

/// <summary>Test certificate authority and leaves.</summary>
public static class TestPki
{
    public const string TrustDomain = "mesh.local";

    private static readonly Oid ServerAuth = new("1.3.6.1.5.5.7.3.1");
    private static readonly Oid ClientAuth = new("1.3.6.1.5.5.7.3.2");

    public static string Spiffe(string service, string trustDomain = TrustDomain) => $"spiffe://{trustDomain}/ns/default/svc/{service}";

    /// <summary>A self-signed ECDSA CA with the trust domain as its URI SAN.</summary>
    public static X509Certificate2 CreateCa(string trustDomain = TrustDomain, string name = "Test CA")
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest($"CN={name}", key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, true));
        request.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(request.PublicKey, false));
        request.CertificateExtensions.Add(UriSan("spiffe://" + trustDomain));
        return request.CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-30), DateTimeOffset.UtcNow.AddYears(5));
    }

    /// <summary>
    /// A leaf signed by <paramref name="ca"/>. <paramref name="uri"/> null leaves out the URI SAN;
    /// <paramref name="dnsNames"/> adds DNS SANs (edge and plain-TLS servers).
    /// </summary>
    public static X509Certificate2 IssueLeaf(X509Certificate2 ca, string? uri, DateTimeOffset? notBefore = null, DateTimeOffset? notAfter = null, string[]? dnsNames = null, string commonName = "leaf")
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest($"CN={commonName}", key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(false, false, 0, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.DigitalSignature, true));
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([ServerAuth, ClientAuth], false));
        request.CertificateExtensions.Add(X509AuthorityKeyIdentifierExtension.CreateFromCertificate(ca, true, false));
        if (dnsNames is { Length: > 0 })
        {
            var san = new SubjectAlternativeNameBuilder();
            foreach (var name in dnsNames)
            {
                san.AddDnsName(name);
            }

            if (uri is not null)
            {
                throw new ArgumentException("give either a URI or DNS names");
            }

            request.CertificateExtensions.Add(san.Build());
        }
        else if (uri is not null)
        {
            request.CertificateExtensions.Add(UriSan(uri));
        }

        var serial = RandomNumberGenerator.GetBytes(12);
        serial[0] &= 0x7F;
        using var issued = request.Create(ca, notBefore ?? DateTimeOffset.UtcNow.AddMinutes(-5), notAfter ?? DateTimeOffset.UtcNow.AddDays(1), serial);
        return issued.CopyWithPrivateKey(key);
    }

    /// <summary>Writes <c>name.crt</c> and <c>name.key</c> into <paramref name="directory"/>.</summary>
    public static PemPair Write(string directory, string name, X509Certificate2 certificate)
    {
        var pair = new PemPair(Path.Combine(directory, name + ".crt"), Path.Combine(directory, name + ".key"));
        WriteAtomically(pair.CertificateFile, certificate.ExportCertificatePem());
        using var key = certificate.GetECDsaPrivateKey()!;
        WriteAtomically(pair.KeyFile, key.ExportPkcs8PrivateKeyPem());
        return pair;
    }

    /// <summary>Writes only the certificate (a trust bundle).</summary>
    public static string WriteCertificate(string directory, string name, params X509Certificate2[] certificates)
    {
        var path = Path.Combine(directory, name + ".crt");
        WriteAtomically(path, string.Join('\n', certificates.Select(c => c.ExportCertificatePem())));
        return path;
    }

    /// <summary>Write then rename, as cert-manager and kubelet do, so a reader never sees half a file.</summary>
    public static void WriteAtomically(string path, string text)
    {
        var temp = path + ".tmp-" + Guid.NewGuid().ToString("N");
        File.WriteAllText(temp, text + "\n");
        File.Move(temp, path, overwrite: true);
    }

    private static X509Extension UriSan(string uri)
    {
        var writer = new AsnWriter(AsnEncodingRules.DER);
        using (writer.PushSequence())
        {
            writer.WriteCharacterString(UniversalTagNumber.IA5String, uri, new Asn1Tag(TagClass.ContextSpecific, 6));
        }

        return new X509Extension("2.5.29.17", writer.Encode(), false);
    }
}
