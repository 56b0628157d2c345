// `mesh-sidecar validate` as a real process on the malformed edits that once crashed it: exit 2 with JSON paths, never a stack trace.
namespace Mesh.FunctionalTests.Cli;

public sealed class ValidateProcessTests
{
    private const string Base = """
        "service": { "name": "web" },
        "admin": { "port": 0 },
        "services": { "api": { "endpoints": [ { "address": "127.0.0.1", "port": 9001 } ] } }
        """;

    [Theory]
    [InlineData("""[ { "name": "out" } ], "routes": [ { "name": "r", "service": "api", "match": { "hosts": [ null ] } } ]""", "routes[0].match.hosts[0]: expected a string, found null")]
    [InlineData("""[ { "name": "out" } ], "routes": [ { "name": "r", "service": "api", "listeners": [ {} ] } ]""", "routes[0].listeners[0]: expected a string, found an object")]
    [InlineData("""[ { "name": "out" } ], "routes": [ { "name": "r", "service": "api", "match": { "methods": [ null ] } } ]""", "routes[0].match.methods[0]: expected a string, found null")]
    [InlineData("""[ { "name": "out" } ], "routes": [ { "name": "r", "service": "api", "transforms": { "requestHeaders": { "remove": [ null ] } } } ]""", "routes[0].transforms.requestHeaders.remove[0]: expected a string, found null")]
    [InlineData("""[ { "name": "tls", "protocol": "tls-passthrough", "service": "api", "tls": { "routes": [ { "name": "t", "service": "api", "serverNames": [ {} ] } ] } } ]""", "listeners[0].tls.routes[0].serverNames[0]: expected a string, found an object")]
    [InlineData("""[ { "name": "out", "Name": "again" } ]""", "listeners[0].Name: duplicate key (keys are case-insensitive)")]
    public async Task Validate_MalformedConfig_Exits2WithThePathAndNoStackTrace(string listeners, string expected)
    {
        var path = Path.Combine(Directory.CreateTempSubdirectory("mesh-validate-").FullName, "sidecar.json");
        await File.WriteAllTextAsync(path, $$"""{ {{Base}}, "listeners": {{listeners}} }""");

        using var process = SidecarProcess.StartAppHost("validate", "--config", path);

        Assert.Equal(2, await process.WaitForExitAsync());
        Assert.Contains($"  {expected}", process.Output, StringComparison.Ordinal);
        Assert.DoesNotContain("Unhandled exception", process.Output, StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", process.Output, StringComparison.Ordinal);
    }

    private const string ValidConfig = """
        {
          "service": { "name": "web" },
          "admin": { "port": 0 },
          "listeners": [ { "name": "out", "port": 0 } ],
          "routes": [ { "name": "r", "service": "api" } ],
          "services": { "api": { "endpoints": [ { "address": "127.0.0.1", "port": 9001 } ] } }
        }
        """;

    [Fact]
    public async Task Validate_EnvironmentOverride_IsValidatedLikeTheFile()
    {
        // What `run` would load is what `validate` checks: MESH__ variables included.
        var path = Path.Combine(Directory.CreateTempSubdirectory("mesh-validate-").FullName, "sidecar.json");
        await File.WriteAllTextAsync(path, ValidConfig);

        using (var valid = SidecarProcess.StartAppHost("validate", "--config", path))
        {
            Assert.Equal(0, await valid.WaitForExitAsync());
        }

        using var process = SidecarProcess.StartAppHost(
            new Dictionary<string, string> { ["MESH__listeners__0__port"] = "70000", ["MESH__services__api__loadBalancing__policy"] = "fastest" },
            "validate", "--config", path);

        Assert.Equal(2, await process.WaitForExitAsync());
        Assert.Contains("  listeners[0].port: 70000 is not a port", process.Output, StringComparison.Ordinal);
        Assert.Contains("  services.api.loadBalancing.policy: 'fastest' is not one of: ", process.Output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Validate_EnvironmentAndCommandLine_CommandLineWinsAndBothAreApplied()
    {
        // The file is invalid; the environment fixes one problem, the command line the other (and
        // overrides the environment where both set a key), so the result is valid.
        var path = Path.Combine(Directory.CreateTempSubdirectory("mesh-validate-").FullName, "sidecar.json");
        await File.WriteAllTextAsync(path, ValidConfig.Replace("\"port\": 0 } ]", "\"port\": 70000, \"direction\": \"sideways\" } ]", StringComparison.Ordinal));
        var environment = new Dictionary<string, string> { ["MESH__listeners__0__port"] = "0", ["MESH__listeners__0__direction"] = "upwards" };

        using (var invalid = SidecarProcess.StartAppHost(environment, "validate", "--config", path))
        {
            Assert.Equal(2, await invalid.WaitForExitAsync());
            Assert.Contains("  listeners[0].direction: 'upwards' is not one of: inbound, outbound", invalid.Output, StringComparison.Ordinal);
            Assert.DoesNotContain("listeners[0].port", invalid.Output, StringComparison.Ordinal);
        }

        using var fixedUp = SidecarProcess.StartAppHost(environment, "validate", "--config", path, "--set", "listeners:0:direction=outbound");
        Assert.Equal(0, await fixedUp.WaitForExitAsync());
        Assert.Contains("configuration is valid", fixedUp.Output, StringComparison.Ordinal);
    }
}
