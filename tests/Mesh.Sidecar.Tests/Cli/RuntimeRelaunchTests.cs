// What `run` adds to its environment before re-executing itself.
using Mesh.Sidecar.Cli;
using Mesh.Sidecar.Configuration;

namespace Mesh.Sidecar.Tests.Cli;

public class RuntimeRelaunchTests
{
    [Fact]
    public void Wanted_Defaults_AskForAFourMiBGen0InHex()
    {
        Assert.Null(Environment.GetEnvironmentVariable(RuntimeRelaunch.Gen0SizeVariable));

        var wanted = RuntimeRelaunch.Wanted(new PerformanceOptions());

        Assert.Equal("400000", Assert.Single(wanted, kv => kv.Key == RuntimeRelaunch.Gen0SizeVariable).Value);
    }

    [Fact]
    public void Wanted_Gen0SizeZero_AsksForNothing()
    {
        Assert.Empty(RuntimeRelaunch.Wanted(new PerformanceOptions { GcGen0SizeMb = 0 }));
    }

    [Fact]
    public void Relaunch_NothingToAdd_ReturnsWithoutReplacingTheProcess()
    {
        // Reaching the next line is the assertion: an execve would have replaced the test host.
        RuntimeRelaunch.Relaunch(new Dictionary<string, string>());
        Assert.Null(Environment.GetEnvironmentVariable(RuntimeRelaunch.MarkerVariable));
    }

    [Fact]
    public void ExecutablePath_OfThisProcess_IsItsRealFileSoTheNameSurvives()
    {
        // execve names the process after the path it is given: /proc/self/exe would rename it "exe".
        var path = RuntimeRelaunch.ExecutablePath();

        Assert.NotEqual("/proc/self/exe", path);
        Assert.Equal(Environment.ProcessPath, path);
        Assert.True(File.Exists(path));
    }
}
