// Peers nobody here wrote: Python's http.server as an upstream and curl as a client.
using System.Diagnostics;
using System.Text.RegularExpressions;
using Mesh.Tests;

namespace Mesh.FunctionalTests.Infrastructure;

/// <summary>Python's <c>http.server</c> serving a folder on an ephemeral loopback port (HTTP/1.1).</summary>
public sealed partial class PythonHttpServer : IAsyncDisposable
{
    private readonly Process _process;

    private PythonHttpServer(Process process, int port, string directory)
    {
        _process = process;
        Port = port;
        Directory = directory;
    }

    public int Port { get; }

    public string Directory { get; }

    public object Endpoint(params string[] tags) => new { address = "127.0.0.1", port = Port, tags };

    /// <summary>Serves a fresh folder holding <paramref name="files"/> (name to content).</summary>
    public static async Task<PythonHttpServer> StartAsync(IReadOnlyDictionary<string, string> files)
    {
        var directory = System.IO.Directory.CreateTempSubdirectory("mesh-python-").FullName;
        foreach (var (name, content) in files)
        {
            await File.WriteAllTextAsync(Path.Combine(directory, name), content);
        }

        // http.server's own handler and server, speaking HTTP/1.1 with keep-alive (its default is HTTP/1.0).
        const string Script = """
            import functools, http.server, sys
            http.server.SimpleHTTPRequestHandler.protocol_version = "HTTP/1.1"
            handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=sys.argv[1])
            server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
            print(f"serving on port {server.server_address[1]}", flush=True)
            server.serve_forever()
            """;
        var start = new ProcessStartInfo(ExternalTools.Require("python3"), ["-u", "-c", Script, directory])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        var process = Process.Start(start)!;
        _ = process.StandardError.ReadToEndAsync();
        using var deadline = new CancellationTokenSource(TestSidecar.Deadline);
        while (await process.StandardOutput.ReadLineAsync(deadline.Token) is { } line)
        {
            if (PortLine().Match(line) is { Success: true } match)
            {
                _ = process.StandardOutput.ReadToEndAsync();
                return new PythonHttpServer(process, int.Parse(match.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture), directory);
            }
        }

        process.Kill();
        throw new InvalidOperationException("python3 -m http.server exited without saying its port");
    }

    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited)
        {
            _process.Kill();
            await _process.WaitForExitAsync();
        }

        _process.Dispose();
        System.IO.Directory.Delete(Directory, recursive: true);
    }

    [GeneratedRegex(@"port (\d+)")]
    private static partial Regex PortLine();
}

/// <summary>Runs curl and returns its exit code and output.</summary>
public static class Curl
{
    public static async Task<(int ExitCode, string Output)> RunAsync(params string[] arguments)
    {
        var start = new ProcessStartInfo(ExternalTools.Require("curl"), ["--silent", "--show-error", "--max-time", "20", "--noproxy", "*", .. arguments])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        using var process = Process.Start(start)!;
        var output = process.StandardOutput.ReadToEndAsync();
        var error = process.StandardError.ReadToEndAsync();
        using var deadline = new CancellationTokenSource(TestSidecar.Deadline);
        await process.WaitForExitAsync(deadline.Token);
        return (process.ExitCode, await output + await error);
    }
}
