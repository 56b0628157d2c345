using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Mesh.Sidecar.Configuration;
using static Mesh.Sidecar.Tests.Configuration.TestConfigs;

namespace Mesh.Sidecar.Tests.Configuration;

public class ConfigSchemaTests
{
    [Fact]
    public void Check_UnknownKeyAtRoot_ListsRootKeys()
    {
        var result = With(c => c["bogus"] = 1);

        var error = SingleError(result, "bogus", "unknown key; known keys here: ");
        Assert.StartsWith("unknown key; known keys here: ", error.Message, StringComparison.Ordinal);
        foreach (var key in new[] { "service", "admin", "listeners", "routes", "services", "logging", "performance" })
        {
            Assert.Contains(key, KnownKeys(error.Message));
        }
    }

    [Fact]
    public void Check_UnknownKeyInListElement_ReportsIndexedPathAndListenerKeys()
    {
        var result = With(c => Listener(0, c)["bogus"] = "x");

        var error = SingleError(result, "listeners[0].bogus", "unknown key; known keys here: ");
        var known = KnownKeys(error.Message);
        foreach (var key in new[] { "name", "address", "port", "direction", "protocol" })
        {
            Assert.Contains(key, known);
        }

        Assert.DoesNotContain("routes", known);
    }

    [Fact]
    public void Check_UnknownKeyDeepInRoute_ReportsFullPath()
    {
        var result = With(c => Match(c)["path"]!["suffix"] = "/x");

        var error = SingleError(result, "routes[0].match.path.suffix", "unknown key; known keys here: ");
        Assert.Equal(["prefix", "exact", "pattern"], KnownKeys(error.Message));
    }

    [Fact]
    public void Check_UnknownKeyInService_ReportsServicePath()
    {
        var result = With(c => Api(c)["weight"] = 3);

        var error = SingleError(result, "services.api.weight", "unknown key; known keys here: ");
        Assert.Contains("endpoints", KnownKeys(error.Message));
    }

    [Fact]
    public void Check_KeyInOtherCase_ReportsCamelCasePath()
    {
        var result = With(c =>
        {
            c.Remove("admin");
            c["Admin"] = new JsonObject { ["Port"] = "abc" };
        });

        SingleError(result, "admin.port", "'abc' is not a whole number");
    }

    [Fact]
    public void Check_TextWhereWholeNumberBelongs_ReportsNotAWholeNumber()
    {
        var result = With(c => c["admin"]!["port"] = "abc");

        var error = SingleError(result, "admin.port", "'abc' is not a whole number");
        Assert.Equal("admin.port: 'abc' is not a whole number", error.ToString());
    }

    [Fact]
    public void Check_FractionWhereWholeNumberBelongs_ReportsNotAWholeNumber()
    {
        var result = With(c => Endpoint(c)["weight"] = 1.5);

        SingleError(result, "services.api.endpoints[0].weight", "'1.5' is not a whole number");
    }

    [Fact]
    public void Check_TextWhereBooleanBelongs_ReportsNotTrueOrFalse()
    {
        var result = With(c => c["logging"] = new JsonObject { ["accessLog"] = "yes" });

        var error = SingleError(result, "logging.accessLog", "'yes' is not true or false");
        Assert.Equal("logging.accessLog: 'yes' is not true or false", error.ToString());
    }

    [Fact]
    public void Check_NumberWhereNullableBooleanBelongs_ReportsNotTrueOrFalse()
    {
        var result = With(c => Match(c)["headers"] = new JsonArray(new JsonObject { ["name"] = "x-a", ["present"] = 1 }));

        SingleError(result, "routes[0].match.headers[0].present", "'1' is not true or false");
    }

    [Fact]
    public void Check_ObjectWhereWholeNumberBelongs_ReportsFoundObject()
    {
        var result = With(c => c["admin"]!["port"] = new JsonObject { ["value"] = 1 });

        var error = SingleError(result, "admin.port", "expected a whole number, found an object");
        Assert.Equal("admin.port: expected a whole number, found an object", error.ToString());
    }

    [Fact]
    public void Check_ListWhereStringBelongs_ReportsFoundList()
    {
        var result = With(c => c["service"]!["name"] = new JsonArray("a", "b"));

        SingleError(result, "service.name", "expected a string, found a list");
    }

    [Fact]
    public void Check_ObjectWhereListBelongs_ReportsListExpected()
    {
        var result = With(c => c["listeners"] = new JsonObject { ["out"] = new JsonObject { ["name"] = "out", ["port"] = 15001 } });

        var error = SingleError(result, "listeners", "expected a list, found an object");
        Assert.Equal("listeners: expected a list, found an object", error.ToString());
    }

    [Fact]
    public void Check_TextWhereListBelongs_ReportsListExpected()
    {
        var result = With(c => Match(c)["methods"] = "GET");

        var error = SingleError(result, "routes[0].match.methods", "expected a list, found 'GET'");
        Assert.Equal("routes[0].match.methods: expected a list, found 'GET'", error.ToString());
    }

    [Fact]
    public void Check_TextWhereObjectBelongs_ReportsObjectExpected()
    {
        var result = With(c => c["admin"] = "localhost");

        var error = SingleError(result, "admin", "expected an object, found 'localhost'");
        Assert.Equal("admin: expected an object, found 'localhost'", error.ToString());
    }

    [Fact]
    public void Check_EmptyObjectsAndLists_MeanDefaults()
    {
        var result = With(c =>
        {
            c["logging"] = new JsonObject();
            c["performance"] = new JsonObject();
            Match(c)["methods"] = new JsonArray();
            Route(c)["transforms"] = new JsonObject();
        });

        Assert.True(result.IsValid, string.Join("\n", result.Errors));
        Assert.Equal("Information", result.Options!.Logging.Level);
        Assert.Empty(result.Options.Routes[0].Match.Methods);
    }

    // The list positions that crashed validate with a NullReferenceException or ArgumentNullException.
    [Theory]
    [InlineData("hosts-null", "routes[0].match.hosts[0]", "expected a string, found null")]
    [InlineData("hosts-object", "routes[0].match.hosts[0]", "expected a string, found an object")]
    [InlineData("route-listeners-object", "routes[0].listeners[0]", "expected a string, found an object")]
    [InlineData("methods-null", "routes[0].match.methods[0]", "expected a string, found null")]
    [InlineData("methods-list", "routes[0].match.methods[0]", "expected a string, found a list")]
    [InlineData("remove-null", "routes[0].transforms.requestHeaders.remove[0]", "expected a string, found null")]
    [InlineData("set-null", "routes[0].transforms.responseHeaders.set.x-a", "expected a string, found null")]
    [InlineData("server-names-object", "listeners[0].tls.routes[0].serverNames[0]", "expected a string, found an object")]
    [InlineData("tags-null", "services.api.endpoints[0].tags[0]", "expected a string, found null")]
    [InlineData("metadata-null", "services.api.endpoints[0].metadata.zone", "expected a string, found null")]
    [InlineData("route-null", "routes[0]", "expected an object, found null")]
    [InlineData("endpoint-text", "services.api.endpoints[0]", "expected an object, found '127.0.0.1:9001'")]
    [InlineData("service-null", "services.api", "expected an object, found null")]
    [InlineData("match-null", "routes[0].match", "expected an object, found null")]
    [InlineData("port-null", "admin.port", "expected a whole number, found null")]
    [InlineData("headers-list-in-list", "routes[0].match.headers[0]", "expected an object, found a list")]
    public void CheckJson_NullOrWrongElementType_ReportsJsonPathInsteadOfThrowing(string change, string path, string message)
    {
        var result = With(c =>
        {
            switch (change)
            {
                case "hosts-null": Match(c)["hosts"] = new JsonArray((JsonNode?)null); break;
                case "hosts-object": Match(c)["hosts"] = new JsonArray(new JsonObject()); break;
                case "route-listeners-object": Route(c)["listeners"] = new JsonArray(new JsonObject()); break;
                case "methods-null": Match(c)["methods"] = new JsonArray((JsonNode?)null); break;
                case "methods-list": Match(c)["methods"] = new JsonArray(new JsonArray("GET")); break;
                case "remove-null": Route(c)["transforms"] = new JsonObject { ["requestHeaders"] = new JsonObject { ["remove"] = new JsonArray((JsonNode?)null) } }; break;
                case "set-null": Route(c)["transforms"] = new JsonObject { ["responseHeaders"] = new JsonObject { ["set"] = new JsonObject { ["x-a"] = null } } }; break;
                case "server-names-object":
                    Listener(0, c)["protocol"] = "tls-passthrough";
                    Listener(0, c)["tls"] = new JsonObject { ["routes"] = new JsonArray(new JsonObject { ["name"] = "t", ["serverNames"] = new JsonArray(new JsonObject()), ["service"] = "api" }) };
                    break;
                case "tags-null": Endpoint(c)["tags"] = new JsonArray((JsonNode?)null); break;
                case "metadata-null": Endpoint(c)["metadata"] = new JsonObject { ["zone"] = null }; break;
                case "route-null": c["routes"] = new JsonArray((JsonNode?)null); break;
                case "endpoint-text": Api(c)["endpoints"] = new JsonArray("127.0.0.1:9001"); break;
                case "service-null": c["services"]!["api"] = null; break;
                case "match-null": Route(c)["match"] = null; break;
                case "port-null": c["admin"]!["port"] = null; break;
                case "headers-list-in-list": Match(c)["headers"] = new JsonArray(new JsonArray()); break;
            }
        });

        var error = SingleError(result, path, message);
        Assert.Equal($"{path}: {message}", error.ToString());
    }

    [Fact]
    public void CheckJson_NullWhereTheRecordAllowsIt_MeansNotSet()
    {
        var result = With(c =>
        {
            Match(c)["path"] = null;
            c["services"]!["api"]!["loadBalancing"] = new JsonObject { ["hash"] = null };
        });

        Assert.True(result.IsValid, string.Join("\n", result.Errors));
        Assert.Null(result.Options!.Routes[0].Match.Path);
    }

    [Fact]
    public void CheckJson_DuplicateKeyInAnyCase_IsReportedNotThrown()
    {
        var json = ValidJson.Replace("\"port\": 19000", "\"port\": 19000, \"Port\": 19001", StringComparison.Ordinal);

        var result = Parse(json);

        SingleError(result, "admin.Port", "duplicate key (keys are case-insensitive)");
    }

    [Fact]
    public void CheckJson_ColonInAServiceName_IsReportedBeforeItSplitsIntoLevels()
    {
        var result = With(c => c["services"]!["a:b"] = new JsonObject { ["endpoints"] = new JsonArray(new JsonObject { ["address"] = "127.0.0.1", ["port"] = 1 }) });

        SingleError(result, "services.a:b", "':' cannot be part of a key");
    }

    [Fact]
    public void Check_FileAndOverrideProblems_AreReportedTogether()
    {
        var config = Valid();
        Match(config)["hosts"] = new JsonArray((JsonNode?)null);
        config["bogus"] = 1;

        var result = Parse(config, ["--admin:port=abc"]);

        Assert.Equal(3, result.Errors.Count);
        Assert.Contains(result.Errors, e => e.ToString() == "routes[0].match.hosts[0]: expected a string, found null");
        Assert.Contains(result.Errors, e => e.Path == "bogus" && e.Message.StartsWith("unknown key", StringComparison.Ordinal));
        Assert.Contains(result.Errors, e => e.ToString() == "admin.port: 'abc' is not a whole number");
    }

    [Fact]
    public void Check_EmptyListElementFromTheConfigurationSystem_IsReportedNotBound()
    {
        // What another configuration source could hand over: hosts:0 with no value at all.
        var root = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["routes:0:name"] = "r",
            ["routes:0:match:hosts:0"] = null,
        }).Build();

        var result = ConfigLoader.FromConfiguration(root);

        Assert.Contains(result.Errors, e => e.ToString() == "routes[0].match.hosts[0]: expected a string, found nothing");
    }

    [Fact]
    public void Parse_Utf8ByteOrderMark_IsSkipped()
    {
        var result = ConfigLoader.Parse([0xEF, 0xBB, 0xBF, .. Encoding.UTF8.GetBytes(ValidJson)], "bom.json", [], new Dictionary<string, string>());

        Assert.True(result.IsValid, string.Join("\n", result.Errors));
    }

    [Fact]
    public void CheckJson_OpaqueJsonProperty_IsNotWalked()
    {
        // A plugin's settings: any JSON under "config", handed over whole; the rest is still checked.
        using var document = JsonDocument.Parse("""
            {
              "name": "f",
              "config": { "keys": [ null, 1, { "deep": [ {} ] } ], "Keys": "duplicates are the plugin's business" },
              "extra": { "anything": [ true ] },
              "filters": [ { "name": "g", "config": [ "a list is JSON too" ], "extra": null } ]
            }
            """);
        var errors = new List<ConfigError>();

        ConfigSchema.CheckJson(document.RootElement, typeof(OpaqueHolder), errors);
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["name"] = "f",
            ["config:keys:1"] = "1",
            ["config:whatever:deep"] = "x",
            ["filters:0:config:0"] = "a",
            ["filters:0:bogus"] = "y",
        }).Build();
        ConfigSchema.Check(configuration, typeof(OpaqueHolder), errors);

        var error = Assert.Single(errors);
        Assert.Equal("filters[0].bogus", error.Path);
    }

    private sealed record OpaqueHolder
    {
        public string Name { get; init; } = "";

        public JsonElement Config { get; init; }

        public JsonObject? Extra { get; init; }

        public IReadOnlyList<OpaqueHolder> Filters { get; init; } = [];
    }

    private static string[] KnownKeys(string message) =>
        message["unknown key; known keys here: ".Length..].Split(", ");
}
