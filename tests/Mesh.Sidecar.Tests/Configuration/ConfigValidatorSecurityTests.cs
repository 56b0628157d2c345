// The mTLS keys: every bad value is an error at its JSON path (files, keys, expiry, SPIFFE IDs, mtls placement, tls modes, rules).
using System.Text.Json.Nodes;
using Mesh.Sidecar.Tests.Security;
using static Mesh.Sidecar.Tests.Configuration.TestConfigs;

namespace Mesh.Sidecar.Tests.Configuration;

public sealed class ConfigValidatorSecurityTests : IDisposable
{
    private readonly TestCertificates _pki = new();

    public void Dispose() => _pki.Dispose();

    private JsonObject FilesIdentity(string? certificateFile = null, string? keyFile = null, string? bundleFile = null)
    {
        var (certificate, key) = _pki.Write("leaf", _pki.Leaf("spiffe://mesh.local/ns/default/svc/web"));
        return new JsonObject
        {
            ["source"] = "files",
            ["certificateFile"] = certificateFile ?? certificate,
            ["keyFile"] = keyFile ?? key,
            ["trustBundleFile"] = bundleFile ?? _pki.WriteBundle("bundle", _pki.Ca),
        };
    }

    private JsonObject CaIdentity(string trustDomain = "mesh.local")
    {
        var (certificate, key) = _pki.Write("ca", _pki.Ca);
        Assert.EndsWith("ca.key", key, StringComparison.Ordinal);
        return new JsonObject { ["source"] = "ca", ["caDir"] = Path.GetDirectoryName(certificate), ["trustDomain"] = trustDomain };
    }

    private static void InboundListener(JsonObject config, string mtls, string protocol = "http", string direction = "inbound")
    {
        config["service"]!["port"] = 8080;
        var listener = SecondListener("in", 15006);
        listener["direction"] = direction;
        listener["protocol"] = protocol;
        listener["mtls"] = mtls;
        if (protocol == "tcp")
        {
            listener["service"] = "api";
        }

        config["listeners"]!.AsArray().Add(listener);
    }

    [Fact]
    public void Validate_FilesAndCaIdentities_Valid()
    {
        Assert.True(With(c => c["identity"] = FilesIdentity()).IsValid);
        var result = With(c => c["identity"] = CaIdentity());
        Assert.True(result.IsValid, string.Join("\n", result.Errors));
    }

    [Fact]
    public void Validate_MissingCertificateFile_ReportsItsPath()
    {
        var result = With(c => c["identity"] = FilesIdentity(certificateFile: Path.Combine(_pki.Directory, "missing.crt")));

        SingleError(result, "identity.certificateFile", "missing.crt");
    }

    [Fact]
    public void Validate_UnreadableTrustBundle_ReportsItsPath()
    {
        var garbage = Path.Combine(_pki.Directory, "garbage.crt");
        File.WriteAllText(garbage, "not a certificate");

        var result = With(c => c["identity"] = FilesIdentity(bundleFile: garbage));

        SingleError(result, "identity.trustBundleFile", "holds no PEM certificate");
    }

    [Fact]
    public void Validate_KeyOfAnotherCertificate_ReportsKeyFile()
    {
        var (_, otherKey) = _pki.Write("other", _pki.Leaf("spiffe://mesh.local/ns/default/svc/other"));

        var result = With(c => c["identity"] = FilesIdentity(keyFile: otherKey));

        SingleError(result, "identity.keyFile", "does not match the certificate");
    }

    [Fact]
    public void Validate_ExpiredCertificate_ReportsCertificateFile()
    {
        var (certificate, key) = _pki.Write("old", _pki.Leaf("spiffe://mesh.local/ns/default/svc/web", DateTimeOffset.UtcNow.AddDays(-3), DateTimeOffset.UtcNow.AddDays(-1)));

        var result = With(c => c["identity"] = FilesIdentity(certificate, key));

        SingleError(result, "identity.certificateFile", "expired on");
    }

    [Fact]
    public void Validate_CertificateWithoutSpiffeId_ReportsCertificateFile()
    {
        var (certificate, key) = _pki.Write("plain", _pki.Leaf(null));

        var result = With(c => c["identity"] = FilesIdentity(certificate, key));

        SingleError(result, "identity.certificateFile", "no SPIFFE URI SAN");
    }

    [Fact]
    public void Validate_CaTrustDomainDiffers_ReportsTrustDomain()
    {
        var result = With(c => c["identity"] = CaIdentity("other.domain"));

        SingleError(result, "identity.trustDomain", "differs from the trust domain 'mesh.local'");
    }

    [Fact]
    public void Validate_CaDirWithoutKey_ReportsCaDir()
    {
        var empty = Directory.CreateDirectory(Path.Combine(_pki.Directory, "empty")).FullName;

        var result = With(c => c["identity"] = new JsonObject { ["source"] = "ca", ["caDir"] = empty });

        SingleError(result, "identity.caDir", "ca.crt");
    }

    [Theory]
    [InlineData("vault", "identity.source", "'vault' is not one of: ca, files, consul")]
    [InlineData("ca", "identity.caDir", "is required")]
    public void Validate_BadSource_ReportsPath(string source, string path, string message)
    {
        var result = With(c => c["identity"] = new JsonObject { ["source"] = source });

        SingleError(result, path, message);
    }

    [Fact]
    public void Validate_FileKeyWithCaSource_ReportsThatItIsNotUsed()
    {
        var identity = CaIdentity();
        identity["certificateFile"] = "/x.crt";

        var result = With(c => c["identity"] = identity);

        SingleError(result, "identity.certificateFile", "only used when the mode or source is 'files'");
    }

    [Fact]
    public void Validate_MtlsOnOutboundListener_ReportsMtls()
    {
        var result = With(c =>
        {
            c["identity"] = CaIdentity();
            c["listeners"]![0]!["mtls"] = "strict";
        });

        SingleError(result, "listeners[0].mtls", "applies to inbound listeners");
    }

    [Fact]
    public void Validate_MtlsWithoutIdentity_ReportsMtls()
    {
        var result = With(c => InboundListener(c, "strict"));

        SingleError(result, "listeners[1].mtls", "set identity.source");
    }

    [Fact]
    public void Validate_MtlsOnUdpListener_ReportsMtls()
    {
        var result = With(c =>
        {
            c["identity"] = CaIdentity();
            InboundListener(c, "permissive", protocol: "udp");
            c["listeners"]![1]!["service"] = "api";
        });

        SingleError(result, "listeners[1].mtls", "applies to http and tcp listeners, not udp");
    }

    [Fact]
    public void Validate_UnknownMtlsMode_ReportsMtls()
    {
        var result = With(c =>
        {
            c["identity"] = CaIdentity();
            InboundListener(c, "sometimes");
        });

        SingleError(result, "listeners[1].mtls", "'sometimes' is not one of: off, strict, permissive");
    }

    [Fact]
    public void Validate_EdgeCertificateKeyMismatch_ReportsKeyFile()
    {
        var (certificate, _) = _pki.Write("edge", _pki.Leaf(null));
        var (_, otherKey) = _pki.Write("edge2", _pki.Leaf(null));

        var result = With(c => Listener(0, c)["tls"] = new JsonObject
        {
            ["certificates"] = new JsonArray(new JsonObject { ["serverNames"] = new JsonArray("shop.example.com"), ["certificateFile"] = certificate, ["keyFile"] = otherKey }),
        });

        SingleError(result, "listeners[0].tls.certificates[0].keyFile", "does not match");
    }

    [Fact]
    public void Validate_EdgeCertificateWithoutServerNames_ReportsServerNames()
    {
        var (certificate, key) = _pki.Write("edge", _pki.Leaf(null));

        var result = With(c => Listener(0, c)["tls"] = new JsonObject
        {
            ["certificates"] = new JsonArray(new JsonObject { ["serverNames"] = new JsonArray(), ["certificateFile"] = certificate, ["keyFile"] = key }),
        });

        SingleError(result, "listeners[0].tls.certificates[0].serverNames", "at least one server name");
    }

    [Fact]
    public void Validate_MeshModeWithoutIdentity_ReportsMode()
    {
        var result = With(c => Api(c)["tls"] = new JsonObject { ["mode"] = "mesh" });

        SingleError(result, "services.api.tls.mode", "set identity.source");
    }

    [Fact]
    public void Validate_ServerIdentityNotSpiffe_ReportsServerIdentity()
    {
        var result = With(c =>
        {
            c["identity"] = CaIdentity();
            Api(c)["tls"] = new JsonObject { ["mode"] = "mesh", ["serverIdentity"] = "https://api.example.com" };
        });

        SingleError(result, "services.api.tls.serverIdentity", "is not a SPIFFE ID");
    }

    [Fact]
    public void Validate_TlsModeMissingCaFile_ReportsCaFile()
    {
        var result = With(c => Api(c)["tls"] = new JsonObject { ["mode"] = "tls", ["caFile"] = Path.Combine(_pki.Directory, "nope.crt") });

        SingleError(result, "services.api.tls.caFile", "nope.crt");
    }

    [Fact]
    public void Validate_TlsModeClientCertificateWithoutKey_ReportsKeyFile()
    {
        var (certificate, _) = _pki.Write("client", _pki.Leaf(null));

        var result = With(c => Api(c)["tls"] = new JsonObject { ["mode"] = "tls", ["certificateFile"] = certificate });

        SingleError(result, "services.api.tls.keyFile", "needs both certificateFile and keyFile");
    }

    [Fact]
    public void Validate_MeshServiceBehindAutoListener_ReportsService()
    {
        var result = With(c =>
        {
            c["identity"] = CaIdentity();
            Api(c)["tls"] = new JsonObject { ["mode"] = "mesh" };
            var auto = SecondListener("auto", 15010);
            auto["protocol"] = "auto";
            auto["service"] = "api";
            c["listeners"]!.AsArray().Add(auto);
        });

        SingleError(result, "listeners[1].service", "auto listeners cannot originate");
    }

    [Theory]
    [InlineData("web", "'web' is not a SPIFFE ID")]
    [InlineData("spiffe://", "'spiffe://' is not a SPIFFE ID")]
    [InlineData("spiffe://mesh.local/ns//svc/web", "not a valid SPIFFE path")]
    public void Validate_FromNotSpiffe_ReportsFromEntry(string from, string message)
    {
        var result = With(c => c["authorization"] = new JsonObject
        {
            ["rules"] = new JsonArray(new JsonObject { ["name"] = "r", ["from"] = new JsonArray("*", from), ["action"] = "allow" }),
        });

        SingleError(result, "authorization.rules[0].from[1]", message);
    }

    [Fact]
    public void Validate_RuleOnOutboundListener_ReportsListener()
    {
        var result = With(c => c["authorization"] = new JsonObject
        {
            ["rules"] = new JsonArray(new JsonObject { ["name"] = "r", ["listeners"] = new JsonArray("out"), ["action"] = "deny" }),
        });

        SingleError(result, "authorization.rules[0].listeners[0]", "governs inbound listeners");
    }

    [Fact]
    public void Validate_RuleWithHttpMatchOnlyOnTcpListeners_ReportsMatch()
    {
        var result = With(c =>
        {
            c["identity"] = CaIdentity();
            InboundListener(c, "strict", protocol: "tcp");
            c["authorization"] = new JsonObject
            {
                ["rules"] = new JsonArray(new JsonObject { ["name"] = "r", ["listeners"] = new JsonArray("in"), ["match"] = new JsonObject { ["methods"] = new JsonArray("GET") }, ["action"] = "allow" }),
            };
        });

        SingleError(result, "authorization.rules[0].match", "match applies to HTTP requests");
    }

    [Fact]
    public void Validate_BadActionsAndMatch_ReportPaths()
    {
        var result = With(c => c["authorization"] = new JsonObject
        {
            ["defaultAction"] = "maybe",
            ["rules"] = new JsonArray(new JsonObject { ["name"] = "r", ["action"] = "permit", ["match"] = new JsonObject { ["path"] = new JsonObject { ["prefix"] = "api" } } }),
        });

        Assert.False(result.IsValid);
        Assert.Equal(["authorization.defaultAction", "authorization.rules[0].action", "authorization.rules[0].match.path.prefix"], result.Errors.Select(e => e.Path));
    }

    [Fact]
    public void Validate_UnknownKeyUnderIdentity_IsAShapeError()
    {
        var result = With(c => c["identity"] = new JsonObject { ["sauce"] = "ca" });

        SingleError(result, "identity.sauce", "unknown key");
    }
}
