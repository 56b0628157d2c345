// HTTP authorization on an inbound listener: first matching rule by caller, path, method and headers; default action; reload.
using System.Net;
using Mesh.FunctionalTests.Infrastructure;

namespace Mesh.FunctionalTests.Security;

public sealed class AuthorizationTests : IDisposable
{
    private readonly TestMeshCa _ca = new();

    public void Dispose() => _ca.Dispose();

    private static object Policy(string defaultAction = "deny") => new
    {
        defaultAction,
        rules = new object[]
        {
            new { name = "deny-admin", from = new[] { "*" }, match = new { path = new { prefix = "/admin" } }, action = "deny" },
            new { name = "web-reads", listeners = new[] { "inbound" }, from = new[] { TestPki.Spiffe("web") }, match = new { path = new { prefix = "/api/" }, methods = new[] { "GET" } }, action = "allow" },
            new { name = "web-canary", from = new[] { TestPki.Spiffe("web") }, match = new { headers = new[] { new { name = "x-canary", exact = "1" } } }, action = "allow" },
            new { name = "health", from = new[] { "unauthenticated" }, match = new { path = new { exact = "/health" } }, action = "allow" },
        },
    };

    [Fact]
    public async Task HttpRules_FirstMatchWins_DenyIs403NamingTheRule()
    {
        await using var app = await TestBackend.StartAsync("api-app");
        await using var api = await TestSidecar.StartAsync(MeshConfig.Inbound("api", app.Port, _ca.Identity(), mtls: "permissive", authorization: Policy()));
        await using var web = await TestSidecar.StartAsync(MeshConfig.Outbound("web", _ca.Identity(), "api", new Dictionary<string, object>
        {
            ["api"] = MeshConfig.MeshService([api.Sidecar.EndpointOf("inbound")]),
        }));
        using var client = Clients.Http1();

        Assert.Equal(HttpStatusCode.OK, await StatusAsync(client, web.Listener(), HttpMethod.Get, "/api/orders"));

        var (status, body) = await SendAsync(client, web.Listener(), HttpMethod.Post, "/api/orders");
        Assert.Equal(HttpStatusCode.Forbidden, status);
        Assert.Contains("default", body, StringComparison.Ordinal);

        (status, body) = await SendAsync(client, web.Listener(), HttpMethod.Get, "/admin/users");
        Assert.Equal(HttpStatusCode.Forbidden, status);
        Assert.Contains("'deny-admin'", body, StringComparison.Ordinal);

        (status, _) = await SendAsync(client, web.Listener(), HttpMethod.Delete, "/anything", ("x-canary", "1"));
        Assert.Equal(HttpStatusCode.OK, status);

        // A plaintext client on the permissive listener is "unauthenticated": only /health is allowed.
        Assert.Equal(HttpStatusCode.OK, await StatusAsync(client, api.Listener("inbound"), HttpMethod.Get, "/health"));
        Assert.Equal(HttpStatusCode.Forbidden, await StatusAsync(client, api.Listener("inbound"), HttpMethod.Get, "/api/orders"));

        Assert.Equal(3, app.Hits);
        Assert.Equal(1, await MetricsReader.ValueAsync(api.Admin, "mesh_authz_decisions_total{listener=\"inbound\",rule=\"web-reads\",action=\"allow\"}"));
        Assert.Equal(1, await MetricsReader.ValueAsync(api.Admin, "mesh_authz_decisions_total{listener=\"inbound\",rule=\"deny-admin\",action=\"deny\"}"));
        Assert.Equal(2, await MetricsReader.ValueAsync(api.Admin, "mesh_authz_decisions_total{listener=\"inbound\",rule=\"default\",action=\"deny\"}"));
        Assert.Equal(1, await MetricsReader.ValueAsync(api.Admin, "mesh_authz_decisions_total{listener=\"inbound\",rule=\"health\",action=\"allow\"}"));
    }

    [Fact]
    public async Task HttpRules_ReloadedWithTheConfig()
    {
        await using var app = await TestBackend.StartAsync("api-app");
        var config = MeshConfig.Inbound("api", app.Port, _ca.Identity(), authorization: Policy());
        await using var api = await TestSidecar.StartAsync(config);
        await using var web = await TestSidecar.StartAsync(MeshConfig.Outbound("web", _ca.Identity(), "api", new Dictionary<string, object>
        {
            ["api"] = MeshConfig.MeshService([api.Sidecar.EndpointOf("inbound")]),
        }));
        using var client = Clients.Http1();
        Assert.Equal(HttpStatusCode.Forbidden, await StatusAsync(client, web.Listener(), HttpMethod.Post, "/api/orders"));

        await api.ReloadAsync(MeshConfig.Inbound("api", app.Port, _ca.Identity(), authorization: Policy(defaultAction: "allow")));

        Assert.Equal(HttpStatusCode.OK, await StatusAsync(client, web.Listener(), HttpMethod.Post, "/api/orders"));
        Assert.Equal(HttpStatusCode.Forbidden, await StatusAsync(client, web.Listener(), HttpMethod.Get, "/admin"));
    }

    private static async Task<HttpStatusCode> StatusAsync(HttpClient client, Uri listener, HttpMethod method, string path) =>
        (await SendAsync(client, listener, method, path)).Status;

    private static async Task<(HttpStatusCode Status, string Body)> SendAsync(HttpClient client, Uri listener, HttpMethod method, string path, params (string Name, string Value)[] headers)
    {
        using var request = new HttpRequestMessage(method, new Uri(listener, path));
        foreach (var (name, value) in headers)
        {
            request.Headers.Add(name, value);
        }

        using var response = await client.SendAsync(request);
        return (response.StatusCode, await response.Content.ReadAsStringAsync());
    }
}
