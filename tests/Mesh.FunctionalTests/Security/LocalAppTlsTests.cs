// TLS to the local app (service.tls): an inbound request reaches an app that only speaks TLS (Python's ssl), verified against caFile and serverName.
using System.Net;
using System.Security.Cryptography.X509Certificates;
using System.Text.Json;
using Mesh.FunctionalTests.Infrastructure;
using Mesh.Sidecar.Cli;

namespace Mesh.FunctionalTests.Security;

public sealed class LocalAppTlsTests : IAsyncDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("mesh-app-tls-").FullName;
    private readonly X509Certificate2 _ca = TestPki.CreateCa(name: "App Test CA");
    private readonly string _caFile;

    public LocalAppTlsTests() => _caFile = TestPki.WriteCertificate(_directory, "app-ca", _ca);

    public async ValueTask DisposeAsync()
    {
        foreach (var process in _processes)
        {
            await process.DisposeAsync();
        }

        try
        {
            Directory.Delete(_directory, recursive: true);
        }
        catch (IOException)
        {
        }
    }

    [Fact]
    public async Task Inbound_LocalAppSpeaksTls_RequestReachesItOverVerifiedTls()
    {
        var port = await StartPythonTlsAppAsync();

        await using var sidecar = await TestSidecar.StartAsync(Config(port, new { mode = "tls", caFile = _caFile, serverName = "app.internal" }));
        using var client = Clients.Http1();
        using var response = await client.GetAsync(new Uri(sidecar.Listener("inbound"), "/orders/1"));

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("python-tls /orders/1", await response.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task Inbound_LocalAppCertificateForAnotherName_Refused502AndCounted()
    {
        var port = await StartPythonTlsAppAsync();

        await using var sidecar = await TestSidecar.StartAsync(Config(port, new { mode = "tls", caFile = _caFile, serverName = "elsewhere.internal" }));
        using var client = Clients.Http1();
        using var response = await client.GetAsync(new Uri(sidecar.Listener("inbound"), "/orders/1"));

        Assert.Equal(HttpStatusCode.BadGateway, response.StatusCode);
        await MetricsReader.WaitForAsync(sidecar.Admin, "mesh_tls_upstream_refusals_total{service=\"inbound:api\",reason=\"name-mismatch\"}");
    }

    [Fact]
    public async Task Inbound_LocalAppPlaintextByDefault_TlsAppNotReached()
    {
        // Without service.tls the sidecar speaks plaintext to the app, as before: a TLS-only app cannot answer it.
        var port = await StartPythonTlsAppAsync();

        await using var sidecar = await TestSidecar.StartAsync(Config(port, tls: null));
        using var client = Clients.Http1();
        using var response = await client.GetAsync(new Uri(sidecar.Listener("inbound"), "/orders/1"));

        Assert.Equal(HttpStatusCode.BadGateway, response.StatusCode);
    }

    [Fact]
    public async Task Validate_LocalAppTlsProblems_NamedWithTheirPaths()
    {
        var missing = await ValidateAsync(Config(9, new { mode = "tls", caFile = Path.Combine(_directory, "missing.pem") }));
        var mesh = await ValidateAsync(Config(9, new { mode = "mesh" }));

        Assert.Equal(2, missing.Exit);
        Assert.Contains("service.tls.caFile: cannot read", missing.Output, StringComparison.Ordinal);
        Assert.Equal(2, mesh.Exit);
        Assert.Contains("service.tls.mode: mesh is for peer sidecars; the local app takes off or tls", mesh.Output, StringComparison.Ordinal);
    }

    private static object Config(int appPort, object? tls) => new
    {
        service = tls is null
            ? (object)new { name = "api", address = "127.0.0.1", port = appPort }
            : new { name = "api", address = "127.0.0.1", port = appPort, tls },
        admin = new { address = "127.0.0.1", port = 0 },
        listeners = new object[] { new { name = "inbound", address = "127.0.0.1", port = 0, direction = "inbound", protocol = "http" } },
        logging = new { level = "Warning" },
    };

    private async Task<(int Exit, string Output)> ValidateAsync(object config)
    {
        var path = Path.Combine(_directory, $"sidecar-{Guid.NewGuid():N}.json");
        await File.WriteAllTextAsync(path, JsonSerializer.Serialize(config));
        using var output = new StringWriter();
        using var error = new StringWriter();
        var exit = await Program.InvokeAsync(["validate", "--config", path], output, error);
        return (exit, $"{output}{error}");
    }

    // Python's http.server behind its ssl module, with a leaf for app.internal from this test's CA.
    private async Task<int> StartPythonTlsAppAsync()
    {
        var pair = TestPki.Write(_directory, "app", TestPki.IssueLeaf(_ca, null, dnsNames: ["app.internal"], commonName: "app"));
        var script = Path.Combine(_directory, "tls_app.py");
        await File.WriteAllTextAsync(script, EdgeTlsTests.PythonTlsServer);
        var (python, portLine) = await ExternalProcess.StartAsync("python3", [script, pair.CertificateFile, pair.KeyFile]);
        _processes.Add(python);
        return int.Parse(portLine, System.Globalization.CultureInfo.InvariantCulture);
    }

    private readonly List<ExternalProcess> _processes = [];
}
