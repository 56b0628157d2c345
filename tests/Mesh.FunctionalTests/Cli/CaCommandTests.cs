// mesh-sidecar ca init: the CA files as openssl sees them, a sidecar issuing its leaf from them, and refusals.
using Mesh.FunctionalTests.Infrastructure;
using Mesh.FunctionalTests.Security;
using Mesh.Sidecar.Cli;

namespace Mesh.FunctionalTests.Cli;

public sealed class CaCommandTests : IDisposable
{
    private readonly string _directory = Path.Combine(Directory.CreateTempSubdirectory("mesh-ca-init-").FullName, "ca");

    public void Dispose()
    {
        try
        {
            Directory.Delete(Path.GetDirectoryName(_directory)!, recursive: true);
        }
        catch (IOException)
        {
        }
    }

    private static async Task<(int Exit, string Out, string Err)> RunAsync(params string[] args)
    {
        using var output = new StringWriter();
        using var error = new StringWriter();
        var exit = await Program.InvokeAsync(args, output, error);
        return (exit, output.ToString(), error.ToString());
    }

    [Fact]
    [System.Runtime.Versioning.SupportedOSPlatform("linux")]
    public async Task CaInit_WritesCaCertificateAndPrivateKey_OpensslAgrees()
    {
        var (exit, output, _) = await RunAsync("ca", "init", "--dir", _directory, "--trust-domain", "mesh.local");

        Assert.Equal(0, exit);
        Assert.Contains("ca.key", output, StringComparison.Ordinal);
        var certificate = Path.Combine(_directory, "ca.crt");
        var key = Path.Combine(_directory, "ca.key");
        var text = await ExternalProcess.RunAsync("openssl", ["x509", "-in", certificate, "-noout", "-text"]);
        Assert.True(text.ExitCode == 0, text.ToString());
        Assert.Contains("CA:TRUE", text.Output, StringComparison.Ordinal);
        Assert.Contains("URI:spiffe://mesh.local", text.Output, StringComparison.Ordinal);
        Assert.Contains("prime256v1", text.Output, StringComparison.Ordinal);
        var check = await ExternalProcess.RunAsync("openssl", ["pkey", "-in", key, "-check", "-noout"]);
        Assert.True(check.ExitCode == 0, check.ToString());
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(key));
    }

    [Fact]
    public async Task CaInit_SidecarWithCaDir_IssuesLeafThatOpensslVerifiesAgainstTheCa()
    {
        Assert.Equal(0, (await RunAsync("ca", "init", "--dir", _directory, "--trust-domain", "mesh.local")).Exit);
        await using var app = await TestBackend.StartAsync("api-app");
        await using var api = await TestSidecar.StartAsync(MeshConfig.Inbound("api", app.Port, new { source = "ca", caDir = _directory, trustDomain = "mesh.local" }));
        var ca = PemPeer(Path.Combine(_directory, "ca.crt"));
        var client = TestPki.IssueLeaf(ca, TestPki.Spiffe("probe"));

        var leaf = await TlsClients.ServerCertificateAsync(api.Sidecar.EndpointOf("inbound"), client);

        var leafFile = Path.Combine(_directory, "leaf.crt");
        await File.WriteAllTextAsync(leafFile, leaf.ExportCertificatePem());
        var verify = await ExternalProcess.RunAsync("openssl", ["verify", "-CAfile", Path.Combine(_directory, "ca.crt"), "-purpose", "sslserver", leafFile]);
        Assert.True(verify.ExitCode == 0, verify.ToString());
        var text = await ExternalProcess.RunAsync("openssl", ["x509", "-in", leafFile, "-noout", "-text"]);
        Assert.Contains("URI:spiffe://mesh.local/ns/default/svc/api", text.Output, StringComparison.Ordinal);
        Assert.Contains("prime256v1", text.Output, StringComparison.Ordinal);
        Assert.Contains("TLS Web Client Authentication", text.Output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task CaInit_ExistingCa_RefusedWithoutForce_ReplacedWithForce()
    {
        Assert.Equal(0, (await RunAsync("ca", "init", "--dir", _directory, "--trust-domain", "mesh.local")).Exit);
        var first = await File.ReadAllTextAsync(Path.Combine(_directory, "ca.crt"));

        var (exit, _, error) = await RunAsync("ca", "init", "--dir", _directory, "--trust-domain", "mesh.local");
        Assert.Equal(CaCommand.Failed, exit);
        Assert.Contains("--force", error, StringComparison.Ordinal);
        Assert.Equal(first, await File.ReadAllTextAsync(Path.Combine(_directory, "ca.crt")));

        Assert.Equal(0, (await RunAsync("ca", "init", "--dir", _directory, "--trust-domain", "mesh.local", "--force")).Exit);
        Assert.NotEqual(first, await File.ReadAllTextAsync(Path.Combine(_directory, "ca.crt")));
    }

    [Fact]
    public async Task CaInit_BadTrustDomain_Exits1WithMessage()
    {
        var (exit, _, error) = await RunAsync("ca", "init", "--dir", _directory, "--trust-domain", "not a domain/x");

        Assert.Equal(CaCommand.Failed, exit);
        Assert.Contains("--trust-domain", error, StringComparison.Ordinal);
        Assert.False(Directory.Exists(_directory));
    }

    private static System.Security.Cryptography.X509Certificates.X509Certificate2 PemPeer(string certificate) =>
        System.Security.Cryptography.X509Certificates.X509Certificate2.CreateFromPemFile(certificate, Path.ChangeExtension(certificate, ".key"));
}
