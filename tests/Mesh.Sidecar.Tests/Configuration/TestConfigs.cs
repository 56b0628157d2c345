// Shared helpers for config tests: a small valid config as a JSON tree, and parsing that never reads the process environment.
using System.Text;
using System.Text.Json.Nodes;
using Mesh.Sidecar.Configuration;

namespace Mesh.Sidecar.Tests.Configuration;

internal static class TestConfigs
{
    /// <summary>One outbound listener, one route, one static service: the smallest useful valid config.</summary>
    public const string ValidJson = """
        {
          "service": { "name": "web" },
          "admin": { "address": "127.0.0.1", "port": 19000 },
          "listeners": [
            { "name": "out", "address": "127.0.0.1", "port": 15001, "direction": "outbound", "protocol": "http" }
          ],
          "routes": [
            { "name": "r", "match": { "path": { "prefix": "/" } }, "service": "api" }
          ],
          "services": {
            "api": { "endpoints": [ { "address": "127.0.0.1", "port": 9001 } ] }
          }
        }
        """;

    public static JsonObject Valid() => JsonNode.Parse(ValidJson)!.AsObject();

    /// <summary>The valid config changed by <paramref name="change"/>.</summary>
    public static ConfigLoadResult With(Action<JsonObject> change)
    {
        var config = Valid();
        change(config);
        return Parse(config);
    }

    public static ConfigLoadResult Parse(JsonNode config, IReadOnlyList<string>? commandLine = null, Dictionary<string, string>? environment = null) =>
        Parse(config.ToJsonString(), commandLine, environment);

    public static ConfigLoadResult Parse(string json, IReadOnlyList<string>? commandLine = null, Dictionary<string, string>? environment = null) =>
        ConfigLoader.Parse(Encoding.UTF8.GetBytes(json), "test.json", commandLine ?? [], environment ?? new Dictionary<string, string>());

    /// <summary>Asserts the result is invalid with exactly one error at <paramref name="path"/> whose message contains <paramref name="message"/>.</summary>
    public static ConfigError SingleError(ConfigLoadResult result, string path, string message)
    {
        Assert.False(result.IsValid);
        Assert.Null(result.Options);
        var error = Assert.Single(result.Errors);
        Assert.Equal(path, error.Path);
        Assert.Contains(message, error.Message, StringComparison.Ordinal);
        return error;
    }

    public static JsonObject Listener(int index, JsonObject config) => config["listeners"]![index]!.AsObject();

    public static JsonObject Route(JsonObject config, int index = 0) => config["routes"]![index]!.AsObject();

    public static JsonObject Match(JsonObject config) => Route(config)["match"]!.AsObject();

    public static JsonObject Api(JsonObject config) => config["services"]!["api"]!.AsObject();

    public static JsonObject Endpoint(JsonObject config, int index = 0) => Api(config)["endpoints"]![index]!.AsObject();

    public static JsonObject SecondListener(string name, int port) =>
        new() { ["name"] = name, ["address"] = "127.0.0.1", ["port"] = port, ["direction"] = "outbound", ["protocol"] = "http" };
}
