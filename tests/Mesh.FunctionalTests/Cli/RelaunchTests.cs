// `mesh-sidecar run` as a real process: it re-executes itself once with the GC budget, keeping its PID and answering signals.
using System.Diagnostics;
using System.Text.RegularExpressions;

namespace Mesh.FunctionalTests.Cli;

public sealed partial class RelaunchTests
{
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(60);

    [Theory]
    [InlineData(4, "400000")]
    [InlineData(16, "1000000")]
    public async Task Run_AsAProcess_ReExecsWithGen0BudgetKeepsPidAndStopsOnSigterm(int gen0Mb, string expectedHex)
    {
        using var process = Start(gen0Mb);
        try
        {
            var admin = await ReadAdminAddressAsync(process);

            // Same PID as the process we started, now carrying the variables the GC reads at start.
            var environment = await File.ReadAllTextAsync($"/proc/{process.Id}/environ");
            var variables = environment.Split('\0');
            Assert.Contains($"DOTNET_GCgen0size={expectedHex}", variables);
            Assert.Contains("MESH_RELAUNCHED=1", variables);

            using var client = new HttpClient { Timeout = Deadline };
            Assert.Equal("ready", (await client.GetStringAsync(new Uri(admin, "/ready"))).Trim());

            // SIGTERM reaches the re-executed process, which drains and exits 0.
            using (var kill = Process.Start("kill", ["-TERM", process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)]))
            {
                await kill.WaitForExitAsync().WaitAsync(Deadline);
            }

            await process.WaitForExitAsync().WaitAsync(Deadline);
            Assert.Equal(0, process.ExitCode);
        }
        finally
        {
            if (!process.HasExited)
            {
                process.Kill();
            }
        }
    }

    [Fact]
    public async Task Run_Gen0SizeZero_DoesNotReExec()
    {
        using var process = Start(0);
        try
        {
            await ReadAdminAddressAsync(process);
            var variables = (await File.ReadAllTextAsync($"/proc/{process.Id}/environ")).Split('\0');
            Assert.DoesNotContain("MESH_RELAUNCHED=1", variables);
            Assert.DoesNotContain(variables, v => v.StartsWith("DOTNET_GCgen0size=", StringComparison.Ordinal));
        }
        finally
        {
            process.Kill();
            await process.WaitForExitAsync().WaitAsync(Deadline);
        }
    }

    [Fact]
    public void RuntimeConfig_AsShipped_ThreadPoolWorkersDoNotSpin()
    {
        // The runtime reads this from mesh-sidecar.runtimeconfig.json before any code runs.
        using var config = System.Text.Json.JsonDocument.Parse(File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "mesh-sidecar.runtimeconfig.json")));
        var properties = config.RootElement.GetProperty("runtimeOptions").GetProperty("configProperties");

        Assert.Equal(0, properties.GetProperty("System.Threading.ThreadPool.UnfairSemaphoreSpinLimit").GetInt32());
    }

    private static Process Start(int gen0Mb)
    {
        var config = Path.Combine(Directory.CreateTempSubdirectory("mesh-relaunch-").FullName, "sidecar.json");
        File.WriteAllText(config, $$"""
            {
              "service": { "name": "relaunch" },
              "admin": { "address": "127.0.0.1", "port": 0 },
              "listeners": [ { "name": "out", "address": "127.0.0.1", "port": 0 } ],
              "logging": { "level": "Warning" },
              "performance": { "gcGen0SizeMb": {{gen0Mb}} }
            }
            """);
        var sidecar = Path.Combine(AppContext.BaseDirectory, "mesh-sidecar.dll");
        var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var arg in new[] { sidecar, "run", "--config", config })
        {
            start.ArgumentList.Add(arg);
        }

        // The test host may carry its own runtime variables; the sidecar must decide for itself.
        start.Environment.Remove("DOTNET_GCgen0size");
        start.Environment.Remove("MESH_RELAUNCHED");
        return Process.Start(start)!;
    }

    private static async Task<Uri> ReadAdminAddressAsync(Process process)
    {
        using var cts = new CancellationTokenSource(Deadline);
        while (true)
        {
            var line = await process.StandardOutput.ReadLineAsync(cts.Token)
                ?? throw new InvalidOperationException($"the sidecar exited: {await process.StandardError.ReadToEndAsync(cts.Token)}");
            var match = AdminLine().Match(line);
            if (match.Success)
            {
                return new Uri(match.Groups[1].Value);
            }
        }
    }

    [GeneratedRegex(@"running; admin on (http://\S+)")]
    private static partial Regex AdminLine();
}
