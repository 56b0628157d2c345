using System.Text.Json.Nodes;
using Mesh.Sidecar.Configuration;
using static Mesh.Sidecar.Tests.Configuration.TestConfigs;

namespace Mesh.Sidecar.Tests.Configuration;

/// <summary>jsFilters: directory and per-call limits, their defaults and their ranges.</summary>
public class JsFiltersConfigTests
{
    [Fact]
    public void Parse_NoJsFiltersBlock_Defaults()
    {
        var result = With(_ => { });

        Assert.True(result.IsValid, string.Join("\n", result.Errors));
        Assert.Equal(new JsFiltersOptions { Directory = "filters", TimeoutMs = 50, MaxStatements = 100_000, MemoryLimitMb = 16, RecursionLimit = 64 }, result.Options!.JsFilters);
    }

    [Fact]
    public void Parse_JsFiltersBlock_Binds()
    {
        var result = With(c => c["jsFilters"] = JsonNode.Parse("""{ "directory": "/etc/mesh/js", "timeoutMs": 20, "maxStatements": 5000, "memoryLimitMb": 4, "recursionLimit": 32 }"""));

        Assert.True(result.IsValid, string.Join("\n", result.Errors));
        Assert.Equal(new JsFiltersOptions { Directory = "/etc/mesh/js", TimeoutMs = 20, MaxStatements = 5000, MemoryLimitMb = 4, RecursionLimit = 32 }, result.Options!.JsFilters);
    }

    [Theory]
    [InlineData("directory", "\" \"", "jsFilters.directory", "is required (a folder of .js files, relative to the config file)")]
    [InlineData("timeoutMs", "0", "jsFilters.timeoutMs", "0 is out of range; use 1 to 300000")]
    [InlineData("maxStatements", "-1", "jsFilters.maxStatements", "-1 is out of range; use 1 or more")]
    [InlineData("memoryLimitMb", "5000", "jsFilters.memoryLimitMb", "5000 is out of range; use 1 to 4096")]
    [InlineData("recursionLimit", "0", "jsFilters.recursionLimit", "0 is out of range; use 1 to 10000")]
    public void Validate_OutOfRange_ErrorWithPath(string key, string value, string path, string message)
    {
        var result = With(c => c["jsFilters"] = JsonNode.Parse($$"""{ "{{key}}": {{value}} }"""));

        SingleError(result, path, message);
    }

    [Fact]
    public void Parse_UnknownKeyOrWrongType_ShapeError()
    {
        var result = With(c => c["jsFilters"] = JsonNode.Parse("""{ "timeout": 5, "maxStatements": "many" }"""));

        Assert.False(result.IsValid);
        Assert.Contains(result.Errors, e => e.Path == "jsFilters.timeout" && e.Message.StartsWith("unknown key", StringComparison.Ordinal));
        Assert.Contains(result.Errors, e => e.Path == "jsFilters.maxStatements" && e.Message == "'many' is not a whole number");
    }
}
