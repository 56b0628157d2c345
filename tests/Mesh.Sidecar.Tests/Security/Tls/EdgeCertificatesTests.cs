// Edge certificate choice by SNI: exact names before wildcards, config order, the first certificate as the default.
using System.Security.Cryptography.X509Certificates;
using Mesh.Sidecar.Configuration;
using Mesh.Sidecar.Security.Tls;

namespace Mesh.Sidecar.Tests.Security.Tls;

public sealed class EdgeCertificatesTests : IDisposable
{
    private readonly TestCertificates _pki = new();

    public void Dispose() => _pki.Dispose();

    private (ServerCertificateOptions, WatchedCertificate) Certificate(string name, params string[] serverNames)
    {
        var (certificate, key) = _pki.Write(name, _pki.Leaf(null));
        var options = new ServerCertificateOptions { ServerNames = serverNames, CertificateFile = certificate, KeyFile = key };
        return (options, WatchedCertificate.Load(certificate, key, DateTimeOffset.UtcNow));
    }

    [Fact]
    public void Select_ExactBeforeWildcard_FirstAsDefault()
    {
        var wildcard = Certificate("wild", "*.example.com");
        var exact = Certificate("exact", "shop.example.com");
        var other = Certificate("other", "other.test");
        var set = new EdgeCertificates([wildcard, exact, other]);

        Assert.Same(exact.Item2.Context, set.Select("shop.example.com"));
        Assert.Same(exact.Item2.Context, set.Select("SHOP.example.com"));
        Assert.Same(wildcard.Item2.Context, set.Select("api.example.com"));
        Assert.Same(other.Item2.Context, set.Select("other.test"));
        Assert.Same(wildcard.Item2.Context, set.Select("example.com"));
        Assert.Same(wildcard.Item2.Context, set.Select(null));
    }

    [Fact]
    public void Refresh_FilesChanged_SwapsOnlyForAWholeValidPair()
    {
        var (certificate, key) = _pki.Write("edge", _pki.Leaf(null));
        var watched = WatchedCertificate.Load(certificate, key, DateTimeOffset.UtcNow);
        var first = watched.Context;
        Assert.False(watched.Refresh(DateTimeOffset.UtcNow));

        // Half a rotation: a new certificate with the old key.
        var next = _pki.Leaf(null);
        File.WriteAllText(certificate, next.ExportCertificatePem());
        Assert.Throws<Mesh.Sidecar.Security.Certificates.CertificateFileException>(() => watched.Refresh(DateTimeOffset.UtcNow));
        Assert.Same(first, watched.Context);
        // The same broken bytes are not retried (nor reported again).
        Assert.False(watched.Refresh(DateTimeOffset.UtcNow));

        using (var nextKey = next.GetECDsaPrivateKey()!)
        {
            File.WriteAllText(key, nextKey.ExportPkcs8PrivateKeyPem());
        }

        Assert.True(watched.Refresh(DateTimeOffset.UtcNow));
        Assert.Equal(next.SerialNumber, watched.Context.TargetCertificate.SerialNumber);
    }
}
