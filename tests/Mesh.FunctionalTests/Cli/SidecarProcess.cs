// mesh-sidecar as a real process, started the way a user starts it (the apphost), with its output collected line by line.
using System.Diagnostics;
using System.Globalization;
using System.Threading.Channels;

namespace Mesh.FunctionalTests.Cli;

/// <summary>A running <c>mesh-sidecar</c> process: its output lines as they come, signals, and its exit.</summary>
public sealed class SidecarProcess : IDisposable
{
    public static readonly TimeSpan Deadline = TimeSpan.FromSeconds(60);

    private readonly Process _process;
    private readonly Channel<string> _lines = Channel.CreateUnbounded<string>();
    private readonly List<string> _all = [];
    private readonly Lock _lock = new();
    private int _streamsOpen = 2;

    private SidecarProcess(Process process)
    {
        _process = process;
    }

    public int Id => _process.Id;

    public int ExitCode => _process.ExitCode;

    /// <summary>Every line printed so far, stdout and stderr in arrival order.</summary>
    public string Output
    {
        get
        {
            lock (_lock)
            {
                return string.Join('\n', _all);
            }
        }
    }

    /// <summary>The apphost the build puts beside the test binaries: what a user runs after <c>dotnet publish</c>.</summary>
    public static string AppHost => Path.Combine(AppContext.BaseDirectory, "mesh-sidecar");

    /// <summary>Starts <c>mesh-sidecar</c> with <paramref name="args"/>; <c>DOTNET_GCgen0size</c> and the re-exec marker are cleared.</summary>
    public static SidecarProcess StartAppHost(params string[] args) => Start(AppHost, args);

    /// <summary>Starts <paramref name="program"/> (the apphost, or <c>dotnet</c> with the dll first in <paramref name="args"/>).</summary>
    public static SidecarProcess Start(string program, params string[] args)
    {
        var start = new ProcessStartInfo(program) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var arg in args)
        {
            start.ArgumentList.Add(arg);
        }

        // The test host may carry its own runtime variables; the sidecar must decide for itself.
        start.Environment.Remove("DOTNET_GCgen0size");
        start.Environment.Remove("MESH_RELAUNCHED");
        var process = new Process { StartInfo = start };
        var sidecar = new SidecarProcess(process);
        process.OutputDataReceived += (_, e) => sidecar.Received(e.Data);
        process.ErrorDataReceived += (_, e) => sidecar.Received(e.Data);
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return sidecar;
    }

    /// <summary>Waits for the first line (from now on, or already printed) that contains <paramref name="text"/>.</summary>
    public async Task<string> WaitForLineAsync(string text)
    {
        using var deadline = new CancellationTokenSource(Deadline);
        try
        {
            await foreach (var line in _lines.Reader.ReadAllAsync(deadline.Token))
            {
                if (line.Contains(text, StringComparison.Ordinal))
                {
                    return line;
                }
            }
        }
        catch (OperationCanceledException)
        {
        }

        throw new InvalidOperationException($"mesh-sidecar never printed '{text}'; its output:\n{Output}");
    }

    /// <summary>Sends <paramref name="signal"/> (TERM, INT) with kill(1), as a supervisor or a terminal would.</summary>
    public async Task SignalAsync(string signal)
    {
        using var kill = Process.Start("kill", [$"-{signal}", Id.ToString(CultureInfo.InvariantCulture)]);
        await kill.WaitForExitAsync().WaitAsync(Deadline);
    }

    /// <summary>Waits for the process to exit and for all of its output to be read.</summary>
    public async Task<int> WaitForExitAsync()
    {
        await _process.WaitForExitAsync().WaitAsync(Deadline);
        return _process.ExitCode;
    }

    public void Dispose()
    {
        try
        {
            if (!_process.HasExited)
            {
                _process.Kill();
                _process.WaitForExit(Deadline);
            }
        }
        catch (InvalidOperationException)
        {
        }

        _process.Dispose();
    }

    private void Received(string? line)
    {
        if (line is null)
        {
            if (Interlocked.Decrement(ref _streamsOpen) == 0)
            {
                _lines.Writer.TryComplete();
            }

            return;
        }

        lock (_lock)
        {
            _all.Add(line);
        }

        _lines.Writer.TryWrite(line);
    }
}
