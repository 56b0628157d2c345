// The consul block and services.NAME.consul: binding, defaults, and every validation rule with its JSON path.
using System.Text.Json.Nodes;
using Mesh.Sidecar.Configuration;
using static Mesh.Sidecar.Tests.Configuration.TestConfigs;

namespace Mesh.Sidecar.Tests.Configuration;

public class ConsulConfigTests
{
    // The valid config, reading "api" from Consul with a consul block that does not register (no inbound listener).
    private static ConfigLoadResult WithConsul(Action<JsonObject>? change = null) => With(c =>
    {
        c["consul"] = new JsonObject { ["register"] = false };
        c["services"]!["api"] = new JsonObject { ["discovery"] = "consul" };
        change?.Invoke(c);
    });

    private static JsonObject Consul(JsonObject config) => config["consul"]!.AsObject();

    [Fact]
    public void Parse_FullConsulBlock_BindsEveryKey()
    {
        var result = With(c =>
        {
            c["listeners"]!.AsArray().Add(new JsonObject { ["name"] = "in", ["port"] = 15000, ["direction"] = "inbound" });
            c["service"]!["port"] = 8080;
            c["consul"] = JsonNode.Parse("""
                {
                  "address": "http://127.0.0.1:8500", "token": "t", "datacenter": "dc2",
                  "register": true, "serviceId": "web-1", "advertiseAddress": "127.0.0.5",
                  "tags": ["v1"], "meta": { "team": "core" },
                  "check": { "type": "ttl", "intervalMs": 2000, "timeoutMs": 1000, "ttlMs": 9000, "deregisterCriticalAfterMs": 120000 },
                  "deregisterGraceMs": 500
                }
                """);
            c["services"]!["api"] = JsonNode.Parse("""{ "discovery": "consul", "consul": { "service": "api-v2", "tag": "canary", "passingOnly": false } }""");
        });

        Assert.True(result.IsValid, string.Join("\n", result.Errors));
        var consul = result.Options!.Consul!;
        Assert.Equal(("http://127.0.0.1:8500", "t", "dc2", "web-1", "127.0.0.5"), (consul.Address, consul.Token, consul.Datacenter, consul.ServiceId, consul.AdvertiseAddress));
        Assert.Equal(["v1"], consul.Tags);
        Assert.Equal("core", consul.Meta["team"]);
        Assert.Equal((ConsulCheckTypes.Ttl, 2000, 1000, 9000, 120000), (consul.Check.Type, consul.Check.IntervalMs, consul.Check.TimeoutMs, consul.Check.TtlMs, consul.Check.DeregisterCriticalAfterMs));
        Assert.Equal(500, consul.DeregisterGraceMs);
        var service = result.Options.Services["api"];
        Assert.Equal(("consul", "api-v2", "canary", false), (service.Discovery, service.Consul!.Service, service.Consul.Tag, service.Consul.PassingOnly));
    }

    [Fact]
    public void Parse_EmptyConsulBlock_MeansEveryDefault()
    {
        var result = With(c =>
        {
            c["consul"] = new JsonObject();
            c["listeners"]!.AsArray().Add(new JsonObject { ["name"] = "in", ["port"] = 15000, ["direction"] = "inbound" });
            c["service"]!["port"] = 8080;
        });

        Assert.True(result.IsValid, string.Join("\n", result.Errors));
        var consul = result.Options!.Consul!;
        Assert.Equal("http://127.0.0.1:8500", consul.Address);
        Assert.True(consul.Register);
        Assert.Equal((ConsulCheckTypes.Http, 10_000, 5000, 15_000, 60_000), (consul.Check.Type, consul.Check.IntervalMs, consul.Check.TimeoutMs, consul.Check.TtlMs, consul.Check.DeregisterCriticalAfterMs));
    }

    [Fact]
    public void Parse_NoConsulBlock_ConsulIsNull() => Assert.Null(Parse(Valid()).Options!.Consul);

    [Fact]
    public void Validate_ConsulDiscoveryWithoutBlock_ReportsTheService()
    {
        var result = With(c => c["services"]!["api"] = new JsonObject { ["discovery"] = "consul" });

        SingleError(result, "services.api.discovery", "consul discovery needs a top-level \"consul\" block");
    }

    [Fact]
    public void Validate_ConsulDiscoveryWithBlock_IsValidWithoutEndpoints() =>
        Assert.True(WithConsul().IsValid, string.Join("\n", WithConsul().Errors));

    [Fact]
    public void Validate_ConsulServiceWithEndpoints_ReportsEndpoints()
    {
        var result = WithConsul(c => c["services"]!["api"]!["endpoints"] = JsonNode.Parse("""[ { "address": "127.0.0.1", "port": 9001 } ]"""));

        SingleError(result, "services.api.endpoints", "endpoints are for static discovery");
    }

    [Fact]
    public void Validate_ConsulSettingsOnStaticService_Reported()
    {
        var result = With(c => c["services"]!["api"]!["consul"] = new JsonObject { ["service"] = "x" });

        SingleError(result, "services.api.consul", "applies only with \"discovery\": \"consul\"");
    }

    [Theory]
    [InlineData("services.api.consul.service", "api v2", "is not a Consul service name")]
    [InlineData("services.api.consul.tag", "v 2", "contains white space")]
    public void Validate_BadServiceConsulSettings_Reported(string path, string value, string message)
    {
        var key = path[(path.LastIndexOf('.') + 1)..];
        var result = WithConsul(c => c["services"]!["api"]!["consul"] = new JsonObject { [key] = value });

        SingleError(result, path, message);
    }

    [Theory]
    [InlineData("127.0.0.1:8500", "'127.0.0.1:8500' is not an http:// or https:// URL")]
    [InlineData("ftp://127.0.0.1:8500", "is not an http:// or https:// URL")]
    [InlineData("not a url", "is not an http:// or https:// URL")]
    public void Validate_AddressNotAUrl_ReportsAddress(string address, string message)
    {
        SingleError(WithConsul(c => Consul(c)["address"] = address), "consul.address", message);
    }

    [Fact]
    public void Validate_UnknownCheckType_ReportsCheckType()
    {
        SingleError(WithConsul(c => Consul(c)["check"] = new JsonObject { ["type"] = "tcp" }), "consul.check.type", "'tcp' is not one of: http, ttl");
    }

    [Theory]
    [InlineData("intervalMs", 0, "0 must be above 0")]
    [InlineData("timeoutMs", -1, "-1 must be above 0")]
    [InlineData("ttlMs", 0, "0 must be above 0")]
    [InlineData("deregisterCriticalAfterMs", -5, "-5 must be 0 or more")]
    public void Validate_CheckTimesOutOfRange_Reported(string key, int value, string message)
    {
        SingleError(WithConsul(c => Consul(c)["check"] = new JsonObject { [key] = value }), "consul.check." + key, message);
    }

    [Fact]
    public void Validate_TokenAndTokenFile_ReportsBoth()
    {
        var file = Path.GetTempFileName();
        try
        {
            SingleError(WithConsul(c => { Consul(c)["token"] = "a"; Consul(c)["tokenFile"] = file; }), "consul.tokenFile", "give token or tokenFile, not both");
        }
        finally
        {
            File.Delete(file);
        }
    }

    [Theory]
    [InlineData("tokenFile")]
    [InlineData("caFile")]
    public void Validate_MissingFile_ReportsIt(string key)
    {
        var result = WithConsul(c => { Consul(c)["address"] = "https://127.0.0.1:8501"; Consul(c)[key] = "/nonexistent/file.pem"; });

        SingleError(result, "consul." + key, "file '/nonexistent/file.pem' does not exist");
    }

    [Fact]
    public void Validate_CertificateWithoutKey_ReportsKeyFile()
    {
        var file = Path.GetTempFileName();
        try
        {
            SingleError(WithConsul(c => { Consul(c)["address"] = "https://127.0.0.1:8501"; Consul(c)["certificateFile"] = file; }), "consul.keyFile", "is required with certificateFile");
        }
        finally
        {
            File.Delete(file);
        }
    }

    [Fact]
    public void Validate_TlsFilesWithPlainHttp_ReportsAddress()
    {
        var file = Path.GetTempFileName();
        try
        {
            SingleError(WithConsul(c => Consul(c)["caFile"] = file), "consul.address", "caFile and certificateFile need an https:// address");
        }
        finally
        {
            File.Delete(file);
        }
    }

    [Theory]
    [InlineData("datacenter", "dc 1", "consul.datacenter", "is not a datacenter name")]
    [InlineData("serviceId", "web/1", "consul.serviceId", "must not contain '/' or white space")]
    [InlineData("advertiseAddress", "not an address!", "consul.advertiseAddress", "is not an IP address or host name")]
    [InlineData("deregisterGraceMs", -1, "consul.deregisterGraceMs", "-1 must be 0 or more")]
    public void Validate_BadScalar_ReportedAtItsPath(string key, object value, string path, string message)
    {
        SingleError(WithConsul(c => Consul(c)[key] = JsonValue.Create(value)), path, message);
    }

    [Theory]
    [InlineData("consul-reserved", "is not a Consul metadata key")]
    [InlineData("has.dot", "is not a Consul metadata key")]
    [InlineData("mesh-version", "is set by Mesh")]
    public void Validate_BadMetaKey_Reported(string key, string message)
    {
        SingleError(WithConsul(c => Consul(c)["meta"] = new JsonObject { [key] = "v" }), "consul.meta." + key, message);
    }

    [Fact]
    public void Validate_EmptyTag_Reported()
    {
        SingleError(WithConsul(c => Consul(c)["tags"] = new JsonArray("ok", "")), "consul.tags[1]", "is empty");
    }

    [Fact]
    public void Validate_RegisterWithoutInboundListener_ReportsRegister()
    {
        SingleError(WithConsul(c => Consul(c)["register"] = true), "consul.register", "registration advertises the first inbound listener, and there is none");
    }

    [Fact]
    public void Validate_ConsulIdentityWithoutBlock_ReportsIdentitySource()
    {
        SingleError(With(c => c["identity"] = new JsonObject { ["source"] = "consul" }), "identity.source", "the consul source needs the top-level \"consul\" block");
    }

    [Fact]
    public void Validate_ConsulIntentionsWithoutBlock_Reported()
    {
        SingleError(With(c => c["authorization"] = new JsonObject { ["consulIntentions"] = true }), "authorization.consulIntentions", "needs the top-level \"consul\" block (the agent that answers)");
    }

    [Fact]
    public void Validate_ConsulIntentionsWithoutIdentity_Reported()
    {
        SingleError(WithConsul(c => c["authorization"] = new JsonObject { ["consulIntentions"] = true }), "authorization.consulIntentions", "intentions decide on verified callers; set identity.source");
    }

    [Fact]
    public void Validate_ConsulIdentityAndIntentions_Valid()
    {
        var result = WithConsul(c =>
        {
            c["identity"] = new JsonObject { ["source"] = "consul", ["trustDomain"] = "11111111-2222-3333-4444-555555555555.consul" };
            c["authorization"] = new JsonObject { ["consulIntentions"] = true };
        });

        Assert.True(result.IsValid, string.Join("\n", result.Errors));
        Assert.True(result.Options!.Authorization.ConsulIntentions);
    }

    [Fact]
    public void Validate_UnknownKeyInConsulBlock_ReportsKnownKeys()
    {
        var result = WithConsul(c => Consul(c)["adress"] = "x");

        var error = SingleError(result, "consul.adress", "unknown key");
        Assert.Contains("advertiseAddress", error.Message, StringComparison.Ordinal);
    }
}
