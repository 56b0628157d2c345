using System.Text;
using System.Text.Json.Nodes;
using Mesh.Sidecar.Configuration;
using static Mesh.Sidecar.Tests.Configuration.TestConfigs;

namespace Mesh.Sidecar.Tests.Configuration;

public class ConfigLoaderTests
{
    [Fact]
    public void Parse_SmallValidConfig_IsValidAndBindsValues()
    {
        var result = Parse(ValidJson);

        Assert.True(result.IsValid, string.Join("\n", result.Errors));
        Assert.Empty(result.Errors);
        var options = result.Options!;
        Assert.Equal("web", options.Service.Name);
        Assert.Equal(19000, options.Admin.Port);
        var listener = Assert.Single(options.Listeners);
        Assert.Equal("out", listener.Name);
        Assert.Equal(15001, listener.Port);
        Assert.Equal(Directions.Outbound, listener.Direction);
        var route = Assert.Single(options.Routes);
        Assert.Equal("r", route.Name);
        Assert.Equal("/", route.Match.Path!.Prefix);
        Assert.Equal("api", route.Service);
        var endpoint = Assert.Single(options.Services["api"].Endpoints);
        Assert.Equal("127.0.0.1", endpoint.Address);
        Assert.Equal(9001, endpoint.Port);
        Assert.Equal(1, endpoint.Weight);
        Assert.Equal(LoadBalancingPolicies.RoundRobin, options.Services["api"].LoadBalancing.Policy);
    }

    [Fact]
    public void Parse_CommentsAndTrailingCommas_AreAccepted()
    {
        var json = """
            {
              // the local app
              "service": { "name": "web", },
              /* one listener */
              "listeners": [ { "name": "out", "port": 15001 }, ],
              "routes": [ { "name": "r", "service": "api" } ],
              "services": { "api": { "endpoints": [ { "address": "127.0.0.1", "port": 9001 } ] } },
            }
            """;

        var result = Parse(json);

        Assert.True(result.IsValid, string.Join("\n", result.Errors));
    }

    [Fact]
    public void Parse_KeysInAnotherCase_BindCaseInsensitively()
    {
        var json = ValidJson.Replace("\"admin\": { \"address\": \"127.0.0.1\", \"port\": 19000 }", "\"ADMIN\": { \"Port\": 19001 }", StringComparison.Ordinal);
        Assert.Contains("ADMIN", json, StringComparison.Ordinal);

        var result = Parse(json);

        Assert.True(result.IsValid, string.Join("\n", result.Errors));
        Assert.Equal(19001, result.Options!.Admin.Port);
    }

    [Fact]
    public void Parse_JsonSyntaxError_ReportsFileLineAndColumn()
    {
        // The '}' after "port": is the 22nd character of line 2.
        var json = "{\n  \"admin\": { \"port\": }\n}";

        var result = Parse(json);

        var error = SingleError(result, "test.json", "invalid JSON at line 2, column 22: ");
        Assert.StartsWith("invalid JSON at line 2, column 22: ", error.Message, StringComparison.Ordinal);
        Assert.DoesNotContain(" Path:", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Parse_InvalidUtf8InAKey_ReportsLineAndColumnInsteadOfThrowing()
    {
        // A byte that is not UTF-8 inside a key: the JSON reader would throw only when loading reads the name.
        byte[] json = [.. "{\n  \"adm"u8, 0xFF, .. "in\": {}\n}"u8];

        var result = ConfigLoader.Parse(json, "test.json", [], new Dictionary<string, string>());

        var error = SingleError(result, "test.json", "the file is not UTF-8 text");
        Assert.Equal("test.json: the file is not UTF-8 text: invalid byte 0xFF at line 2, column 7", error.ToString());
        Assert.DoesNotContain("LineNumber", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Parse_UnterminatedObject_ReportsInvalidJson()
    {
        var result = Parse("{ \"admin\": { \"port\": 1 }");

        SingleError(result, "test.json", "invalid JSON at line 1, column ");
    }

    [Theory]
    [InlineData("[]")]
    [InlineData("[ { \"listeners\": [] } ]")]
    [InlineData("42")]
    [InlineData("\"sidecar\"")]
    public void Parse_RootNotAnObject_ReportsConfigMustBeObject(string json)
    {
        var result = Parse(json);

        var error = SingleError(result, "test.json", "the config must be a JSON object");
        Assert.Equal("test.json: the config must be a JSON object", error.ToString());
    }

    [Fact]
    public void Load_MissingFile_ReportsCannotRead()
    {
        var path = Path.Combine(Path.GetTempPath(), $"mesh-missing-{Guid.NewGuid():N}", "sidecar.json");

        var result = ConfigLoader.Load(path, [], new Dictionary<string, string>());

        var error = SingleError(result, path, "cannot read the config file: ");
        Assert.StartsWith("cannot read the config file: ", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Load_ValidFile_IsValid()
    {
        var path = Path.Combine(Path.GetTempPath(), $"mesh-config-{Guid.NewGuid():N}.json");
        File.WriteAllText(path, ValidJson);
        try
        {
            var result = ConfigLoader.Load(path, [], new Dictionary<string, string>());

            Assert.True(result.IsValid, string.Join("\n", result.Errors));
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void Parse_SchemaAndSemanticProblems_ReportsOnlyTheSchemaPass()
    {
        var config = Valid();
        config["bogus"] = 1;
        Listener(0, config)["port"] = 70000;

        var result = Parse(config);

        SingleError(result, "bogus", "unknown key");
    }

    [Fact]
    public void Parse_ThreeSemanticProblems_ReportsAllThree()
    {
        var config = Valid();
        Listener(0, config)["port"] = 70000;
        Listener(0, config)["direction"] = "sideways";
        config["logging"] = new JsonObject { ["level"] = "Loud" };

        var result = Parse(config);

        Assert.False(result.IsValid);
        Assert.Null(result.Options);
        Assert.Equal(3, result.Errors.Count);
        Assert.Contains(result.Errors, e => e.ToString() == "listeners[0].port: 70000 is not a port");
        Assert.Contains(result.Errors, e => e.Path == "listeners[0].direction" && e.Message.StartsWith("'sideways' is not one of: ", StringComparison.Ordinal));
        Assert.Contains(result.Errors, e => e.Path == "logging.level" && e.Message.StartsWith("'Loud' is not a log level", StringComparison.Ordinal));
    }

    [Fact]
    public void Parse_ThreeShapeProblems_ReportsAllThree()
    {
        var config = Valid();
        config["bogus"] = 1;
        config["admin"]!["port"] = "abc";
        config["logging"] = new JsonObject { ["accessLog"] = "yes" };

        var result = Parse(config);

        Assert.Equal(3, result.Errors.Count);
        Assert.Contains(result.Errors, e => e.Path == "bogus");
        Assert.Contains(result.Errors, e => e.ToString() == "admin.port: 'abc' is not a whole number");
        Assert.Contains(result.Errors, e => e.ToString() == "logging.accessLog: 'yes' is not true or false");
    }

    [Fact]
    public void Parse_NoOverrides_UsesFileValue()
    {
        var result = Parse(ValidJson, [], new Dictionary<string, string>());

        Assert.Equal(19000, result.Options!.Admin.Port);
    }

    [Fact]
    public void Parse_EnvironmentOverride_ChangesBoundValue()
    {
        var environment = new Dictionary<string, string> { ["MESH__ADMIN__PORT"] = "19005" };

        var result = Parse(ValidJson, [], environment);

        Assert.True(result.IsValid, string.Join("\n", result.Errors));
        Assert.Equal(19005, result.Options!.Admin.Port);
    }

    [Fact]
    public void Parse_CommandLineOverride_ChangesBoundValue()
    {
        var result = Parse(ValidJson, ["--admin:port=19006"]);

        Assert.True(result.IsValid, string.Join("\n", result.Errors));
        Assert.Equal(19006, result.Options!.Admin.Port);
    }

    [Fact]
    public void Parse_CommandLineAndEnvironmentOverrides_CommandLineWins()
    {
        var environment = new Dictionary<string, string> { ["MESH__ADMIN__PORT"] = "19005" };

        var result = Parse(ValidJson, ["--admin:port=19006"], environment);

        Assert.True(result.IsValid, string.Join("\n", result.Errors));
        Assert.Equal(19006, result.Options!.Admin.Port);
    }

    [Fact]
    public void Parse_EnvironmentWithoutMeshPrefix_IsIgnored()
    {
        var environment = new Dictionary<string, string> { ["ADMIN__PORT"] = "19005", ["OTHER__ADMIN__PORT"] = "19007" };

        var result = Parse(ValidJson, [], environment);

        Assert.True(result.IsValid, string.Join("\n", result.Errors));
        Assert.Equal(19000, result.Options!.Admin.Port);
    }

    [Fact]
    public void Parse_EnvironmentOverrideWithUnknownKey_IsAnError()
    {
        var environment = new Dictionary<string, string> { ["MESH__ADMIN__BOGUS"] = "1" };

        var result = Parse(ValidJson, [], environment);

        // The unknown part keeps the spelling of the variable; the known part takes the file's.
        var error = SingleError(result, "admin.BOGUS", "unknown key; known keys here: ");
        Assert.Contains("address", error.Message, StringComparison.Ordinal);
        Assert.Contains("port", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Parse_CommandLineOverrideWithUnknownKey_IsAnError()
    {
        var result = Parse(ValidJson, ["--admin:bogus=1"]);

        SingleError(result, "admin.bogus", "unknown key; known keys here: ");
    }

    [Fact]
    public void Parse_EnvironmentOverrideWithBadValue_ReportsWrongType()
    {
        var environment = new Dictionary<string, string> { ["MESH__ADMIN__PORT"] = "abc" };

        var result = Parse(ValidJson, [], environment);

        var error = SingleError(result, "admin.port", "'abc' is not a whole number");
        Assert.Equal("admin.port: 'abc' is not a whole number", error.ToString());
    }

    [Fact]
    public void Parse_EnvironmentOverrideOfServiceInOtherCase_LandsOnFileSpelling()
    {
        var environment = new Dictionary<string, string> { ["MESH__SERVICES__API__ENDPOINTS__0__PORT"] = "9005" };

        var result = Parse(ValidJson, [], environment);

        Assert.True(result.IsValid, string.Join("\n", result.Errors));
        var service = Assert.Single(result.Options!.Services);
        Assert.Equal("api", service.Key);
        Assert.Equal(9005, Assert.Single(service.Value.Endpoints).Port);
    }

    [Fact]
    public void Parse_EnvironmentOverrideOfListInAnotherIndex_AddsElement()
    {
        var environment = new Dictionary<string, string>
        {
            ["MESH__LISTENERS__1__NAME"] = "out2",
            ["MESH__LISTENERS__1__PORT"] = "15002",
        };

        var result = Parse(ValidJson, [], environment);

        Assert.True(result.IsValid, string.Join("\n", result.Errors));
        Assert.Equal(["out", "out2"], result.Options!.Listeners.Select(l => l.Name));
        Assert.Equal(15002, result.Options.Listeners[1].Port);
    }

    [Fact]
    public void Load_EveryDeployFile_IsValid()
    {
        var deploy = Path.Combine(RepositoryRoot(), "deploy");
        var files = Directory.Exists(deploy) ? Directory.GetFiles(deploy, "*.json") : [];

        Assert.NotEmpty(files);
        var problems = new StringBuilder();
        foreach (var file in files.Order(StringComparer.Ordinal))
        {
            var result = ConfigLoader.Load(file, [], new Dictionary<string, string>());
            if (!result.IsValid)
            {
                problems.Append(Path.GetFileName(file)).Append(": ").AppendJoin("; ", result.Errors).Append('\n');
            }
        }

        Assert.True(problems.Length == 0, problems.ToString());
    }

    private static string RepositoryRoot()
    {
        for (var directory = new DirectoryInfo(AppContext.BaseDirectory); directory is not null; directory = directory.Parent)
        {
            if (File.Exists(Path.Combine(directory.FullName, "Mesh.sln")))
            {
                return directory.FullName;
            }
        }

        throw new InvalidOperationException($"no Mesh.sln above {AppContext.BaseDirectory}");
    }
}
