// A strict listener refuses every client that is not a mesh peer, and the outbound check refuses a peer with the wrong identity.
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography.X509Certificates;
using Mesh.FunctionalTests.Infrastructure;

namespace Mesh.FunctionalTests.Security;

public sealed class MtlsRefusalTests(MtlsPairFixture mesh) : IClassFixture<MtlsPairFixture>
{
    private Uri InboundHttps => new($"https://{mesh.Api.Sidecar.EndpointOf("inbound")}/");

    private static string Refusals(string reason) => $"mesh_tls_refusals_total{{listener=\"inbound\",reason=\"{reason}\"}}";

    [Fact]
    public async Task StrictListener_PlaintextClient_RefusedAndCounted()
    {
        var before = await MetricsReader.ValueAsync(mesh.Api.Admin, Refusals("plaintext"));
        var hits = mesh.ApiApp.Hits;
        using var client = Clients.Http1();

        await Assert.ThrowsAsync<HttpRequestException>(() => client.GetAsync(new Uri($"http://{mesh.Api.Sidecar.EndpointOf("inbound")}/")));

        await MetricsReader.WaitForAsync(mesh.Api.Admin, Refusals("plaintext"), before + 1);
        Assert.Equal(hits, mesh.ApiApp.Hits);
    }

    [Fact]
    public async Task StrictListener_NoClientCertificate_RefusedAndCounted()
    {
        await AssertRefusedAsync(null, "no-client-certificate");
    }

    [Fact]
    public async Task StrictListener_CertificateFromAnotherCa_RefusedAndCounted()
    {
        using var otherCa = TestPki.CreateCa(name: "Other CA");
        await AssertRefusedAsync(TestPki.IssueLeaf(otherCa, TestPki.Spiffe("web")), "unknown-ca");
    }

    [Fact]
    public async Task StrictListener_ExpiredCertificate_RefusedAndCounted()
    {
        var expired = TestPki.IssueLeaf(mesh.Ca.Ca, TestPki.Spiffe("web"), DateTimeOffset.UtcNow.AddDays(-2), DateTimeOffset.UtcNow.AddDays(-1));
        await AssertRefusedAsync(expired, "expired");
    }

    [Fact]
    public async Task StrictListener_CertificateWithoutSpiffeId_RefusedAndCounted()
    {
        await AssertRefusedAsync(TestPki.IssueLeaf(mesh.Ca.Ca, uri: null), "no-spiffe-id");
    }

    [Fact]
    public async Task StrictListener_SpiffeIdOfAnotherTrustDomain_RefusedAndCounted()
    {
        await AssertRefusedAsync(TestPki.IssueLeaf(mesh.Ca.Ca, TestPki.Spiffe("web", "evil.example")), "foreign-trust-domain");
    }

    [Fact]
    public async Task StrictListener_ValidPeerCertificate_Accepted()
    {
        using var client = TlsClients.Presenting(mesh.Ca.Leaf("web"), mesh.Ca.Ca);

        using var response = await client.GetAsync(InboundHttps);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var echo = await TestBackend.ReadEchoAsync(response);
        Assert.Equal($"By={TestPki.Spiffe("api")};URI={TestPki.Spiffe("web")}", echo.Headers["x-forwarded-client-cert"]);
    }

    [Fact]
    public async Task OutboundMesh_PeerPresentsAnotherServicesValidCertificate_502NamingBothIdentities()
    {
        // "billing" holds a perfectly valid leaf from the same CA, but the web sidecar is calling "api".
        await using var billingApp = await TestBackend.StartAsync("billing-app");
        await using var billing = await TestSidecar.StartAsync(MeshConfig.Inbound("billing", billingApp.Port, mesh.Ca.Identity()));
        await using var web = await TestSidecar.StartAsync(MeshConfig.Outbound("web", mesh.Ca.Identity(), "api", new Dictionary<string, object>
        {
            ["api"] = MeshConfig.MeshService([billing.Sidecar.EndpointOf("inbound")]),
        }));
        using var client = Clients.Http1();

        using var response = await client.SendAsync(Clients.Get(web.Listener(), "/"));

        Assert.Equal(HttpStatusCode.BadGateway, response.StatusCode);
        var body = await response.Content.ReadAsStringAsync();
        Assert.Contains(TestPki.Spiffe("billing"), body, StringComparison.Ordinal);
        Assert.Contains(TestPki.Spiffe("api"), body, StringComparison.Ordinal);
        Assert.Equal(0, billingApp.Hits);
        await MetricsReader.WaitForAsync(web.Admin, "mesh_tls_upstream_refusals_total{service=\"api\",reason=\"wrong-identity\"}");
    }

    [Fact]
    public async Task OutboundMesh_ServerIdentitySetToThePeer_Accepted()
    {
        await using var billingApp = await TestBackend.StartAsync("billing-app");
        await using var billing = await TestSidecar.StartAsync(MeshConfig.Inbound("billing", billingApp.Port, mesh.Ca.Identity()));
        await using var web = await TestSidecar.StartAsync(MeshConfig.Outbound("web", mesh.Ca.Identity(), "api", new Dictionary<string, object>
        {
            ["api"] = MeshConfig.MeshService([billing.Sidecar.EndpointOf("inbound")], serverIdentity: TestPki.Spiffe("billing")),
        }));
        using var client = Clients.Http1();

        using var response = await client.SendAsync(Clients.Get(web.Listener(), "/"));

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(1, billingApp.Hits);
    }

    [Fact]
    public async Task OutboundMesh_PeerFromAnotherCa_502AndCounted()
    {
        using var otherCa = new TestMeshCa();
        await using var strangerApp = await TestBackend.StartAsync("stranger-app");
        await using var stranger = await TestSidecar.StartAsync(MeshConfig.Inbound("api", strangerApp.Port, otherCa.Identity()));
        await using var web = await TestSidecar.StartAsync(MeshConfig.Outbound("web", mesh.Ca.Identity(), "api", new Dictionary<string, object>
        {
            ["api"] = MeshConfig.MeshService([stranger.Sidecar.EndpointOf("inbound")]),
        }));
        using var client = Clients.Http1();

        using var response = await client.SendAsync(Clients.Get(web.Listener(), "/"));

        Assert.Equal(HttpStatusCode.BadGateway, response.StatusCode);
        Assert.Equal(0, strangerApp.Hits);
        await MetricsReader.WaitForAsync(web.Admin, "mesh_tls_upstream_refusals_total{service=\"api\",reason=\"unknown-ca\"}");
    }

    private async Task AssertRefusedAsync(X509Certificate2? certificate, string reason)
    {
        var before = await MetricsReader.ValueAsync(mesh.Api.Admin, Refusals(reason));
        var hits = mesh.ApiApp.Hits;
        using var client = TlsClients.Presenting(certificate, mesh.Ca.Ca);

        // TLS 1.3 lets the client finish its side before the server has checked the certificate, so the
        // refusal shows as a failed handshake or as the connection closing under the first request.
        var error = await Assert.ThrowsAnyAsync<Exception>(() => client.GetAsync(InboundHttps));
        Assert.True(error is HttpRequestException or IOException or SocketException, error.ToString());

        await MetricsReader.WaitForAsync(mesh.Api.Admin, Refusals(reason), before + 1);
        Assert.Equal(hits, mesh.ApiApp.Hits);
    }
}
