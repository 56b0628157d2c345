// Two apps, two sidecars, real mTLS on loopback: identity into x-forwarded-client-cert, forgery stripped, HTTP/2 between sidecars.
using System.Net;
using System.Text.Json;
using Mesh.FunctionalTests.Infrastructure;

namespace Mesh.FunctionalTests.Security;

/// <summary>client → web sidecar (outbound) → mTLS → api sidecar (inbound, strict) → api app.</summary>
public sealed class MtlsPairFixture : IAsyncLifetime
{
    public TestMeshCa Ca { get; } = new();

    public TestBackend ApiApp { get; private set; } = null!;

    public TestSidecar Api { get; private set; } = null!;

    public TestSidecar Web { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        ApiApp = await TestBackend.StartAsync("api-app");
        Api = await TestSidecar.StartAsync(MeshConfig.Inbound("api", ApiApp.Port, Ca.Identity()));
        Web = await TestSidecar.StartAsync(MeshConfig.Outbound("web", Ca.Identity(), "api", new Dictionary<string, object>
        {
            ["api"] = MeshConfig.MeshService([Api.Sidecar.EndpointOf("inbound")]),
        }));
    }

    public async Task DisposeAsync()
    {
        await Web.DisposeAsync();
        await Api.DisposeAsync();
        await ApiApp.DisposeAsync();
        Ca.Dispose();
    }
}

public sealed class MtlsHttpTests(MtlsPairFixture mesh) : IClassFixture<MtlsPairFixture>
{
    [Fact]
    public async Task Request_ThroughTwoSidecars_AppSeesCallerIdentityInForwardedClientCert()
    {
        using var client = Clients.Http1();
        using var response = await client.SendAsync(Clients.Get(mesh.Web.Listener(), "/orders/1"));

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var echo = await TestBackend.ReadEchoAsync(response);
        Assert.Equal("/orders/1", echo.Path);
        Assert.Equal($"By={TestPki.Spiffe("api")};URI={TestPki.Spiffe("web")}", echo.Headers["x-forwarded-client-cert"]);
    }

    [Fact]
    public async Task Request_WithForgedForwardedClientCert_ForgeryIsReplacedByVerifiedCaller()
    {
        using var client = Clients.Http1();
        using var request = Clients.Get(mesh.Web.Listener(), "/");
        request.Headers.Add("x-forwarded-client-cert", $"By={TestPki.Spiffe("api")};URI={TestPki.Spiffe("admin")}");

        using var response = await client.SendAsync(request);

        var echo = await TestBackend.ReadEchoAsync(response);
        Assert.Equal($"By={TestPki.Spiffe("api")};URI={TestPki.Spiffe("web")}", echo.Headers["x-forwarded-client-cert"]);
    }

    [Fact]
    public async Task Request_FromHttp1App_ReachesPeerSidecarOverHttp2ByAlpn()
    {
        using var client = Clients.Http1();
        using (var response = await client.SendAsync(Clients.Get(mesh.Web.Listener(), "/h2")))
        {
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.Equal(HttpVersion.Version11, response.Version);
        }

        await MetricsReader.WaitForAsync(mesh.Api.Admin, "mesh_connections_accepted_total{listener=\"inbound\",protocol=\"http2\"}");
        await MetricsReader.WaitForAsync(mesh.Api.Admin, "mesh_tls_handshakes_total{listener=\"inbound\",mode=\"mtls\"}");
        await MetricsReader.WaitForAsync(mesh.Web.Admin, "mesh_tls_upstream_handshakes_total{service=\"api\",mode=\"mesh\"}");
        Assert.Equal(0, await MetricsReader.ValueAsync(mesh.Api.Admin, "mesh_connections_accepted_total{listener=\"inbound\",protocol=\"http1\"}"));
    }

    [Fact]
    public async Task AdminIdentity_ShowsSpiffeIdLeafAndTrustBundle()
    {
        using var client = Clients.Http1();
        using var identity = JsonDocument.Parse(await client.GetStringAsync(new Uri(mesh.Api.Admin, "/admin/identity")));
        var root = identity.RootElement;

        Assert.Equal(TestPki.Spiffe("api"), root.GetProperty("spiffeId").GetString());
        Assert.Equal("ca", root.GetProperty("source").GetString());
        Assert.False(string.IsNullOrEmpty(root.GetProperty("serial").GetString()));
        var notAfter = DateTimeOffset.Parse(root.GetProperty("notAfter").GetString()!, System.Globalization.CultureInfo.InvariantCulture);
        Assert.InRange(notAfter, DateTimeOffset.UtcNow.AddHours(23), DateTimeOffset.UtcNow.AddHours(25));
        Assert.Equal(mesh.Ca.Ca.Subject, Assert.Single(root.GetProperty("trustBundle").EnumerateArray()).GetString());

        var served = await TlsClients.ServerCertificateAsync(mesh.Api.Sidecar.EndpointOf("inbound"), mesh.Ca.Leaf("probe"));
        Assert.Equal(root.GetProperty("serial").GetString(), served.SerialNumber);
    }

    [Fact]
    public async Task OutboundListener_ClientSendsForwardedClientCert_AppNeverSeesIt()
    {
        // A plaintext outbound listener straight to the app (no mTLS hop): the forged header must still go.
        await using var direct = await TestSidecar.StartAsync(TestConfig.Outbound(
            [TestConfig.Route("app", "app")],
            new Dictionary<string, object> { ["app"] = TestConfig.Service([mesh.ApiApp]) }));
        using var client = Clients.Http1();
        using var request = Clients.Get(direct.Listener(), "/");
        request.Headers.Add("x-forwarded-client-cert", "By=spiffe://x/ns/default/svc/x;URI=spiffe://x/ns/default/svc/admin");

        using var response = await client.SendAsync(request);

        var echo = await TestBackend.ReadEchoAsync(response);
        Assert.False(echo.Headers.ContainsKey("x-forwarded-client-cert"));
    }
}
