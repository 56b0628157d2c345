// Runs programs nobody here wrote (curl, openssl s_client, python3 servers) with deadlines, for tests that use them as peers.
using System.Diagnostics;

namespace Mesh.FunctionalTests.Infrastructure;

/// <summary>A finished run of an external program.</summary>
public sealed record ProcessResult(int ExitCode, string Output, string Error)
{
    public override string ToString() => $"exit {ExitCode}\nstdout:\n{Output}\nstderr:\n{Error}";
}

/// <summary>Starts external programs found through <see cref="Mesh.Tests.ExternalTools"/>.</summary>
public sealed class ExternalProcess : IAsyncDisposable
{
    private readonly Process _process;

    private ExternalProcess(Process process)
    {
        _process = process;
    }

    /// <summary>Runs <paramref name="tool"/> to completion (stdin closed at once unless given), within the test deadline.</summary>
    public static async Task<ProcessResult> RunAsync(string tool, IEnumerable<string> arguments, string? input = null)
    {
        using var process = Start(tool, arguments);
        var output = process.StandardOutput.ReadToEndAsync();
        var error = process.StandardError.ReadToEndAsync();
        if (input is not null)
        {
            await process.StandardInput.WriteAsync(input);
        }

        process.StandardInput.Close();
        using var deadline = new CancellationTokenSource(TestSidecar.Deadline);
        try
        {
            await process.WaitForExitAsync(deadline.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"{tool} {string.Join(' ', arguments)} did not finish in {TestSidecar.Deadline}");
        }

        return new ProcessResult(process.ExitCode, await output, await error);
    }

    /// <summary>Starts a long-running program and waits for its first line of output (a server's port, say).</summary>
    public static async Task<(ExternalProcess Process, string FirstLine)> StartAsync(string tool, IEnumerable<string> arguments)
    {
        var process = Start(tool, arguments);
        using var deadline = new CancellationTokenSource(TestSidecar.Deadline);
        var line = await process.StandardOutput.ReadLineAsync(deadline.Token);
        if (line is null)
        {
            var error = await process.StandardError.ReadToEndAsync(deadline.Token);
            process.Dispose();
            throw new InvalidOperationException($"{tool} exited before printing anything: {error}");
        }

        return (new ExternalProcess(process), line);
    }

    private static Process Start(string tool, IEnumerable<string> arguments)
    {
        var start = new ProcessStartInfo(Mesh.Tests.ExternalTools.Require(tool))
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        return Process.Start(start)!;
    }

    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
            await _process.WaitForExitAsync();
        }

        _process.Dispose();
    }
}
