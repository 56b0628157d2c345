// `mesh-sidecar run` as a real process: it re-executes itself once with the GC budget, keeping its PID, its name and answering signals.
using System.Globalization;
using System.Text.RegularExpressions;

namespace Mesh.FunctionalTests.Cli;

public sealed partial class RelaunchTests
{
    [Theory]
    [InlineData(4, "400000")]
    [InlineData(16, "1000000")]
    public async Task Run_AsAProcess_ReExecsWithGen0BudgetKeepsPidAndStopsOnSigterm(int gen0Mb, string expectedHex)
    {
        using var process = SidecarProcess.StartAppHost("run", "--config", WriteConfig(gen0Mb));
        var admin = await ReadAdminAddressAsync(process);

        // Same PID as the process we started, now carrying the variables the GC reads at start.
        var variables = (await File.ReadAllTextAsync($"/proc/{process.Id}/environ")).Split('\0');
        Assert.Contains($"DOTNET_GCgen0size={expectedHex}", variables);
        Assert.Contains("MESH_RELAUNCHED=1", variables);

        using var client = new HttpClient { Timeout = SidecarProcess.Deadline };
        Assert.Equal("ready", (await client.GetStringAsync(new Uri(admin, "/ready"))).Trim());

        // SIGTERM reaches the re-executed process, which drains and exits 0.
        await process.SignalAsync("TERM");
        Assert.Equal(0, await process.WaitForExitAsync());
    }

    [Fact]
    public async Task Run_AfterReExec_KeepsItsProcessName()
    {
        using var process = SidecarProcess.StartAppHost("run", "--config", WriteConfig(4));
        await ReadAdminAddressAsync(process);
        Assert.Contains("MESH_RELAUNCHED=1", (await File.ReadAllTextAsync($"/proc/{process.Id}/environ")).Split('\0'));

        // ps, top, ss -p and pgrep read the kernel's name for the process: still mesh-sidecar, not "exe".
        Assert.Equal("mesh-sidecar", (await File.ReadAllTextAsync($"/proc/{process.Id}/comm")).Trim());
        Assert.Contains(process.Id, PgrepExact("mesh-sidecar"));
    }

    // What `pgrep -x NAME` does (procps is not on every machine): every PID whose kernel name is NAME.
    private static List<int> PgrepExact(string name)
    {
        var found = new List<int>();
        foreach (var directory in Directory.EnumerateDirectories("/proc"))
        {
            if (int.TryParse(Path.GetFileName(directory), NumberStyles.None, CultureInfo.InvariantCulture, out var pid))
            {
                try
                {
                    if (File.ReadAllText(Path.Combine(directory, "comm")).Trim() == name)
                    {
                        found.Add(pid);
                    }
                }
                catch (IOException)
                {
                    // Exited meanwhile.
                }
            }
        }

        return found;
    }

    [Fact]
    public async Task Run_UnderTheDotnetHost_ReExecsTheHost()
    {
        var dll = Path.Combine(AppContext.BaseDirectory, "mesh-sidecar.dll");
        using var process = SidecarProcess.Start("dotnet", dll, "run", "--config", WriteConfig(4));
        await ReadAdminAddressAsync(process);
        Assert.Contains("MESH_RELAUNCHED=1", (await File.ReadAllTextAsync($"/proc/{process.Id}/environ")).Split('\0'));
        Assert.Equal("dotnet", (await File.ReadAllTextAsync($"/proc/{process.Id}/comm")).Trim());
    }

    [Fact]
    public async Task Run_Gen0SizeZero_DoesNotReExec()
    {
        using var process = SidecarProcess.StartAppHost("run", "--config", WriteConfig(0));
        await ReadAdminAddressAsync(process);
        var variables = (await File.ReadAllTextAsync($"/proc/{process.Id}/environ")).Split('\0');
        Assert.DoesNotContain("MESH_RELAUNCHED=1", variables);
        Assert.DoesNotContain(variables, v => v.StartsWith("DOTNET_GCgen0size=", StringComparison.Ordinal));
    }

    [Fact]
    public void RuntimeConfig_AsShipped_ThreadPoolWorkersDoNotSpin()
    {
        // The runtime reads this from mesh-sidecar.runtimeconfig.json before any code runs.
        using var config = System.Text.Json.JsonDocument.Parse(File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "mesh-sidecar.runtimeconfig.json")));
        var properties = config.RootElement.GetProperty("runtimeOptions").GetProperty("configProperties");

        Assert.Equal(0, properties.GetProperty("System.Threading.ThreadPool.UnfairSemaphoreSpinLimit").GetInt32());
    }

    private static string WriteConfig(int gen0Mb)
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
        return config;
    }

    private static async Task<Uri> ReadAdminAddressAsync(SidecarProcess process) =>
        new(AdminLine().Match(await process.WaitForLineAsync("running; admin on")).Groups[1].Value);

    [GeneratedRegex(@"running; admin on (http://\S+)")]
    private static partial Regex AdminLine();
}
