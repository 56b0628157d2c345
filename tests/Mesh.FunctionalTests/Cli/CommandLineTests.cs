// The mesh-sidecar command line: validate, run refusing bad config, version, help.
using Mesh.Sidecar.Cli;

namespace Mesh.FunctionalTests.Cli;

public sealed class CommandLineTests
{
    private static async Task<(int Exit, string Out, string Err)> RunAsync(params string[] args)
    {
        using var output = new StringWriter();
        using var error = new StringWriter();
        var exit = await Program.InvokeAsync(args, output, error);
        return (exit, output.ToString(), error.ToString());
    }

    private static string WriteConfig(string json)
    {
        var path = Path.Combine(Directory.CreateTempSubdirectory("mesh-cli-").FullName, "sidecar.json");
        File.WriteAllText(path, json);
        return path;
    }

    private const string Invalid = """
        {
          "service": { "name": "web" },
          "admin": { "port": 0 },
          "listeners": [
            { "name": "a", "port": 0 },
            { "name": "b", "port": 70000, "direction": "sideways" }
          ],
          "routes": [ { "name": "r", "service": "missing" } ],
          "colour": "blue"
        }
        """;

    [Fact]
    public async Task Validate_InvalidConfig_PrintsEveryProblemWithPathAndExits2()
    {
        var path = WriteConfig(Invalid.Replace("\"colour\": \"blue\"", "\"logging\": { \"level\": \"Loud\" }", StringComparison.Ordinal));
        var (exit, _, err) = await RunAsync("validate", "--config", path);
        Assert.Equal(2, exit);
        Assert.Contains("listeners[1].port: 70000 is not a port", err, StringComparison.Ordinal);
        Assert.Contains("listeners[1].direction: 'sideways' is not one of: inbound, outbound", err, StringComparison.Ordinal);
        Assert.Contains("routes[0].service: no service named 'missing' in services", err, StringComparison.Ordinal);
        Assert.Contains("logging.level: 'Loud' is not a log level", err, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Validate_UnknownKey_IsAnError()
    {
        var (exit, _, err) = await RunAsync("validate", "--config", WriteConfig(Invalid));
        Assert.Equal(2, exit);
        Assert.Contains("colour: unknown key", err, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Validate_ValidConfig_Exits0()
    {
        var path = WriteConfig("""{ "service": { "name": "web" }, "admin": { "port": 0 }, "listeners": [ { "name": "out", "port": 0 } ] }""");
        var (exit, output, _) = await RunAsync("validate", "--config", path);
        Assert.Equal(0, exit);
        Assert.Contains("configuration is valid", output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Validate_MissingFile_NamesTheFile()
    {
        var (exit, _, err) = await RunAsync("validate", "--config", "/nonexistent/mesh.json");
        Assert.Equal(2, exit);
        Assert.Contains("/nonexistent/mesh.json: cannot read the config file", err, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Run_InvalidConfig_RefusesToStartWithSameMessages()
    {
        var path = WriteConfig(Invalid);
        var (exit, _, err) = await RunAsync("run", "--config", path);
        Assert.Equal(2, exit);
        Assert.Contains("colour: unknown key", err, StringComparison.Ordinal);
        (exit, _, err) = await RunAsync("--config", path);
        Assert.Equal(2, exit);
        Assert.Contains("colour: unknown key", err, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Run_CommandLineOverride_IsValidated()
    {
        var path = WriteConfig("""{ "service": { "name": "web" }, "admin": { "port": 0 }, "listeners": [ { "name": "out", "port": 0 } ] }""");
        var (exit, _, err) = await RunAsync("run", "--config", path, "--listeners:0:port=70000");
        Assert.Equal(2, exit);
        Assert.Contains("listeners[0].port: 70000 is not a port", err, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Version_Prints_Version()
    {
        var (exit, output, _) = await RunAsync("version");
        Assert.Equal(0, exit);
        Assert.StartsWith("mesh-sidecar ", output, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("run")]
    [InlineData("validate")]
    [InlineData("demo")]
    [InlineData("version")]
    public async Task Help_EachCommand_Describes(string command)
    {
        var (exit, output, _) = await RunAsync(command, "--help");
        Assert.Equal(0, exit);
        Assert.Contains("Usage:", output, StringComparison.Ordinal);
    }
}
