// JavaScript filter test helpers: a filters directory of its own, the samples, and sidecar configs that use them.
using Mesh.FunctionalTests.Infrastructure;
using Mesh.Tests;

namespace Mesh.FunctionalTests.Plugins.JavaScript;

/// <summary>A jsFilters directory of its own, deleted afterwards.</summary>
public sealed class JsFilterDirectory : IDisposable
{
    public string Path { get; } = Directory.CreateTempSubdirectory("mesh-js-").FullName;

    /// <summary>Writes <c>name</c> in place (truncate and write, as an editor or <c>cp</c> does).</summary>
    public string Write(string name, string text)
    {
        var path = System.IO.Path.Combine(Path, name);
        File.WriteAllText(path, text);
        return path;
    }

    /// <summary>Writes a hidden temporary file and renames it over <c>name</c>, as deploy tools do.</summary>
    public string WriteByRename(string name, string text)
    {
        var path = System.IO.Path.Combine(Path, name);
        var temp = System.IO.Path.Combine(Path, "." + name + ".tmp");
        File.WriteAllText(temp, text);
        File.Move(temp, path, overwrite: true);
        return path;
    }

    /// <summary>Copies a sample from plugins-samples/js.</summary>
    public string CopySample(string name) => Write(name, File.ReadAllText(SamplePath(name)));

    public void Delete(string name) => File.Delete(System.IO.Path.Combine(Path, name));

    public static string SamplePath(string name) => System.IO.Path.Combine(TestFixtures.RepositoryRoot, "plugins-samples", "js", name);

    public void Dispose()
    {
        try
        {
            Directory.Delete(Path, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}

/// <summary>Sidecar configs with JavaScript filters.</summary>
internal static class JsConfig
{
    /// <summary>One outbound HTTP listener, the routes and services given, jsFilters pointing at <paramref name="js"/> with <paramref name="limits"/> added.</summary>
    public static object SidecarConfig(string js, object[] routes, IReadOnlyDictionary<string, object> services, object? limits = null, string level = "Warning", string? plugins = null, bool inlineCompletions = true)
    {
        var jsFilters = new Dictionary<string, object?> { ["directory"] = js };
        foreach (var property in limits?.GetType().GetProperties() ?? [])
        {
            jsFilters[property.Name] = property.GetValue(limits);
        }

        return new
        {
            service = new { name = "client", address = "127.0.0.1", port = 0 },
            admin = new { address = "127.0.0.1", port = 0 },
            listeners = new object[] { new { name = "outbound", address = "127.0.0.1", port = 0, direction = "outbound", protocol = "http" } },
            routes,
            services,
            jsFilters,
            plugins = new { directory = plugins ?? System.IO.Path.Combine(js, "no-plugins") },
            performance = new { inlineCompletions },
            logging = new { level },
        };
    }

    public static object Route(string name, string path, object[] filters, string service = "api") =>
        new { name, service, match = new { path = new { prefix = path } }, filters };

    public static Dictionary<string, object> Services(params (string Name, object Service)[] services) =>
        services.ToDictionary(s => s.Name, s => s.Service);

    /// <summary>An endpoint of <paramref name="backend"/> carrying <paramref name="tags"/> (a subset).</summary>
    public static object Tagged(TestBackend backend, params string[] tags) => new { address = "127.0.0.1", port = backend.Port, tags };
}
