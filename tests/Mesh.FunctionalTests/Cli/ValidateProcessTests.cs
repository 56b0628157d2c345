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
}
