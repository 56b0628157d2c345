// Python's http.server as an upstream nobody here wrote, serving a folder with whoami.txt.
using System.Diagnostics;
using System.Text.RegularExpressions;
using Mesh.FunctionalTests.Infrastructure;
using Mesh.Tests;

namespace Mesh.FunctionalTests.Consul;

internal sealed partial class PythonHttpServer : IAsyncDisposable
{
    private readonly Process _process;
    private readonly string _directory;

    private PythonHttpServer(Process process, string directory, int port)
    {
        _process = process;
        _directory = directory;
        Port = port;
    }

    public int Port { get; }

    /// <summary>Starts <c>python3 -m http.server 0 --bind 127.0.0.1</c> and reads the port it prints.</summary>
    public static async Task<PythonHttpServer> StartAsync(string name)
    {
        var python = ExternalTools.Require("python3");
        var directory = Directory.CreateTempSubdirectory("mesh-python-").FullName;
        await File.WriteAllTextAsync(Path.Combine(directory, "whoami.txt"), name + "\n");
        var process = Process.Start(new ProcessStartInfo(python, ["-u", "-m", "http.server", "0", "--bind", "127.0.0.1", "--directory", directory])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        })!;
        _ = process.StandardError.ReadToEndAsync();
        using var deadline = new CancellationTokenSource(TestSidecar.Deadline);
        while (await process.StandardOutput.ReadLineAsync(deadline.Token) is { } line)
        {
            if (PortPattern().Match(line) is { Success: true } match)
            {
                _ = process.StandardOutput.ReadToEndAsync();
                return new PythonHttpServer(process, directory, int.Parse(match.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture));
            }
        }

        process.Kill();
        throw new InvalidOperationException("python3 -m http.server did not say which port it serves");
    }

    public async ValueTask DisposeAsync()
    {
        _process.Kill(entireProcessTree: true);
        await _process.WaitForExitAsync();
        _process.Dispose();
        Directory.Delete(_directory, recursive: true);
    }

    [GeneratedRegex(@"Serving HTTP on \S+ port (\d+)")]
    private static partial Regex PortPattern();
}
