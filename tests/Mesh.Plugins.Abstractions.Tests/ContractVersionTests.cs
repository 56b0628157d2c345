using System.Reflection;

namespace Mesh.Plugins.Abstractions.Tests;

/// <summary>The package version (what `dotnet pack` stamps) and the assembly version (what the sidecar checks) state the same compatibility.</summary>
public class ContractVersionTests
{
    [Fact]
    public void AssemblyVersion_MatchesPackageVersionMajorAndMinor()
    {
        var assembly = typeof(IRequestFilter).Assembly;
        var package = Version.Parse(assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()!.InformationalVersion.Split('+', '-')[0]);
        var version = assembly.GetName().Version!;

        Assert.Equal((package.Major, package.Minor), (version.Major, version.Minor));
        Assert.Equal((0, 0), (version.Build, version.Revision));
        Assert.True(version >= new Version(1, 1), "contract 1.1 added members; its version must say so");
    }
}
