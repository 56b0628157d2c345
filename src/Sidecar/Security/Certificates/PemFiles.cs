// Reads PEM certificates and keys with errors a user can act on, and finds URI SANs (where SPIFFE IDs live).
using System.Formats.Asn1;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace Mesh.Sidecar.Security.Certificates;

/// <summary>A certificate file that cannot be used; the message says what is wrong and with which file.</summary>
public sealed class CertificateFileException(string message, Exception? inner = null, string? file = null) : Exception(message, inner)
{
    /// <summary>The file at fault, when one is.</summary>
    public string? File { get; } = file;
}

/// <summary>PEM loading and certificate inspection shared by every certificate source.</summary>
public static class PemFiles
{
    private const string SubjectAltNameOid = "2.5.29.17";
    private static readonly Asn1Tag UriTag = new(TagClass.ContextSpecific, 6);

    /// <summary>Every certificate in a PEM file, in file order.</summary>
    public static X509Certificate2Collection ReadCertificates(string path)
    {
        var text = ReadText(path);
        var certificates = new X509Certificate2Collection();
        try
        {
            certificates.ImportFromPem(text);
        }
        catch (CryptographicException ex)
        {
            throw new CertificateFileException($"'{path}' holds a PEM certificate that cannot be parsed: {ex.Message}", ex, path);
        }

        if (certificates.Count == 0)
        {
            throw new CertificateFileException($"'{path}' holds no PEM certificate (-----BEGIN CERTIFICATE-----)", null, path);
        }

        return certificates;
    }

    /// <summary>
    /// The first certificate of <paramref name="certificatePath"/> with the private key of
    /// <paramref name="keyPath"/>, and the certificates that follow it (intermediates).
    /// </summary>
    public static (X509Certificate2 Leaf, X509Certificate2Collection Intermediates) ReadLeaf(string certificatePath, string keyPath)
    {
        var all = ReadCertificates(certificatePath);
        var certificateText = ReadText(certificatePath);
        var keyText = ReadText(keyPath);
        if (!keyText.Contains("PRIVATE KEY-----", StringComparison.Ordinal))
        {
            throw new CertificateFileException($"'{keyPath}' holds no PEM private key (-----BEGIN PRIVATE KEY-----)", null, keyPath);
        }

        if (keyText.Contains("ENCRYPTED PRIVATE KEY", StringComparison.Ordinal))
        {
            throw new CertificateFileException($"'{keyPath}' is an encrypted private key; give the key unencrypted (and protect the file)", null, keyPath);
        }

        X509Certificate2 leaf;
        try
        {
            leaf = X509Certificate2.CreateFromPem(certificateText, keyText);
        }
        catch (Exception ex) when (ex is CryptographicException or ArgumentException)
        {
            // .NET says "The provided key does not match the public key for this certificate."
            var reason = ex.Message.Contains("does not match", StringComparison.OrdinalIgnoreCase)
                ? $"the key in '{keyPath}' does not match the certificate in '{certificatePath}'"
                : $"cannot read the key in '{keyPath}' for '{certificatePath}': {ex.Message}";
            throw new CertificateFileException(reason, ex, keyPath);
        }

        var intermediates = new X509Certificate2Collection();
        for (var i = 1; i < all.Count; i++)
        {
            intermediates.Add(all[i]);
        }

        return (leaf, intermediates);
    }

    /// <summary>Every URI in the certificate's subject alternative names.</summary>
    public static IReadOnlyList<string> UriNames(X509Certificate2 certificate)
    {
        ArgumentNullException.ThrowIfNull(certificate);
        var uris = new List<string>();
        foreach (var extension in certificate.Extensions)
        {
            if (extension.Oid?.Value != SubjectAltNameOid)
            {
                continue;
            }

            try
            {
                var reader = new AsnReader(extension.RawData, AsnEncodingRules.DER);
                var names = reader.ReadSequence();
                while (names.HasData)
                {
                    if (names.PeekTag().HasSameClassAndValue(UriTag))
                    {
                        uris.Add(names.ReadCharacterString(UniversalTagNumber.IA5String, UriTag));
                    }
                    else
                    {
                        names.ReadEncodedValue();
                    }
                }
            }
            catch (AsnContentException)
            {
                // A malformed SAN carries no usable identity.
                return [];
            }
        }

        return uris;
    }

    /// <summary>
    /// The certificate's one SPIFFE ID; null with a reason when it has none, several, or a malformed one
    /// (X.509-SVIDs carry exactly one URI SAN).
    /// </summary>
    public static SpiffeId? SpiffeIdOf(X509Certificate2 certificate, out string? problem)
    {
        SpiffeId? found = null;
        problem = null;
        foreach (var uri in UriNames(certificate))
        {
            if (!uri.StartsWith(SpiffeId.Prefix, StringComparison.OrdinalIgnoreCase))
            {
                continue;
            }

            if (found is not null)
            {
                problem = "the certificate has more than one SPIFFE URI SAN";
                return null;
            }

            if (!SpiffeId.TryParse(uri, out found, out var why))
            {
                problem = $"the URI SAN '{uri}' is not a valid SPIFFE ID: {why}";
                return null;
            }
        }

        if (found is null)
        {
            problem = "the certificate has no SPIFFE URI SAN";
        }

        return found;
    }

    private static string ReadText(string path)
    {
        try
        {
            return File.ReadAllText(path);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or ArgumentException or NotSupportedException)
        {
            throw new CertificateFileException($"cannot read '{path}': {ex.Message}", ex, path);
        }
    }
}
