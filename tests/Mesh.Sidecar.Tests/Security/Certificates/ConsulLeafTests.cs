// Consul Connect's leaf (tests/fixtures/consul-api) is a mesh identity: its SPIFFE ID in Consul's form, checked against Consul's root.
using System.Security.Cryptography.X509Certificates;
using System.Text.Json;
using Mesh.Sidecar.Security;
using Mesh.Sidecar.Security.Certificates;
using Mesh.Sidecar.Security.Identity;

namespace Mesh.Sidecar.Tests.Security.Certificates;

public sealed class ConsulLeafTests
{
    private static JsonElement Fixture(string name)
    {
        using var document = JsonDocument.Parse(File.ReadAllText(Mesh.Tests.TestFixtures.Path("consul-api", name)));
        return document.RootElement.Clone();
    }

    [Fact]
    public void ConsulLeaf_ReadsConsulFormSpiffeId_ChainsToConsulRootWithinItsValidity()
    {
        var leafJson = Fixture("agent-connect-ca-leaf.response.json");
        var root = X509Certificate2.CreateFromPem(Fixture("agent-connect-ca-roots.response.json").GetProperty("Roots")[0].GetProperty("RootCert").GetString());
        var leaf = X509Certificate2.CreateFromPem(leafJson.GetProperty("CertPEM").GetString(), leafJson.GetProperty("PrivateKeyPEM").GetString());

        var id = PemFiles.SpiffeIdOf(leaf, out var problem);
        Assert.NotNull(id);
        Assert.Equal(leafJson.GetProperty("ServiceURI").GetString(), id.Value);
        Assert.Equal("dc1", id.Datacenter);

        // A Consul source would hand exactly this to the sidecar.
        var snapshot = new IdentitySnapshot("consul", leaf, [], [root]);
        Assert.Equal("web", snapshot.Id.Service);

        var validAt = DateTimeOffset.Parse(leafJson.GetProperty("ValidAfter").GetString()!, System.Globalization.CultureInfo.InvariantCulture).AddHours(1);
        var check = PeerValidator.Check(leaf, null, [root], id.TrustDomain, validAt, peerIsClient: true);
        Assert.True(check.Accepted, check.Detail);
        Assert.True(SpiffeId.TryParse($"spiffe://{id.TrustDomain}/ns/default/svc/web", out var meshForm, out _));
        Assert.True(check.Id!.Matches(meshForm));
        Assert.Equal(RefusalReasons.Expired, PeerValidator.Check(leaf, null, [root], id.TrustDomain, validAt.AddDays(5), peerIsClient: true).Reason);
    }
}
