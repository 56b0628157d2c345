// A hot reload with a bad security value is rejected with its JSON path and the last good config (and identity) keeps serving.
using System.Net;
using System.Text.Json;
using Mesh.FunctionalTests.Infrastructure;

namespace Mesh.FunctionalTests.Security;

public sealed class SecurityReloadTests : IDisposable
{
    private readonly TestMeshCa _ca = new();

    public void Dispose() => _ca.Dispose();

    [Fact]
    public async Task Reload_KeyThatDoesNotMatchOrMtlsOnOutbound_RejectedAndLastGoodKeepsServing()
    {
        var good = TestPki.Write(_ca.Directory, "api-leaf", _ca.Leaf("api"));
        var stranger = TestPki.Write(_ca.Directory, "stranger", _ca.Leaf("stranger"));
        await using var app = await TestBackend.StartAsync("api-app");
        object Config(string keyFile, string outboundMtls = "off") => new
        {
            service = new { name = "api", address = "127.0.0.1", port = app.Port },
            admin = new { address = "127.0.0.1", port = 0 },
            identity = new { source = "files", trustDomain = TestPki.TrustDomain, certificateFile = good.CertificateFile, keyFile, trustBundleFile = _ca.BundleFile },
            listeners = new object[]
            {
                new { name = "inbound", address = "127.0.0.1", port = 0, direction = "inbound", protocol = "http", mtls = "strict" },
                new { name = "outbound", address = "127.0.0.1", port = 0, direction = "outbound", protocol = "http", mtls = outboundMtls },
            },
            logging = new { level = "Warning" },
        };
        await using var api = await TestSidecar.StartAsync(Config(good.KeyFile));
        var version = api.State.Current.Version;

        await api.WriteConfigAsync(JsonSerializer.Serialize(Config(stranger.KeyFile)));
        await MetricsReader.WaitForAsync(api.Admin, "mesh_config_reloads_total{result=\"rejected\"}", 1);
        await api.WriteConfigAsync(JsonSerializer.Serialize(Config(good.KeyFile, outboundMtls: "strict")));
        await MetricsReader.WaitForAsync(api.Admin, "mesh_config_reloads_total{result=\"rejected\"}", 2);

        Assert.Equal(version, api.State.Current.Version);
        using var client = TlsClients.Presenting(_ca.Leaf("web"), _ca.Ca);
        using var response = await client.GetAsync(new Uri($"https://{api.Sidecar.EndpointOf("inbound")}/"));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
    }

    [Fact]
    public async Task Reload_ValidationErrors_NameEachKeyByJsonPath()
    {
        var stranger = TestPki.Write(_ca.Directory, "stranger", _ca.Leaf("stranger"));
        var good = TestPki.Write(_ca.Directory, "api-leaf", _ca.Leaf("api"));
        var path = Path.Combine(_ca.Directory, "sidecar.json");
        await File.WriteAllTextAsync(path, JsonSerializer.Serialize(new
        {
            service = new { name = "api", port = 8080 },
            identity = new { source = "files", certificateFile = good.CertificateFile, keyFile = stranger.KeyFile, trustBundleFile = _ca.BundleFile },
            listeners = new object[] { new { name = "out", port = 15001, mtls = "strict" } },
            authorization = new { rules = new object[] { new { name = "r", from = new[] { "web" } } } },
        }));
        using var output = new StringWriter();
        using var error = new StringWriter();

        var exit = await Mesh.Sidecar.Cli.Program.InvokeAsync(["validate", "--config", path], output, error);

        Assert.Equal(2, exit);
        var text = error.ToString();
        Assert.Contains("identity.keyFile: the key in", text, StringComparison.Ordinal);
        Assert.Contains("listeners[0].mtls: mtls applies to inbound listeners", text, StringComparison.Ordinal);
        Assert.Contains("authorization.rules[0].from[0]: 'web' is not a SPIFFE ID", text, StringComparison.Ordinal);
    }
}
