// Every documented Consul body in tests/fixtures/consul-api parses with the client's types into the values it holds.
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization.Metadata;
using Mesh.Discovery.Consul;
using Mesh.Tests;

namespace Mesh.Discovery.Tests.Consul;

public class ConsulFixturesTests
{
    // Each fixture file and the client type it is read with.
    private static readonly Dictionary<string, JsonTypeInfo> Types = new(StringComparer.Ordinal)
    {
        ["agent-check-register.request.json"] = ConsulJsonContext.Default.AgentCheckRegistration,
        ["agent-check-update.request.json"] = ConsulJsonContext.Default.CheckUpdate,
        ["agent-connect-authorize.request.json"] = ConsulJsonContext.Default.AuthorizeRequest,
        ["agent-connect-authorize.response.json"] = ConsulJsonContext.Default.AuthorizeResponse,
        ["agent-connect-ca-leaf.response.json"] = ConsulJsonContext.Default.LeafCert,
        ["agent-connect-ca-roots.response.json"] = ConsulJsonContext.Default.CaRootList,
        ["agent-service-register.legacy-http-ttl.request.json"] = ConsulJsonContext.Default.AgentServiceRegistration,
        ["agent-service-register.request.json"] = ConsulJsonContext.Default.AgentServiceRegistration,
        ["agent-service.response.json"] = ConsulJsonContext.Default.AgentService,
        ["agent-services.response.json"] = ConsulJsonContext.Default.DictionaryStringAgentService,
        ["catalog-service.response.json"] = ConsulJsonContext.Default.ListCatalogService,
        ["catalog-services.response.json"] = ConsulJsonContext.Default.DictionaryStringListString,
        ["connect-ca-roots.response.json"] = ConsulJsonContext.Default.CaRootList,
        ["connect-intentions-check.response.json"] = ConsulJsonContext.Default.IntentionCheck,
        ["connect-intentions-exact.response.json"] = ConsulJsonContext.Default.Intention,
        ["connect-intentions-list.response.json"] = ConsulJsonContext.Default.ListIntention,
        ["connect-intentions-match.response.json"] = ConsulJsonContext.Default.DictionaryStringListIntention,
        ["health-service.response.json"] = ConsulJsonContext.Default.ListServiceEntry,
    };

    // Bodies Mesh never sends or reads with its own types; the test server accepts them (ConsulTestServerTests).
    private static readonly string[] NotMapped =
    [
        // A Connect sidecar definition in snake_case: Mesh is its own sidecar and registers no Consul proxy.
        "agent-service-register.sidecar.request.json",
    ];

    public static TheoryData<string> MappedFiles() => [.. Types.Keys];

    [Fact]
    public void Fixtures_EveryJsonFile_IsMappedToAClientTypeOrListedAsNotMapped()
    {
        var files = Directory.GetFiles(TestFixtures.Path("consul-api"), "*.json").Select(Path.GetFileName).ToList();

        Assert.NotEmpty(files);
        foreach (var file in files)
        {
            Assert.True(Types.ContainsKey(file!) || NotMapped.Contains(file), $"{file} has no client type in ConsulFixturesTests");
            Assert.False(file!.EndsWith(".response.json", StringComparison.Ordinal) && NotMapped.Contains(file), $"{file} is a response and must parse");
        }
    }

    [Theory]
    [MemberData(nameof(MappedFiles))]
    public void Fixture_ParsedAndWrittenBack_KeepsEveryValue(string file)
    {
        var text = File.ReadAllText(TestFixtures.Path("consul-api", file));
        var type = Types[file];

        var parsed = JsonSerializer.Deserialize(text, type);
        var written = JsonNode.Parse(JsonSerializer.Serialize(parsed, type));

        AssertHolds(JsonNode.Parse(text), written, "$");
    }

    [Fact]
    public void HealthService_Fixture_ParsesNodeServiceWeightsAndChecks()
    {
        var entries = Parse(ConsulJsonContext.Default.ListServiceEntry, "health-service.response.json");

        var entry = Assert.Single(entries);
        // The documented sample's node addresses (private ones) come from the file itself: they are parsed, never dialled.
        var node = Fixture("health-service.response.json")[0]!["Node"]!;
        Assert.Equal("foobar", entry.Node.Name);
        Assert.Equal((string?)node["Address"], entry.Node.Address);
        Assert.Equal("dc1", entry.Node.Datacenter);
        Assert.Equal("t2.medium", entry.Node.Meta!["instance_type"]);
        Assert.Equal((string?)node["TaggedAddresses"]!["wan"], entry.Node.TaggedAddresses!["wan"]);
        Assert.Equal("redis", entry.Service.Id);
        Assert.Equal("redis", entry.Service.Service);
        Assert.Equal(["primary"], entry.Service.Tags!);
        Assert.Equal(8000, entry.Service.Port);
        Assert.Equal("198.18.1.2", entry.Service.TaggedAddresses!["wan"].Address);
        Assert.Equal(80, entry.Service.TaggedAddresses["wan"].Port);
        Assert.Equal("4.0", entry.Service.Meta!["redis_version"]);
        Assert.Equal(10, entry.Service.Weights!.Passing);
        Assert.Equal(1, entry.Service.Weights.Warning);
        Assert.Equal(["service:redis", "serfHealth"], entry.Checks.Select(c => c.CheckId));
        Assert.All(entry.Checks, c => Assert.Equal(HealthStatus.Passing, c.Status));
        Assert.Equal("redis", entry.Checks[0].ServiceId);
        Assert.Equal(HealthStatus.Passing, entry.AggregatedStatus());
    }

    [Fact]
    public void CatalogServices_Fixture_ParsesNamesAndTags()
    {
        var services = Parse(ConsulJsonContext.Default.DictionaryStringListString, "catalog-services.response.json");

        Assert.Equal(["consul", "redis", "postgresql"], services.Keys);
        Assert.Empty(services["consul"]);
        Assert.Equal(["primary", "secondary"], services["postgresql"]);
    }

    [Fact]
    public void CatalogService_Fixture_ParsesFlatInstance()
    {
        var instance = Assert.Single(Parse(ConsulJsonContext.Default.ListCatalogService, "catalog-service.response.json"));

        var sample = Fixture("catalog-service.response.json")[0]!;
        Assert.Equal("t2.320", instance.Node);
        Assert.Equal((string?)sample["Address"], instance.Address);
        Assert.Equal((string?)sample["TaggedAddresses"]!["wan"], instance.TaggedAddresses!["wan"]);
        Assert.Equal("somevalue", instance.NodeMeta!["somekey"]);
        Assert.Equal(51UL, instance.CreateIndex);
        Assert.Equal((string?)sample["ServiceAddress"], instance.ServiceAddress);
        Assert.Equal("32a2a47f7992:nodea:5000", instance.ServiceId);
        Assert.Equal("web", instance.ServiceName);
        Assert.Equal(5000, instance.ServicePort);
        Assert.Equal("baz", instance.ServiceMeta!["web_meta_value"]);
        Assert.Equal(512, instance.ServiceTaggedAddresses!["wan"].Port);
        Assert.Equal(["prod"], instance.ServiceTags!);
        Assert.Null(instance.ServiceProxy!.Upstreams);
        Assert.False(instance.ServiceConnect!.Native);
    }

    [Fact]
    public void AgentServices_Fixture_ParsesServicesById()
    {
        var services = Parse(ConsulJsonContext.Default.DictionaryStringAgentService, "agent-services.response.json");

        var redis = Assert.Single(services).Value;
        Assert.Equal("redis", redis.Id);
        Assert.Empty(redis.Tags!);
        Assert.Equal("", redis.Address);
        Assert.Equal(8000, redis.Port);
        Assert.Equal("dc1", redis.Datacenter);
        Assert.Equal(10, redis.Weights!.Passing);
        Assert.Equal("127.0.0.1", redis.TaggedAddresses!["lan"].Address);
    }

    [Fact]
    public void AgentService_Fixture_ParsesProxyAndNulls()
    {
        var service = Parse(ConsulJsonContext.Default.AgentService, "agent-service.response.json");

        Assert.Equal("connect-proxy", service.Kind);
        Assert.Equal("web-sidecar-proxy", service.Id);
        Assert.Null(service.Tags);
        Assert.Null(service.Meta);
        Assert.Equal(18080, service.Port);
        Assert.Equal("4ecd29c7bc647ca8", service.ContentHash);
        Assert.Equal("web", service.Proxy!.DestinationServiceName);
        Assert.Equal(8080, service.Proxy.LocalServicePort);
        Assert.Equal("transparent", service.Proxy.Mode);
        Assert.Equal(22500, service.Proxy.TransparentProxy!.OutboundListenerPort);
        Assert.Equal("bar", service.Proxy.Config!["foo"].GetString());
        var upstream = Assert.Single(service.Proxy.Upstreams!);
        Assert.Equal(("service", "db", 9191), (upstream.DestinationType, upstream.DestinationName, upstream.LocalBindPort));
    }

    [Theory]
    [InlineData("agent-connect-ca-roots.response.json", "15:bf:3a:7d:ff:ea:c1:8c:46:67:6c:db:b8:81:18:36:ad:e5:d0:c7", null, "2018-05-21T16:33:28Z")]
    [InlineData("connect-ca-roots.response.json", "c7:bd:55:4b:64:80:14:51:10:a4:b9:b9:d7:e0:75:3f:86:ba:bb:24", "7f42f496-fbc7-8692-05ed-334aa5340c1e.consul", "2018-05-25T21:39:23Z")]
    public void CaRoots_Fixture_ParsesRootsWithLoadableCertificates(string file, string activeId, string? trustDomain, string notBefore)
    {
        var roots = Parse(ConsulJsonContext.Default.CaRootList, file);

        Assert.Equal(activeId, roots.ActiveRootId);
        Assert.Equal(trustDomain, roots.TrustDomain);
        var root = Assert.Single(roots.Roots);
        Assert.Equal(activeId, root.Id);
        Assert.True(root.Active);
        Assert.Equal(7UL, root.SerialNumber);
        Assert.Equal("ec", root.PrivateKeyType);
        Assert.Equal(256, root.PrivateKeyBits);
        Assert.Null(root.IntermediateCerts);
        Assert.Equal(DateTimeOffset.Parse(notBefore, CultureInfo.InvariantCulture), root.NotBefore);
        using var certificate = System.Security.Cryptography.X509Certificates.X509Certificate2.CreateFromPem(root.RootCert);
        Assert.Equal("CN=Consul CA 7", certificate.Subject);
    }

    [Fact]
    public void Leaf_Fixture_ParsesCertificateKeyAndValidity()
    {
        var leaf = Parse(ConsulJsonContext.Default.LeafCert, "agent-connect-ca-leaf.response.json");

        Assert.Equal("08", leaf.SerialNumber);
        Assert.Equal("web", leaf.Service);
        Assert.Equal("spiffe://11111111-2222-3333-4444-555555555555.consul/ns/default/dc/dc1/svc/web", leaf.ServiceUri);
        Assert.Equal(new DateTimeOffset(2018, 5, 24, 16, 33, 28, TimeSpan.Zero), leaf.ValidBefore);
        Assert.Equal(5UL, leaf.ModifyIndex);
        using var certificate = System.Security.Cryptography.X509Certificates.X509Certificate2.CreateFromPem(leaf.CertPem, leaf.PrivateKeyPem);
        Assert.True(certificate.HasPrivateKey);
        Assert.Equal("CN=web", certificate.Subject);
    }

    [Fact]
    public void Authorize_Fixtures_ParseRequestAndResponse()
    {
        var request = Parse(ConsulJsonContext.Default.AuthorizeRequest, "agent-connect-authorize.request.json");
        var response = Parse(ConsulJsonContext.Default.AuthorizeResponse, "agent-connect-authorize.response.json");

        Assert.Equal("db", request.Target);
        Assert.EndsWith("/svc/web", request.ClientCertUri, StringComparison.Ordinal);
        Assert.Equal("04:00:00:00:00:01:15:4b:5a:c3:94", request.ClientCertSerial);
        Assert.True(response.Authorized);
        Assert.Equal("Matched intention: web => db (allow)", response.Reason);
    }

    [Fact]
    public void Intentions_Fixtures_ParseListMatchExactAndCheck()
    {
        var list = Parse(ConsulJsonContext.Default.ListIntention, "connect-intentions-list.response.json");
        var match = Parse(ConsulJsonContext.Default.DictionaryStringListIntention, "connect-intentions-match.response.json");
        var exact = Parse(ConsulJsonContext.Default.Intention, "connect-intentions-exact.response.json");
        var check = Parse(ConsulJsonContext.Default.IntentionCheck, "connect-intentions-check.response.json");

        var only = Assert.Single(list);
        Assert.Equal(("web", "db", "allow", 9), (only.SourceName, only.DestinationName, only.Action, only.Precedence));
        Assert.Equal(["deny", "allow"], match["web"].Select(i => i.Action));
        Assert.Equal("*", match["web"][1].DestinationName);
        Assert.Equal(11UL, exact.CreateIndex);
        Assert.Empty(exact.Meta!);
        Assert.True(check.Allowed);
    }

    [Fact]
    public void RegisterRequests_Fixtures_ParseIntoRegistration()
    {
        var current = Parse(ConsulJsonContext.Default.AgentServiceRegistration, "agent-service-register.request.json");
        var legacy = Parse(ConsulJsonContext.Default.AgentServiceRegistration, "agent-service-register.legacy-http-ttl.request.json");

        Assert.Equal(("redis1", "redis", 8000), (current.Id, current.Name, current.Port));
        Assert.Equal(["primary", "v1"], current.Tags!);
        Assert.Equal("90m", current.Check!.DeregisterCriticalServiceAfter);
        Assert.Equal(["/usr/local/bin/check_redis.py"], current.Check.Args!);
        Assert.Equal("5s", current.Check.Timeout);
        Assert.Equal(10, current.Weights!.Passing);
        Assert.Equal("http://localhost:5000/health", legacy.Check!.Http);
        Assert.Equal("15s", legacy.Check.Ttl);
    }

    [Fact]
    public void CheckRequests_Fixtures_ParseRegisterAndUpdate()
    {
        var check = Parse(ConsulJsonContext.Default.AgentCheckRegistration, "agent-check-register.request.json");
        var update = Parse(ConsulJsonContext.Default.CheckUpdate, "agent-check-update.request.json");

        Assert.Equal(("mem", "Memory utilization"), (check.Id, check.Name));
        Assert.Equal("https://example.com", check.Http);
        Assert.Equal("example.com:22", check.Tcp);
        Assert.Equal(["application/json"], check.Header!["Content-Type"]);
        Assert.True(check.TlsSkipVerify);
        Assert.Equal(HealthStatus.Passing, update.Status);
        Assert.StartsWith("curl reported a failure", update.Output, StringComparison.Ordinal);
    }

    private static JsonNode Fixture(string file) => JsonNode.Parse(File.ReadAllText(TestFixtures.Path("consul-api", file)))!;

    private static T Parse<T>(JsonTypeInfo<T> type, string file) =>
        JsonSerializer.Deserialize(File.ReadAllText(TestFixtures.Path("consul-api", file)), type)!;

    // Every value of the fixture is found again, at the same place, in what the client's types wrote back.
    private static void AssertHolds(JsonNode? expected, JsonNode? actual, string path)
    {
        switch (expected)
        {
            case null:
                Assert.True(actual is null, $"{path}: expected null, found {actual?.ToJsonString()}");
                return;
            case JsonObject expectedObject:
                var actualObject = Assert.IsType<JsonObject>(actual, exactMatch: false);
                foreach (var (key, value) in expectedObject)
                {
                    var match = actualObject.FirstOrDefault(p => string.Equals(p.Key, key, StringComparison.OrdinalIgnoreCase));
                    Assert.True(match.Key is not null || value is null, $"{path}.{key}: missing after parsing");
                    AssertHolds(value, match.Value, $"{path}.{key}");
                }

                return;
            case JsonArray expectedArray:
                var actualArray = Assert.IsType<JsonArray>(actual, exactMatch: false);
                Assert.True(expectedArray.Count == actualArray.Count, $"{path}: {expectedArray.Count} elements, found {actualArray.Count}");
                for (var i = 0; i < expectedArray.Count; i++)
                {
                    AssertHolds(expectedArray[i], actualArray[i], $"{path}[{i}]");
                }

                return;
            default:
                Assert.True(actual is JsonValue, $"{path}: expected {expected.ToJsonString()}, found {actual?.ToJsonString() ?? "nothing"}");
                Assert.True(SameValue(expected.AsValue(), actual!.AsValue()), $"{path}: expected {expected.ToJsonString()}, found {actual.ToJsonString()}");
                return;
        }
    }

    private static bool SameValue(JsonValue expected, JsonValue actual)
    {
        var e = expected.GetValue<JsonElement>();
        var a = actual.GetValue<JsonElement>();
        if (e.ValueKind == JsonValueKind.Number && a.ValueKind == JsonValueKind.Number)
        {
            return e.GetDecimal() == a.GetDecimal();
        }

        if (e.ValueKind == JsonValueKind.String && a.ValueKind == JsonValueKind.String
            && DateTimeOffset.TryParse(e.GetString(), CultureInfo.InvariantCulture, DateTimeStyles.None, out var ed)
            && DateTimeOffset.TryParse(a.GetString(), CultureInfo.InvariantCulture, DateTimeStyles.None, out var ad)
            && e.GetString()!.Contains('T', StringComparison.Ordinal))
        {
            return ed == ad;
        }

        if (e.ValueKind == JsonValueKind.String && a.ValueKind == JsonValueKind.String)
        {
            return e.GetString() == a.GetString();
        }

        return e.ValueKind == a.ValueKind && e.GetRawText() == a.GetRawText();
    }
}
