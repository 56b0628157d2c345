// The peer check: trust bundle as the only roots, validity at the sidecar's clock, one SPIFFE URI SAN in the trust domain.
using System.Security.Cryptography;
using Mesh.Sidecar.Security.Certificates;

namespace Mesh.Sidecar.Tests.Security.Certificates;

public sealed class PeerValidatorTests : IDisposable
{
    private readonly TestCertificates _pki = new();

    public void Dispose() => _pki.Dispose();

    private PeerCheck Check(System.Security.Cryptography.X509Certificates.X509Certificate2? leaf, DateTimeOffset? at = null, bool client = true) =>
        PeerValidator.Check(leaf, null, [_pki.Ca], "mesh.local", at ?? DateTimeOffset.UtcNow, client);

    [Fact]
    public void Check_LeafFromBundleWithSpiffeId_Accepted()
    {
        var check = Check(_pki.Leaf("spiffe://mesh.local/ns/default/svc/web"));

        Assert.True(check.Accepted, check.Detail);
        Assert.Equal("spiffe://mesh.local/ns/default/svc/web", check.Id!.Value);
    }

    [Fact]
    public void Check_NoCertificate_NoClientCertificate() => Assert.Equal(RefusalReasons.NoCertificate, Check(null).Reason);

    [Fact]
    public void Check_OtherCa_UnknownCa()
    {
        var other = TestCertificates.CreateCa("mesh.local", "Other");
        Assert.Equal(RefusalReasons.UnknownCa, Check(_pki.Leaf("spiffe://mesh.local/ns/default/svc/web", issuer: other)).Reason);
    }

    [Fact]
    public void Check_ExpiredAtTheSidecarsClock_Expired()
    {
        var leaf = _pki.Leaf("spiffe://mesh.local/ns/default/svc/web");

        Assert.True(Check(leaf).Accepted);
        Assert.Equal(RefusalReasons.Expired, Check(leaf, DateTimeOffset.UtcNow.AddDays(2)).Reason);
        Assert.Equal(RefusalReasons.NotYetValid, Check(leaf, DateTimeOffset.UtcNow.AddHours(-1)).Reason);
    }

    [Fact]
    public void Check_ExpiredFromOtherCa_UnknownCaFirst()
    {
        var other = TestCertificates.CreateCa("mesh.local", "Other");
        var leaf = _pki.Leaf("spiffe://mesh.local/ns/default/svc/web", DateTimeOffset.UtcNow.AddDays(-3), DateTimeOffset.UtcNow.AddDays(-1), issuer: other);

        Assert.Equal(RefusalReasons.UnknownCa, Check(leaf).Reason);
    }

    [Fact]
    public void Check_NoUriSan_NoSpiffeId() => Assert.Equal(RefusalReasons.NoSpiffeId, Check(_pki.Leaf(null)).Reason);

    [Fact]
    public void Check_HttpsUriSan_NoSpiffeId() => Assert.Equal(RefusalReasons.NoSpiffeId, Check(_pki.Leaf("https://web.example.com/")).Reason);

    [Fact]
    public void Check_OtherTrustDomain_ForeignTrustDomain() =>
        Assert.Equal(RefusalReasons.ForeignTrustDomain, Check(_pki.Leaf("spiffe://evil.example/ns/default/svc/web")).Reason);

    [Fact]
    public void Check_ServerOnlyLeafUsedAsClient_InvalidChain()
    {
        var serverOnly = _pki.Leaf("spiffe://mesh.local/ns/default/svc/web", usages: [new Oid("1.3.6.1.5.5.7.3.1")]);

        Assert.True(Check(serverOnly, client: false).Accepted);
        Assert.Equal(RefusalReasons.InvalidChain, Check(serverOnly, client: true).Reason);
    }
}
