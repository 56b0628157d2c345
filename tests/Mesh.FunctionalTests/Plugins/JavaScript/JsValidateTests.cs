// mesh-sidecar validate checks JavaScript filters against the jsFilters directory next to the config file.
using Mesh.Sidecar.Cli;

namespace Mesh.FunctionalTests.Plugins.JavaScript;

public sealed class JsValidateTests : IDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("mesh-validate-js-").FullName;

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    private string Filters => Directory.CreateDirectory(Path.Combine(_directory, "filters")).FullName;

    private string Write(string filtersJson)
    {
        var path = Path.Combine(_directory, "sidecar.json");
        File.WriteAllText(path, $$"""
            {
              "service": { "name": "web" },
              "admin": { "port": 0 },
              "listeners": [ { "name": "out", "port": 0 } ],
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

    [Fact]
    public async Task Validate_RouteNamesMissingJsFile_ErrorNamingTheDirectoryAndExit2()
    {
        File.WriteAllText(Path.Combine(Filters, "auth.js"), "function onRequest(req, ctx) {}");
        var path = Write("""[ { "name": "auth.js" }, { "name": "header-routing.js" } ]""");

        var (exit, _, err) = await ValidateAsync(path);

        Assert.Equal(2, exit);
        Assert.Contains($"routes[0].filters[1].name: no JavaScript filter file header-routing.js in the jsFilters directory {Filters} (it has: auth.js)", err, StringComparison.Ordinal);
        Assert.DoesNotContain("filters[0]", err, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Validate_JsFileWithSyntaxError_ErrorWithFileLineColumn()
    {
        File.WriteAllText(Path.Combine(Filters, "auth.js"), "function onRequest(req, ctx) {\n  if (\n}\n");
        var path = Write("""[ { "name": "auth.js" } ]""");

        var (exit, _, err) = await ValidateAsync(path);

        Assert.Equal(2, exit);
        Assert.Contains("routes[0].filters[0].name: no JavaScript filter file auth.js", err, StringComparison.Ordinal);
        Assert.Contains("(auth.js:3:1: ", err, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Validate_JsFilesPresentAndValid_Exit0()
    {
        File.Copy(JsFilterDirectory.SamplePath("header-routing.js"), Path.Combine(Filters, "header-routing.js"));
        var path = Write("""[ { "name": "header-routing.js", "config": { "tenants": { "acme": "api" } }, "timeoutMs": 20 } ]""");

        var (exit, output, err) = await ValidateAsync(path);

        Assert.True(exit == 0, err);
        Assert.Contains("valid", output, StringComparison.OrdinalIgnoreCase);
    }
}
