// The built-in CA: creates the mesh's root (ca init) and issues ECDSA P-256 SPIFFE leaves from it.
using System.Formats.Asn1;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace Mesh.Sidecar.Security.Certificates;

/// <summary>
/// A minimal certificate authority for development and small meshes: one self-signed ECDSA P-256
/// root whose URI SAN is the trust domain (<c>spiffe://TD</c>), and short-lived leaves with one
/// SPIFFE URI SAN each, usable as TLS client and server certificates.
/// </summary>
public static class BuiltInCa
{
    /// <summary>The CA certificate's file name in a CA folder.</summary>
    public const string CertificateFileName = "ca.crt";

    /// <summary>The CA key's file name in a CA folder.</summary>
    public const string KeyFileName = "ca.key";

    /// <summary>How far a leaf's not-before is set back, so peers with a slightly slow clock accept it.</summary>
    public static readonly TimeSpan ClockSkew = TimeSpan.FromMinutes(5);

    private static readonly Oid ServerAuth = new("1.3.6.1.5.5.7.3.1");
    private static readonly Oid ClientAuth = new("1.3.6.1.5.5.7.3.2");

    /// <summary>Creates a self-signed CA certificate (with its key) for <paramref name="trustDomain"/>.</summary>
    public static X509Certificate2 CreateCa(string trustDomain, DateTimeOffset now, TimeSpan lifetime)
    {
        ArgumentNullException.ThrowIfNull(trustDomain);
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest(Name($"Mesh CA {trustDomain}"), key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(certificateAuthority: true, hasPathLengthConstraint: false, pathLengthConstraint: 0, critical: true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign | X509KeyUsageFlags.DigitalSignature, critical: true));
        request.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(request.PublicKey, critical: false));
        request.CertificateExtensions.Add(UriSan(SpiffeId.Prefix + trustDomain.ToLowerInvariant()));
        return request.CreateSelfSigned(now - ClockSkew, now + lifetime);
    }

    /// <summary>
    /// Issues a leaf for <paramref name="spiffeId"/> signed by <paramref name="ca"/> (which must hold its
    /// key), valid from <paramref name="now"/> (less the clock skew) for <paramref name="lifetime"/>, cut
    /// at the CA's own expiry.
    /// </summary>
    public static X509Certificate2 IssueLeaf(X509Certificate2 ca, string spiffeId, string commonName, DateTimeOffset now, TimeSpan lifetime)
    {
        ArgumentNullException.ThrowIfNull(ca);
        ArgumentNullException.ThrowIfNull(spiffeId);
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest(Name(commonName), key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(certificateAuthority: false, hasPathLengthConstraint: false, pathLengthConstraint: 0, critical: true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.DigitalSignature | X509KeyUsageFlags.KeyAgreement, critical: true));
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([ServerAuth, ClientAuth], critical: false));
        request.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(request.PublicKey, critical: false));
        request.CertificateExtensions.Add(X509AuthorityKeyIdentifierExtension.CreateFromCertificate(ca, includeKeyIdentifier: true, includeIssuerAndSerial: false));
        request.CertificateExtensions.Add(UriSan(spiffeId));

        var notBefore = Max(now - ClockSkew, ca.NotBefore.ToUniversalTime());
        var notAfter = Min(now + lifetime, ca.NotAfter.ToUniversalTime());
        if (notAfter <= now)
        {
            throw new CertificateFileException($"the CA certificate '{ca.Subject}' expired on {ca.NotAfter.ToUniversalTime():u}; create a new one with mesh-sidecar ca init");
        }

        var serial = new byte[16];
        RandomNumberGenerator.Fill(serial);
        serial[0] &= 0x7F;
        using var issued = request.Create(ca, notBefore, notAfter, serial);
        return issued.CopyWithPrivateKey(key);
    }

    /// <summary>Reads a CA folder (<c>ca.crt</c> and <c>ca.key</c>).</summary>
    public static X509Certificate2 Load(string directory)
    {
        ArgumentNullException.ThrowIfNull(directory);
        var (ca, _) = PemFiles.ReadLeaf(Path.Combine(directory, CertificateFileName), Path.Combine(directory, KeyFileName));
        if (ca.Extensions[BasicConstraintsOid] is not X509BasicConstraintsExtension { CertificateAuthority: true })
        {
            throw new CertificateFileException($"'{Path.Combine(directory, CertificateFileName)}' is not a CA certificate (basic constraints CA:TRUE)");
        }

        return ca;
    }

    /// <summary>
    /// Writes a CA folder: <c>ca.crt</c> (world-readable: it is the trust bundle) and <c>ca.key</c>
    /// (owner read/write only). Refuses to replace existing files unless <paramref name="overwrite"/>.
    /// </summary>
    public static void Write(string directory, X509Certificate2 ca, bool overwrite)
    {
        ArgumentNullException.ThrowIfNull(ca);
        var certificatePath = Path.Combine(directory, CertificateFileName);
        var keyPath = Path.Combine(directory, KeyFileName);
        if (!overwrite && (File.Exists(certificatePath) || File.Exists(keyPath)))
        {
            throw new IOException($"'{directory}' already holds a CA ({CertificateFileName} or {KeyFileName}); pass --force to replace it (every leaf it issued stops being trusted)");
        }

        Directory.CreateDirectory(directory);
        using var key = ca.GetECDsaPrivateKey() ?? throw new InvalidOperationException("the CA certificate has no ECDSA private key");
        WritePem(keyPath, key.ExportPkcs8PrivateKeyPem(), secret: true);
        WritePem(certificatePath, ca.ExportCertificatePem(), secret: false);
    }

    /// <summary>Writes PEM text; secrets get mode 0600 from creation, so they are never readable by others.</summary>
    public static void WritePem(string path, string pem, bool secret)
    {
        ArgumentNullException.ThrowIfNull(pem);
        var options = new FileStreamOptions { Mode = FileMode.Create, Access = FileAccess.Write };
        if (secret && !OperatingSystem.IsWindows())
        {
            options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        }

        using (var stream = new FileStream(path, options))
        using (var writer = new StreamWriter(stream))
        {
            writer.Write(pem);
            writer.Write('\n');
        }

        if (secret && !OperatingSystem.IsWindows())
        {
            // An existing file keeps its old mode on open; make sure it is private now.
            File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        }
    }

    private const string BasicConstraintsOid = "2.5.29.19";

    private static DateTimeOffset Max(DateTimeOffset a, DateTimeOffset b) => a > b ? a : b;

    private static DateTimeOffset Min(DateTimeOffset a, DateTimeOffset b) => a < b ? a : b;

    private static X500DistinguishedName Name(string commonName)
    {
        var name = new X500DistinguishedNameBuilder();
        name.AddOrganizationName("Mesh");
        name.AddCommonName(commonName);
        return name.Build();
    }

    /// <summary>
    /// A subject alternative name with one URI, written as given. SubjectAlternativeNameBuilder goes
    /// through <see cref="Uri"/>, which would turn <c>spiffe://td</c> into <c>spiffe://td/</c>, not a valid SPIFFE ID.
    /// </summary>
    public static X509Extension UriSan(string uri)
    {
        var writer = new AsnWriter(AsnEncodingRules.DER);
        using (writer.PushSequence())
        {
            writer.WriteCharacterString(UniversalTagNumber.IA5String, uri, new Asn1Tag(TagClass.ContextSpecific, 6));
        }

        return new X509Extension("2.5.29.17", writer.Encode(), critical: false);
    }
}
