// Edge TLS on an http listener, checked with curl and openssl s_client: SNI picks the certificate, ALPN h2/http1.1, TLS 1.2+ with
// modern ciphers only, certificate files reloaded when they change, and re-encryption to a plain-TLS upstream (Python's ssl).
using System.Net;
using System.Security.Cryptography.X509Certificates;
using Mesh.FunctionalTests.Infrastructure;

namespace Mesh.FunctionalTests.Security;

public sealed class EdgeTlsTests : IDisposable
{
    // Python's http.server behind its ssl module: a TLS upstream nobody here wrote.
    internal const string PythonTlsServer = """
        import http.server, ssl, sys
        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                body = ("python-tls " + self.path).encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            def log_message(self, *args):
                pass
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(sys.argv[1], sys.argv[2])
        server.socket = context.wrap_socket(server.socket, server_side=True)
        print(server.server_address[1], flush=True)
        server.serve_forever()
        """;

    private readonly string _directory = Directory.CreateTempSubdirectory("mesh-edge-").FullName;
    private readonly X509Certificate2 _ca = TestPki.CreateCa(name: "Edge Test CA");
    private readonly string _caFile;
    private readonly PemPair _shop;
    private readonly PemPair _other;

    public EdgeTlsTests()
    {
        _caFile = TestPki.WriteCertificate(_directory, "edge-ca", _ca);
        _shop = TestPki.Write(_directory, "shop", TestPki.IssueLeaf(_ca, null, dnsNames: ["shop.example.com", "*.example.com"], commonName: "shop"));
        _other = TestPki.Write(_directory, "other", TestPki.IssueLeaf(_ca, null, dnsNames: ["other.test"], commonName: "other"));
    }

    public void Dispose()
    {
        try
        {
            Directory.Delete(_directory, recursive: true);
        }
        catch (IOException)
        {
        }
    }

    private object EdgeConfig(TestBackend app, Dictionary<string, object>? extraServices = null, object[]? extraRoutes = null)
    {
        var services = new Dictionary<string, object> { ["app"] = TestConfig.Service([app]) };
        foreach (var (name, service) in extraServices ?? [])
        {
            services[name] = service;
        }

        return new
        {
            service = new { name = "edge" },
            admin = new { address = "127.0.0.1", port = 0 },
            listeners = new object[]
            {
                new
                {
                    name = "edge", address = "127.0.0.1", port = 0, direction = "outbound", protocol = "http",
                    tls = new
                    {
                        certificates = new object[]
                        {
                            new { serverNames = new[] { "shop.example.com", "*.example.com" }, certificateFile = _shop.CertificateFile, keyFile = _shop.KeyFile },
                            new { serverNames = new[] { "other.test" }, certificateFile = _other.CertificateFile, keyFile = _other.KeyFile },
                        },
                    },
                },
            },
            routes = (extraRoutes ?? []).Append(new { name = "app", service = "app", match = new { } }).ToArray(),
            services,
            logging = new { level = "Warning" },
        };
    }

    [Fact]
    public async Task EdgeListener_Curl_SniPicksCertificate_AlpnOffersH2AndHttp11()
    {
        await using var app = await TestBackend.StartAsync("app");
        await using var edge = await TestSidecar.StartAsync(EdgeConfig(app));
        var port = edge.Sidecar.EndpointOf("edge").Port;

        foreach (var (host, version, expected) in new[] { ("shop.example.com", "--http2", "2"), ("api.example.com", "--http1.1", "1.1"), ("other.test", "--http2", "2") })
        {
            // curl verifies the chain against the edge CA and the name against the SNI it sent.
            var curl = await ExternalProcess.RunAsync("curl", ["-sS", "--fail", version, "--cacert", _caFile, "--resolve", $"{host}:{port}:127.0.0.1", "-o", "/dev/null", "-w", "%{http_version}", $"https://{host}:{port}/"]);
            Assert.True(curl.ExitCode == 0, curl.ToString());
            Assert.Equal(expected, curl.Output);
        }

        Assert.Equal(3, app.Hits);
    }

    [Fact]
    public async Task EdgeListener_OpensslSClient_SeesTheCertificateForItsServerName()
    {
        await using var app = await TestBackend.StartAsync("app");
        await using var edge = await TestSidecar.StartAsync(EdgeConfig(app));
        var connect = edge.Sidecar.EndpointOf("edge").ToString();

        var other = await SClientAsync(connect, "other.test");
        Assert.Contains("CN=other", other.Output.Replace(" = ", "=", StringComparison.Ordinal), StringComparison.Ordinal);
        Assert.Contains("Verify return code: 0 (ok)", other.Output, StringComparison.Ordinal);

        var shop = await SClientAsync(connect, "www.example.com");
        Assert.Contains("CN=shop", shop.Output.Replace(" = ", "=", StringComparison.Ordinal), StringComparison.Ordinal);

        // No SNI, or a name no certificate claims: the first certificate.
        var unknown = await SClientAsync(connect, "unknown.invalid");
        Assert.Contains("CN=shop", unknown.Output.Replace(" = ", "=", StringComparison.Ordinal), StringComparison.Ordinal);
    }

    [Fact]
    public async Task EdgeListener_OldProtocolsAndWeakCiphers_Refused()
    {
        await using var app = await TestBackend.StartAsync("app");
        await using var edge = await TestSidecar.StartAsync(EdgeConfig(app));
        var connect = edge.Sidecar.EndpointOf("edge").ToString();

        Assert.Equal(0, (await SClientAsync(connect, "shop.example.com", "-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256")).ExitCode);
        Assert.Equal(0, (await SClientAsync(connect, "shop.example.com", "-tls1_2", "-cipher", "ECDHE-ECDSA-CHACHA20-POLY1305")).ExitCode);
        Assert.Equal(0, (await SClientAsync(connect, "shop.example.com", "-tls1_3")).ExitCode);
        // CBC suites (which .NET's own defaults still accept) and TLS 1.1 are refused.
        Assert.NotEqual(0, (await SClientAsync(connect, "shop.example.com", "-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-SHA256")).ExitCode);
        Assert.NotEqual(0, (await SClientAsync(connect, "shop.example.com", "-tls1_2", "-cipher", "ECDHE-ECDSA-AES256-SHA384")).ExitCode);
        Assert.NotEqual(0, (await SClientAsync(connect, "shop.example.com", "-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0")).ExitCode);
    }

    [Fact]
    public async Task EdgeListener_PlaintextClient_RefusedAndCounted()
    {
        await using var app = await TestBackend.StartAsync("app");
        await using var edge = await TestSidecar.StartAsync(EdgeConfig(app));
        using var client = Clients.Http1();

        await Assert.ThrowsAsync<HttpRequestException>(() => client.GetAsync(edge.Listener("edge")));

        await MetricsReader.WaitForAsync(edge.Admin, "mesh_tls_refusals_total{listener=\"edge\",reason=\"plaintext\"}");
        Assert.Equal(0, app.Hits);
    }

    [Fact]
    public async Task EdgeListener_CertificateFilesRewritten_NewHandshakesGetTheNewCertificate()
    {
        await using var app = await TestBackend.StartAsync("app");
        await using var edge = await TestSidecar.StartAsync(EdgeConfig(app));
        var endpoint = edge.Sidecar.EndpointOf("edge");
        var before = await TlsClients.ServerCertificateAsync(endpoint, null, "other.test");

        var renewed = TestPki.IssueLeaf(_ca, null, dnsNames: ["other.test"], commonName: "other");
        TestPki.Write(_directory, "other", renewed);

        await MetricsReader.WaitForAsync(edge.Admin, "mesh_identity_rotations_total{source=\"edge\"}");
        Assert.NotEqual(before.SerialNumber, renewed.SerialNumber);
        Assert.Equal(renewed.SerialNumber, (await TlsClients.ServerCertificateAsync(endpoint, null, "other.test")).SerialNumber);
    }

    [Fact]
    public async Task EdgeListener_ToTlsModeService_ReEncryptsToPythonTlsUpstream()
    {
        var backendPair = TestPki.Write(_directory, "backend", TestPki.IssueLeaf(_ca, null, dnsNames: ["backend.internal"], commonName: "backend"));
        var script = Path.Combine(_directory, "tls_server.py");
        await File.WriteAllTextAsync(script, PythonTlsServer);
        var (python, portLine) = await ExternalProcess.StartAsync("python3", [script, backendPair.CertificateFile, backendPair.KeyFile]);
        await using var _ = python;
        var pythonPort = int.Parse(portLine, System.Globalization.CultureInfo.InvariantCulture);
        await using var app = await TestBackend.StartAsync("app");
        var secure = new
        {
            endpoints = new[] { new { address = "127.0.0.1", port = pythonPort } },
            tls = new { mode = "tls", caFile = _caFile, serverName = "backend.internal" },
        };
        var misnamed = new
        {
            endpoints = new[] { new { address = "127.0.0.1", port = pythonPort } },
            tls = new { mode = "tls", caFile = _caFile, serverName = "elsewhere.internal" },
        };
        await using var edge = await TestSidecar.StartAsync(EdgeConfig(
            app,
            new Dictionary<string, object> { ["secure"] = secure, ["misnamed"] = misnamed },
            [new { name = "secure", service = "secure", match = new { path = new { prefix = "/secure" } } }, new { name = "misnamed", service = "misnamed", match = new { path = new { prefix = "/misnamed" } } }]));
        var port = edge.Sidecar.EndpointOf("edge").Port;

        var curl = await ExternalProcess.RunAsync("curl", ["-sS", "--cacert", _caFile, "--resolve", $"shop.example.com:{port}:127.0.0.1", $"https://shop.example.com:{port}/secure/x"]);
        Assert.True(curl.ExitCode == 0, curl.ToString());
        Assert.Equal("python-tls /secure/x", curl.Output);

        var refused = await ExternalProcess.RunAsync("curl", ["-sS", "-o", "/dev/null", "-w", "%{http_code}", "--cacert", _caFile, "--resolve", $"shop.example.com:{port}:127.0.0.1", $"https://shop.example.com:{port}/misnamed/x"]);
        Assert.Equal("502", refused.Output);
        await MetricsReader.WaitForAsync(edge.Admin, "mesh_tls_upstream_refusals_total{service=\"misnamed\",reason=\"name-mismatch\"}");
        Assert.Equal(0, app.Hits);
    }

    // s_client verifies the chain against the edge CA and fails (exit 1) when the handshake or the verification fails.
    private Task<ProcessResult> SClientAsync(string connect, string serverName, params string[] extra) =>
        ExternalProcess.RunAsync("openssl", ["s_client", "-connect", connect, "-servername", serverName, "-CAfile", _caFile, "-verify_return_error", .. extra], input: "");
}
