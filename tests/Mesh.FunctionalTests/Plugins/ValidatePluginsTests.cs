// mesh-sidecar validate checks filters against the plugins directory next to the config file.
using Mesh.FunctionalTests.Infrastructure;
using Mesh.Sidecar.Cli;

namespace Mesh.FunctionalTests.Plugins;

public sealed class ValidatePluginsTests : IDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("mesh-validate-").FullName;

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    private string Write(string filtersJson, string connectionFiltersJson = "[]")
    {
        var path = Path.Combine(_directory, "sidecar.json");
        File.WriteAllText(path, $$"""
            {
              "service": { "name": "web" },
              "admin": { "port": 0 },
              "listeners": [ { "name": "out", "port": 0, "connectionFilters": {{connectionFiltersJson}} } ],
              "routes": [ { "name": "api", "service": "api", "filters": {{filtersJson}} } ],
              "services": { "api": { "endpoints": [ { "address": "127.0.0.1", "port": 9001 } ] } }
            }
            """);
        return path;
    }

    private static async Task<(int Exit, string Out, string Err)> ValidateAsync(string path)
    {
        using var output = new StringWriter();
        using var error = new StringWriter();
        var exit = await Program.InvokeAsync(["validate", "--config", path], output, error);
        return (exit, output.ToString(), error.ToString());
    }

    private string Plugins => Directory.CreateDirectory(Path.Combine(_directory, "plugins")).FullName;

    [Fact]
    public async Task Validate_RouteNamesFilterNotInPluginsDirectory_ErrorWithPathAndExit2()
    {
        Mesh.Tests.PluginCompiler.WritePlugin(Plugins, "Toolkit", TestPluginSources.Toolkit);
        var path = Write("""[ { "name": "tag", "config": { "tag": "a" } }, { "name": "api-key" } ]""");

        var (exit, _, err) = await ValidateAsync(path);

        Assert.Equal(2, exit);
        Assert.Contains($"routes[0].filters[1].name: no filter named 'api-key' in the plugins directory {Path.Combine(_directory, "plugins")} (it has: fault, recall, remember, reroute, tag)", err, StringComparison.Ordinal);
        Assert.DoesNotContain("filters[0]", err, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Validate_FactoryRejectsSetting_ErrorAtTheSettingsPath()
    {
        Mesh.Tests.PluginCompiler.WritePlugin(Plugins, "Toolkit", TestPluginSources.Toolkit);
        var path = Write("""[ { "name": "tag", "config": { } } ]""");

        var (exit, _, err) = await ValidateAsync(path);

        Assert.Equal(2, exit);
        Assert.Contains("routes[0].filters[0].config.tag: is required", err, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Validate_FilterOnlyInARefusedPlugin_ErrorSaysWhyItWasRefused()
    {
        Mesh.Tests.PluginCompiler.WritePlugin(Plugins, "Stamp", TestPluginSources.Stamp("1.0.0", constructorThrows: true));
        var path = Write("""[ { "name": "stamp" } ]""");

        var (exit, _, err) = await ValidateAsync(path);

        Assert.Equal(2, exit);
        Assert.Contains("routes[0].filters[0].name: no filter named 'stamp'", err, StringComparison.Ordinal);
        Assert.Contains("Stamp.dll (constructor of Stamp.StampFactory threw InvalidOperationException: stamp cannot start)", err, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Validate_ConnectionFilterMissingAndRequestFilterUsedAsConnectionFilter_Errors()
    {
        Mesh.Tests.PluginCompiler.WritePlugin(Plugins, "Toolkit", TestPluginSources.Toolkit);
        var path = Write("[]", """[ { "name": "tag" }, { "name": "allowlist" } ]""");

        var (exit, _, err) = await ValidateAsync(path);

        Assert.Equal(2, exit);
        Assert.Contains("listeners[0].connectionFilters[0].name: 'tag' is a request filter (use it in routes[].filters)", err, StringComparison.Ordinal);
        Assert.Contains("listeners[0].connectionFilters[1].name: no filter named 'allowlist'", err, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Validate_FiltersAllPresentAndSettingsValid_Exit0()
    {
        Mesh.Tests.PluginCompiler.WritePlugin(Plugins, "Toolkit", TestPluginSources.Toolkit);
        var path = Write("""[ { "name": "tag", "config": { "tag": "a" } }, { "name": "reroute", "config": { "service": "api", "subset": "v2" } } ]""");

        var (exit, output, err) = await ValidateAsync(path);

        Assert.True(exit == 0, err);
        Assert.Contains("configuration is valid", output, StringComparison.Ordinal);
    }
}
