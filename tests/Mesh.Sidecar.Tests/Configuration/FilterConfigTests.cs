using System.Text.Json;
using System.Text.Json.Nodes;
using Mesh.Sidecar.Configuration;
using static Mesh.Sidecar.Tests.Configuration.TestConfigs;

namespace Mesh.Sidecar.Tests.Configuration;

/// <summary>plugins.directory, routes[].filters[] and listeners[].connectionFilters[]: shape, binding and the config kept as JSON.</summary>
public class FilterConfigTests
{
    private static void AddFilters(JsonObject config, string filtersJson) =>
        config["routes"]![0]!["filters"] = JsonNode.Parse(filtersJson);

    private static void Errors(ConfigLoadResult result, params string[] expected)
    {
        Assert.False(result.IsValid);
        foreach (var error in expected)
        {
            Assert.Contains(result.Errors, e => e.ToString().StartsWith(error, StringComparison.Ordinal));
        }
    }

    [Fact]
    public void Parse_FilterEntries_BindInOrderWithDefaults()
    {
        var result = With(c => AddFilters(c, """[ { "name": "api-key" }, { "name": "rate-limit", "onError": "continue", "timeoutMs": 250 } ]"""));

        Assert.True(result.IsValid, string.Join("\n", result.Errors));
        var filters = result.Options!.Routes[0].Filters;
        Assert.Equal(["api-key", "rate-limit"], filters.Select(f => f.Name));
        // An absent timeoutMs stays absent: the chain gives C# filters 1000 ms and JavaScript filters jsFilters.timeoutMs.
        Assert.Equal((FilterErrorPolicies.Reject, (int?)null), (filters[0].OnError, filters[0].TimeoutMs));
        Assert.Equal((FilterErrorPolicies.Continue, (int?)250), (filters[1].OnError, filters[1].TimeoutMs));
        Assert.Equal("plugins", result.Options.Plugins.Directory);
    }

    [Fact]
    public void Parse_FilterConfig_KeptAsTheFilesJsonWithTypes()
    {
        var result = With(c => AddFilters(c, """[ { "name": "api-key", "config": { "keys": ["k1", "k2"], "limit": 10, "strict": true, "nested": { "a": null } } } ]"""));

        Assert.True(result.IsValid, string.Join("\n", result.Errors));
        var config = result.Options!.Routes[0].Filters[0].Config;
        Assert.Equal(JsonValueKind.Array, config.GetProperty("keys").ValueKind);
        Assert.Equal(10, config.GetProperty("limit").GetInt32());
        Assert.Equal(JsonValueKind.True, config.GetProperty("strict").ValueKind);
        Assert.Equal(JsonValueKind.Null, config.GetProperty("nested").GetProperty("a").ValueKind);
    }

    [Fact]
    public void Parse_FilterConfigWithAnyKeys_NotReportedAsUnknownKeys()
    {
        var result = With(c => AddFilters(c, """[ { "name": "x", "config": { "whatever": { "deep": [1, { "k": "v" }] } } } ]"""));

        Assert.True(result.IsValid, string.Join("\n", result.Errors));
    }

    [Fact]
    public void Parse_FilterConfigNotAnObject_ErrorWithPath()
    {
        Errors(With(c => AddFilters(c, """[ { "name": "x", "config": [1, 2] } ]""")), "routes[0].filters[0].config: expected an object");
    }

    [Fact]
    public void Parse_UnknownKeyInAFilterEntry_Reported()
    {
        Errors(With(c => AddFilters(c, """[ { "name": "x", "onErorr": "continue" } ]""")), "routes[0].filters[0].onErorr: unknown key");
    }

    [Theory]
    [InlineData("""[ { "config": {} } ]""", "routes[0].filters[0].name: is required")]
    [InlineData("""[ { "name": "has space" } ]""", "routes[0].filters[0].name: 'has space' is not a valid name")]
    [InlineData("""[ { "name": "x", "onError": "ignore" } ]""", "routes[0].filters[0].onError: 'ignore' is not one of: reject, continue")]
    [InlineData("""[ { "name": "x", "timeoutMs": 0 } ]""", "routes[0].filters[0].timeoutMs: 0 is out of range")]
    [InlineData("""[ { "name": "x", "timeoutMs": "soon" } ]""", "routes[0].filters[0].timeoutMs: 'soon' is not a whole number")]
    public void Parse_BadFilterEntry_ErrorWithPath(string filters, string expected)
    {
        Errors(With(c => AddFilters(c, filters)), expected);
    }

    [Fact]
    public void Parse_ConnectionFilters_BoundWithConfig()
    {
        var result = With(c => c["listeners"]![0]!["connectionFilters"] = JsonNode.Parse("""[ { "name": "source-allowlist", "config": { "allow": ["127.0.0.0/8"] } } ]"""));

        Assert.True(result.IsValid, string.Join("\n", result.Errors));
        var filter = Assert.Single(result.Options!.Listeners[0].ConnectionFilters);
        Assert.Equal("127.0.0.0/8", filter.Config.GetProperty("allow")[0].GetString());
    }

    [Fact]
    public void Parse_ConnectionFiltersOnUdpListener_Error()
    {
        var result = With(c =>
        {
            c["listeners"]!.AsArray().Add(JsonNode.Parse("""{ "name": "dns", "port": 15053, "protocol": "udp", "service": "api", "connectionFilters": [ { "name": "a" } ] }"""));
        });

        Errors(result, "listeners[1].connectionFilters: udp listeners have no connections to filter");
    }

    [Fact]
    public void Parse_PluginsDirectory_Bound()
    {
        var result = With(c => c["plugins"] = JsonNode.Parse("""{ "directory": "/opt/mesh/plugins" }"""));

        Assert.Equal("/opt/mesh/plugins", result.Options!.Plugins.Directory);
    }

    [Fact]
    public void Parse_EmptyPluginsDirectory_Error()
    {
        Errors(With(c => c["plugins"] = JsonNode.Parse("""{ "directory": "" }""")), "plugins.directory: is required");
    }

    [Fact]
    public void Parse_OverrideOfFilterFields_Applies()
    {
        var config = Valid();
        AddFilters(config, """[ { "name": "x", "config": { "a": 1 } } ]""");

        var result = Parse(config, commandLine: ["--routes:0:filters:0:timeoutMs=50"], environment: new() { ["MESH__ROUTES__0__FILTERS__0__ONERROR"] = "continue" });

        Assert.True(result.IsValid, string.Join("\n", result.Errors));
        var filter = result.Options!.Routes[0].Filters[0];
        Assert.Equal((50, "continue", 1), (filter.TimeoutMs, filter.OnError, filter.Config.GetProperty("a").GetInt32()));
    }

    [Fact]
    public void Parse_OverrideIntoFilterConfig_ErrorInsteadOfIgnored()
    {
        var config = Valid();
        AddFilters(config, """[ { "name": "x", "config": { "keys": ["a"] } } ]""");

        var result = Parse(config, environment: new() { ["MESH__ROUTES__0__FILTERS__0__CONFIG__KEYS__0"] = "b" });

        Errors(result, "routes[0].filters[0].config: 'ROUTES:0:FILTERS:0:CONFIG:KEYS:0' is an override into a filter's config");
    }
}
