// SPIFFE ID parsing and matching: Mesh's form, Consul Connect's form with a datacenter, and what is not an ID.
using Mesh.Sidecar.Security;

namespace Mesh.Sidecar.Tests.Security;

public sealed class SpiffeIdTests
{
    [Fact]
    public void TryParse_MeshServiceId_ReadsTrustDomainNamespaceAndService()
    {
        Assert.True(SpiffeId.TryParse("spiffe://Mesh.Local/ns/default/svc/web", out var id, out _));

        Assert.Equal("mesh.local", id.TrustDomain);
        Assert.Equal("default", id.Namespace);
        Assert.Equal("web", id.Service);
        Assert.Null(id.Datacenter);
        Assert.Equal("spiffe://mesh.local/ns/default/svc/web", id.Value);
    }

    [Fact]
    public void TryParse_ConsulConnectId_ReadsDatacenter()
    {
        // The form in tests/fixtures/consul-api/agent-connect-ca-leaf.response.json.
        Assert.True(SpiffeId.TryParse("spiffe://11111111-2222-3333-4444-555555555555.consul/ns/default/dc/dc1/svc/web", out var id, out _));

        Assert.Equal("dc1", id.Datacenter);
        Assert.Equal("web", id.Service);
    }

    [Theory]
    [InlineData("https://mesh.local/ns/default/svc/web")]
    [InlineData("spiffe://")]
    [InlineData("spiffe://mesh.local/")]
    [InlineData("spiffe://mesh.local/ns//svc/web")]
    [InlineData("spiffe://mesh.local/ns/default/svc/web?x=1")]
    [InlineData("spiffe://mesh.local:8080/ns/default/svc/web")]
    [InlineData("spiffe://mesh.local/ns/../svc/web")]
    [InlineData("")]
    public void TryParse_NotASpiffeId_FalseWithReason(string text)
    {
        Assert.False(SpiffeId.TryParse(text, out _, out var problem));
        Assert.False(string.IsNullOrEmpty(problem));
    }

    [Theory]
    [InlineData("spiffe://mesh.local/ns/default/svc/web", "spiffe://mesh.local/ns/default/svc/web", true)]
    [InlineData("spiffe://mesh.local/ns/default/dc/dc1/svc/web", "spiffe://mesh.local/ns/default/svc/web", true)]
    [InlineData("spiffe://mesh.local/ns/default/dc/dc1/svc/web", "spiffe://mesh.local/ns/default/dc/dc2/svc/web", false)]
    [InlineData("spiffe://mesh.local/ns/default/svc/web", "spiffe://mesh.local/ns/default/svc/api", false)]
    [InlineData("spiffe://mesh.local/ns/prod/svc/web", "spiffe://mesh.local/ns/default/svc/web", false)]
    [InlineData("spiffe://other.local/ns/default/svc/web", "spiffe://mesh.local/ns/default/svc/web", false)]
    [InlineData("spiffe://mesh.local/workload/7", "spiffe://mesh.local/workload/7", true)]
    public void Matches_ComparesWorkloads(string presented, string expected, bool matches)
    {
        Assert.True(SpiffeId.TryParse(presented, out var left, out _));
        Assert.True(SpiffeId.TryParse(expected, out var right, out _));

        Assert.Equal(matches, left.Matches(right));
    }
}
