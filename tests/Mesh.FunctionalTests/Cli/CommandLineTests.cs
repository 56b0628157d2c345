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
    public async Task Run_SetOption_IsValidatedLikeTheFile()
    {
        var path = WriteConfig("""{ "service": { "name": "web" }, "admin": { "port": 0 }, "listeners": [ { "name": "out", "port": 0 } ] }""");
        var (exit, _, err) = await RunAsync("validate", "--config", path, "--set", "admin:port=70000", "--set", "listeners:0:direction=sideways");
        Assert.Equal(2, exit);
        Assert.Contains("admin.port: 70000 is not a port", err, StringComparison.Ordinal);
        Assert.Contains("listeners[0].direction: 'sideways' is not one of: inbound, outbound", err, StringComparison.Ordinal);

        // The shorthand, with the value in the next word.
        (exit, _, err) = await RunAsync("validate", "--config", path, "--admin:port", "70000");
        Assert.Equal(2, exit);
        Assert.Contains("admin.port: 70000 is not a port", err, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Run_SetWithoutEquals_IsAUsageError()
    {
        var (exit, _, err) = await RunAsync("run", "--config", "/nonexistent/mesh.json", "--set", "admin:port");
        Assert.Equal(2, exit);
        Assert.Contains("--set 'admin:port': expected KEY=VALUE", err, StringComparison.Ordinal);
        Assert.DoesNotContain("cannot read the config file", err, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("valdiate", "validate")]
    [InlineData("hlep", "help")]
    [InlineData("start", null)]
    public async Task UnknownCommand_NamesTheCommandsAndExits2WithoutRunning(string word, string? suggestion)
    {
        var (exit, output, err) = await RunAsync(word, "--config", "/nonexistent/mesh.json");
        Assert.Equal(2, exit);
        Assert.Contains($"unknown command '{word}'; the commands are: run, validate, demo, version, ca, help.", err, StringComparison.Ordinal);
        if (suggestion is not null)
        {
            Assert.Contains($"Did you mean '{suggestion}'?", err, StringComparison.Ordinal);
        }

        // Running would have tried to read the config file.
        Assert.DoesNotContain("cannot read the config file", err, StringComparison.Ordinal);
        Assert.DoesNotContain("running", output, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("validate", "--confg")]
    [InlineData("run", "--confg")]
    [InlineData("run", "--verbose")]
    public async Task UnknownOption_IsAnUnknownOptionNotAConfigKey(string command, string option)
    {
        var (exit, _, err) = await RunAsync(command, option, "x.json");
        Assert.Equal(2, exit);
        Assert.Contains($"unknown option '{option}' for '{command}'; its options are: --config, --set, --help.", err, StringComparison.Ordinal);
        Assert.DoesNotContain("unknown key", err, StringComparison.Ordinal);
        Assert.DoesNotContain("'x.json'", err, StringComparison.Ordinal);
        if (option == "--confg")
        {
            Assert.Contains("Did you mean '--config'?", err, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task MissingRequiredOption_OfANestedCommand_Exits2WithItsHelpHint()
    {
        var (exit, _, err) = await RunAsync("ca", "init", "--dir", "/tmp/nowhere");
        Assert.Equal(2, exit);
        Assert.Contains("--trust-domain", err, StringComparison.Ordinal);
        Assert.Contains("Run 'mesh-sidecar ca init --help' for usage.", err, StringComparison.Ordinal);
    }

    [Fact]
    public async Task UnexpectedArgument_AfterACommand_Exits2()
    {
        var (exit, _, err) = await RunAsync("validate", "--config", "a.json", "b.json");
        Assert.Equal(2, exit);
        Assert.Contains("unexpected argument 'b.json' for 'validate'", err, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Help_Command_PrintsUsageWithCommandsAndExits0()
    {
        var (exit, output, _) = await RunAsync("help");
        Assert.Equal(0, exit);
        Assert.Contains("Usage:", output, StringComparison.Ordinal);
        Assert.Contains("validate", output, StringComparison.Ordinal);

        (exit, output, _) = await RunAsync("help", "validate");
        Assert.Equal(0, exit);
        Assert.Contains("mesh-sidecar validate [options]", output, StringComparison.Ordinal);

        var (unknown, _, err) = await RunAsync("help", "valdiate");
        Assert.Equal(2, unknown);
        Assert.Contains("unknown command 'valdiate'", err, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Version_CommandAndOption_PrintTheSameVersionWithCommit()
    {
        var (exit, command, _) = await RunAsync("version");
        var (optionExit, option, _) = await RunAsync("--version");
        Assert.Equal(0, exit);
        Assert.Equal(0, optionExit);
        Assert.Equal(command, option);
        Assert.StartsWith($"mesh-sidecar {Program.Version}", command, StringComparison.Ordinal);

        // The build stamps the commit after a '+' (from git); both print it.
        var informational = typeof(Program).Assembly.GetCustomAttributes(typeof(System.Reflection.AssemblyInformationalVersionAttribute), false)
            .Cast<System.Reflection.AssemblyInformationalVersionAttribute>().Single().InformationalVersion;
        var plus = informational.IndexOf('+', StringComparison.Ordinal);
        Assert.True(plus > 0, $"the build stamped no commit: {informational}");
        Assert.Equal($"mesh-sidecar {Program.Version} (commit {informational[(plus + 1)..]})", command.Trim());
    }

    [Theory]
    [InlineData()]
    [InlineData("run")]
    [InlineData("validate")]
    [InlineData("demo")]
    [InlineData("version")]
    [InlineData("help")]
    [InlineData("ca", "init")]
    public async Task Help_UsageLine_HasBalancedBrackets(params string[] command)
    {
        var (exit, output, _) = await RunAsync([.. command, "--help"]);
        Assert.Equal(0, exit);
        var lines = output.Split('\n');
        var usage = lines[Array.FindIndex(lines, l => l.StartsWith("Usage:", StringComparison.Ordinal)) + 1].Trim();
        Assert.StartsWith("mesh-sidecar", usage, StringComparison.Ordinal);
        var depth = 0;
        foreach (var c in usage)
        {
            depth += c is '[' or '<' ? 1 : c is ']' or '>' ? -1 : 0;
            Assert.True(depth >= 0, usage);
        }

        Assert.True(depth == 0, usage);
    }

    [Fact]
    public async Task Help_Run_ExplainsOverridesPlainly()
    {
        var (_, output, _) = await RunAsync("run", "--help");
        Assert.Contains("--set <key=value>", output, StringComparison.Ordinal);
        Assert.Contains("--set admin:port=19001", output, StringComparison.Ordinal);
        Assert.Contains("Shorthand: --admin:port=19001", output, StringComparison.Ordinal);
        Assert.DoesNotContain("Arguments passed to the application", output, StringComparison.Ordinal);
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
