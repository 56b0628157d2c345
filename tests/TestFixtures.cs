// Locates tests/fixtures inside the repository; linked into every test project.
namespace Mesh.Tests;

/// <summary>Paths of the fixture files under tests/fixtures, found from the test assembly's folder.</summary>
internal static class TestFixtures
{
    /// <summary>The repository's root: the first folder above the test binaries that holds Mesh.sln.</summary>
    public static string RepositoryRoot
    {
        get
        {
            var dir = new DirectoryInfo(AppContext.BaseDirectory);
            while (dir is not null && !File.Exists(System.IO.Path.Combine(dir.FullName, "Mesh.sln")))
            {
                dir = dir.Parent;
            }

            return dir?.FullName ?? throw new InvalidOperationException($"No Mesh.sln above {AppContext.BaseDirectory}.");
        }
    }

    /// <summary>A fixture folder or file, e.g. <c>Path("tls-clienthellos", "index.json")</c>.</summary>
    public static string Path(params string[] parts)
    {
        var path = System.IO.Path.Combine([RepositoryRoot, "tests", "fixtures", .. parts]);
        if (!File.Exists(path) && !Directory.Exists(path))
        {
            throw new FileNotFoundException(
                $"Test fixture {path} is missing. Fixtures live in tests/fixtures (see tests/fixtures/README.md); restore it from git.", path);
        }

        return path;
    }
}
