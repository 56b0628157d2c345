// The TLS versions and cipher suites every Mesh TLS endpoint uses: TLS 1.2+ with forward-secret AEAD ciphers only.
using System.Net.Security;
using System.Security.Authentication;

namespace Mesh.Sidecar.Security.Certificates;

/// <summary>Protocol and cipher settings shared by inbound termination, edge TLS and origination.</summary>
internal static class TlsDefaults
{
    /// <summary>TLS 1.2 and 1.3; nothing older.</summary>
    public const SslProtocols Protocols = SslProtocols.Tls12 | SslProtocols.Tls13;

    /// <summary>
    /// TLS 1.3's suites and, for 1.2, ECDHE with AES-GCM or ChaCha20-Poly1305 (Mozilla's "intermediate"
    /// list): forward secrecy and AEAD, which HTTP/2 also demands. Null where the platform cannot
    /// restrict suites (Windows uses the OS policy).
    /// </summary>
    public static CipherSuitesPolicy? Ciphers { get; } = OperatingSystem.IsWindows() ? null : Create();

    private static CipherSuitesPolicy? Create()
    {
        if (OperatingSystem.IsWindows())
        {
            return null;
        }

        return new CipherSuitesPolicy(
        [
            TlsCipherSuite.TLS_AES_128_GCM_SHA256,
            TlsCipherSuite.TLS_AES_256_GCM_SHA384,
            TlsCipherSuite.TLS_CHACHA20_POLY1305_SHA256,
            TlsCipherSuite.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
            TlsCipherSuite.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
            TlsCipherSuite.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
            TlsCipherSuite.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
            TlsCipherSuite.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
            TlsCipherSuite.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
        ]);
    }

    /// <summary>Applies the protocols and ciphers to server options.</summary>
    public static SslServerAuthenticationOptions Apply(SslServerAuthenticationOptions options)
    {
        options.EnabledSslProtocols = Protocols;
        options.CertificateRevocationCheckMode = System.Security.Cryptography.X509Certificates.X509RevocationMode.NoCheck;
        options.AllowRenegotiation = false;
        if (!OperatingSystem.IsWindows())
        {
            options.CipherSuitesPolicy = Ciphers;
        }

        return options;
    }

    /// <summary>Applies the protocols and ciphers to client options.</summary>
    public static SslClientAuthenticationOptions Apply(SslClientAuthenticationOptions options)
    {
        options.EnabledSslProtocols = Protocols;
        options.CertificateRevocationCheckMode = System.Security.Cryptography.X509Certificates.X509RevocationMode.NoCheck;
        options.AllowRenegotiation = false;
        if (!OperatingSystem.IsWindows())
        {
            options.CipherSuitesPolicy = Ciphers;
        }

        return options;
    }
}
