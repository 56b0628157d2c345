// Edge TLS: an http listener's certificates for ordinary clients, chosen by SNI, reloaded when their files change.
using System.Net.Security;
using System.Security.Cryptography;
using Mesh.Sidecar.Configuration;
using Mesh.Sidecar.Routing;
using Mesh.Sidecar.Security.Certificates;

namespace Mesh.Sidecar.Security.Tls;

/// <summary>
/// One certificate file pair, loaded once and replaced whole when the bytes on disk change. A pair
/// that fails to load (half-written, mismatched key, expired) is reported and the last good one stays.
/// </summary>
internal sealed class WatchedCertificate
{
    private SslStreamCertificateContext _context;
    private byte[] _loaded;
    private byte[] _failed = [];

    private WatchedCertificate(string certificateFile, string keyFile, SslStreamCertificateContext context, byte[] fingerprint)
    {
        CertificateFile = certificateFile;
        KeyFile = keyFile;
        _context = context;
        _loaded = fingerprint;
    }

    public string CertificateFile { get; }

    public string KeyFile { get; }

    /// <summary>The certificate new handshakes present.</summary>
    public SslStreamCertificateContext Context => Volatile.Read(ref _context);

    /// <summary>Loads a pair; throws <see cref="CertificateFileException"/> when it cannot serve.</summary>
    public static WatchedCertificate Load(string certificateFile, string keyFile, DateTimeOffset now)
    {
        var fingerprint = Fingerprint(certificateFile, keyFile);
        return new WatchedCertificate(certificateFile, keyFile, Read(certificateFile, keyFile, now), fingerprint);
    }

    /// <summary>Reloads when the files changed: true if swapped, false if unchanged; throws when the new files are unusable.</summary>
    public bool Refresh(DateTimeOffset now)
    {
        var fingerprint = Fingerprint(CertificateFile, KeyFile);
        if (fingerprint.AsSpan().SequenceEqual(_loaded) || fingerprint.AsSpan().SequenceEqual(_failed))
        {
            return false;
        }

        try
        {
            Volatile.Write(ref _context, Read(CertificateFile, KeyFile, now));
            _loaded = fingerprint;
            _failed = [];
            return true;
        }
        catch (CertificateFileException)
        {
            _failed = fingerprint;
            throw;
        }
    }

    private static SslStreamCertificateContext Read(string certificateFile, string keyFile, DateTimeOffset now)
    {
        var (leaf, intermediates) = PemFiles.ReadLeaf(certificateFile, keyFile);
        if (leaf.NotAfter.ToUniversalTime() <= now)
        {
            throw new CertificateFileException($"the certificate in '{certificateFile}' expired on {leaf.NotAfter.ToUniversalTime():u}", null, certificateFile);
        }

        return SslStreamCertificateContext.Create(leaf, intermediates, offline: true);
    }

    private static byte[] Fingerprint(string certificateFile, string keyFile)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        foreach (var path in new[] { certificateFile, keyFile })
        {
            try
            {
                hash.AppendData(File.ReadAllBytes(path));
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or ArgumentException)
            {
            }

            hash.AppendData([0]);
        }

        return hash.GetHashAndReset();
    }
}

/// <summary>The certificates of one edge listener, in config order, with their server names.</summary>
internal sealed class EdgeCertificates
{
    private readonly Entry[] _entries;

    public EdgeCertificates(IReadOnlyList<(ServerCertificateOptions Options, WatchedCertificate Certificate)> certificates)
    {
        _entries = new Entry[certificates.Count];
        for (var i = 0; i < _entries.Length; i++)
        {
            var (options, certificate) = certificates[i];
            var exact = new List<string>();
            var wildcards = new List<HostMatcher>();
            foreach (var name in options.ServerNames)
            {
                if (name.StartsWith('*'))
                {
                    wildcards.Add(new HostMatcher(name));
                }
                else
                {
                    exact.Add(name);
                }
            }

            _entries[i] = new Entry([.. exact], [.. wildcards], certificate);
        }
    }

    /// <summary>
    /// The certificate for <paramref name="serverName"/>: an exact name first, then a wildcard, in
    /// config order; the first certificate when nothing matches or the client sent no SNI.
    /// </summary>
    public SslStreamCertificateContext Select(string? serverName)
    {
        if (!string.IsNullOrEmpty(serverName))
        {
            foreach (var entry in _entries)
            {
                foreach (var name in entry.Exact)
                {
                    if (string.Equals(name, serverName, StringComparison.OrdinalIgnoreCase))
                    {
                        return entry.Certificate.Context;
                    }
                }
            }

            foreach (var entry in _entries)
            {
                foreach (var matcher in entry.Wildcards)
                {
                    if (matcher.Matches(serverName))
                    {
                        return entry.Certificate.Context;
                    }
                }
            }
        }

        return _entries[0].Certificate.Context;
    }

    private sealed record Entry(string[] Exact, HostMatcher[] Wildcards, WatchedCertificate Certificate);
}
