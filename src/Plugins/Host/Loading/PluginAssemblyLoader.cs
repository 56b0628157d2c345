// Loads one C# plugin into its own collectible load context (McMaster.NETCore.Plugins) and finds its factories.
using System.Reflection;
using System.Security.Cryptography;
using System.Text.RegularExpressions;
using McMaster.NETCore.Plugins;

namespace Mesh.Plugins.Loading;

/// <summary>A loaded package, a file still being written, or a refusal with its reason.</summary>
internal readonly record struct PluginLoadResult(FilterPackage? Package, string? Refusal, bool Incomplete = false);

/// <summary>
/// Loads a plugin's main assembly into a new collectible <c>AssemblyLoadContext</c> that shares the
/// contract (and anything else the sidecar has) with the host, then instantiates every public
/// factory. Anything wrong refuses the plugin with one reason and unloads what was loaded.
/// </summary>
internal static partial class PluginAssemblyLoader
{
    /// <summary>The source name C# plugins are published under.</summary>
    public const string SourceName = "csharp";

    public static PluginLoadResult Load(string id, string mainAssembly, byte[] image, string contentHash)
    {
        var inspection = PluginInspector.Inspect(image);
        if (inspection.Status == InspectionStatus.Incomplete)
        {
            return new PluginLoadResult(null, inspection.Reason, Incomplete: true);
        }

        if (inspection.Status == InspectionStatus.Refused)
        {
            return new PluginLoadResult(null, inspection.Reason);
        }

        PluginLoader? loader = null;
        try
        {
            loader = PluginLoader.CreateFromAssemblyFile(
                Path.GetFullPath(mainAssembly),
                isUnloadable: true,
                sharedTypes: [typeof(IRequestFilterFactory), typeof(IConnectionFilterFactory)],
                config =>
                {
                    // Whatever the sidecar has (the contract, System.Text.Json, ASP.NET) is shared, so
                    // types match across the boundary; only what the sidecar lacks loads privately.
                    config.PreferSharedTypes = true;
                    // Dependencies are read into memory: the files can then be replaced in place
                    // without a mapped image changing under the running code.
                    config.LoadInMemory = true;
                });

            var context = loader.LoadContext;
            // The exact bytes inspected and hashed, not whatever the file holds by now.
            var assembly = context.LoadFromStream(new MemoryStream(image, writable: false));
            var found = FindFactories(assembly, out var refusal);
            if (found is null)
            {
                loader.Dispose();
                return new PluginLoadResult(null, refusal);
            }

            var (request, connection) = found.Value;
            var captured = loader;
            loader = null;
            var package = new FilterPackage(SourceName, id, mainAssembly, request, connection, captured.Dispose)
            {
                Version = VersionOf(assembly),
                ContractVersion = $"{inspection.ContractVersion!.Major}.{inspection.ContractVersion.Minor}.{inspection.ContractVersion.Build}",
                ContentHash = contentHash,
                LoadContext = new WeakReference(context),
            };
            return new PluginLoadResult(package, null);
        }
        catch (Exception ex)
        {
            // Whatever a plugin's loading throws refuses that plugin, never the sidecar.
            loader?.Dispose();
            return new PluginLoadResult(null, $"cannot load: {ex.Message}");
        }
    }

    /// <summary>SHA-256 of the bytes, as hex.</summary>
    public static string Hash(byte[] bytes) => Convert.ToHexString(SHA256.HashData(bytes));

    private static (IReadOnlyList<IRequestFilterFactory>, IReadOnlyList<IConnectionFilterFactory>)? FindFactories(Assembly assembly, out string refusal)
    {
        Type[] types;
        try
        {
            types = assembly.GetTypes();
        }
        catch (ReflectionTypeLoadException ex)
        {
            var first = ex.LoaderExceptions.FirstOrDefault(e => e is not null);
            refusal = $"cannot load its types: {first?.Message ?? ex.Message}";
            return null;
        }

        var request = new List<IRequestFilterFactory>();
        var connection = new List<IConnectionFilterFactory>();
        var names = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
        foreach (var type in types.OrderBy(t => t.FullName, StringComparer.Ordinal))
        {
            var isRequest = typeof(IRequestFilterFactory).IsAssignableFrom(type);
            var isConnection = typeof(IConnectionFilterFactory).IsAssignableFrom(type);
            if ((!isRequest && !isConnection) || type.IsAbstract || type.IsInterface || !type.IsVisible)
            {
                continue;
            }

            if (type.GetConstructor(Type.EmptyTypes) is null)
            {
                refusal = $"factory {type.FullName} has no public parameterless constructor";
                return null;
            }

            object factory;
            try
            {
                factory = Activator.CreateInstance(type)!;
            }
            catch (Exception ex) when (ex is TargetInvocationException or TypeInitializationException && ex.InnerException is not null)
            {
                var inner = ex.InnerException!;
                refusal = $"constructor of {type.FullName} threw {inner.GetType().Name}: {inner.Message}";
                return null;
            }

            if (isRequest && !ImplementsCreate(type))
            {
                refusal = $"factory {type.FullName} implements neither Create(FilterSettings) nor Create(IReadOnlyDictionary<string, string>)";
                return null;
            }

            foreach (var name in NamesOf(factory, isRequest, isConnection))
            {
                if (name is null || !NamePattern().IsMatch(name))
                {
                    refusal = $"factory {type.FullName} has an invalid Name '{name}' (letters, digits, '.', '_' and '-')";
                    return null;
                }
            }

            if (isRequest)
            {
                var requestFactory = (IRequestFilterFactory)factory;
                if (!names.Add(requestFactory.Name))
                {
                    refusal = $"two factories are named '{requestFactory.Name}'";
                    return null;
                }

                request.Add(requestFactory);
            }

            if (isConnection)
            {
                var connectionFactory = (IConnectionFilterFactory)factory;
                if ((!isRequest || !string.Equals(connectionFactory.Name, ((IRequestFilterFactory)factory).Name, StringComparison.OrdinalIgnoreCase)) && !names.Add(connectionFactory.Name))
                {
                    refusal = $"two factories are named '{connectionFactory.Name}'";
                    return null;
                }

                connection.Add(connectionFactory);
            }
        }

        if (request.Count == 0 && connection.Count == 0)
        {
            refusal = "no public IRequestFilterFactory or IConnectionFilterFactory with a parameterless constructor";
            return null;
        }

        refusal = "";
        return (request, connection);
    }

    private static IEnumerable<string?> NamesOf(object factory, bool isRequest, bool isConnection)
    {
        var names = new List<string?>();
        try
        {
            if (isRequest)
            {
                names.Add(((IRequestFilterFactory)factory).Name);
            }

            if (isConnection)
            {
                names.Add(((IConnectionFilterFactory)factory).Name);
            }
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            names.Add(null);
        }

        return names;
    }

    // A factory built against contract 1.0 implements the string-pair Create; a newer one Create(FilterSettings).
    // Neither means both are the interface's defaults, which call each other.
    private static bool ImplementsCreate(Type type)
    {
        var map = type.GetInterfaceMap(typeof(IRequestFilterFactory));
        for (var i = 0; i < map.InterfaceMethods.Length; i++)
        {
            if (map.InterfaceMethods[i].Name == nameof(IRequestFilterFactory.Create) && map.TargetMethods[i].DeclaringType != typeof(IRequestFilterFactory))
            {
                return true;
            }
        }

        return false;
    }

    private static string VersionOf(Assembly assembly)
    {
        var informational = assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion;
        if (!string.IsNullOrEmpty(informational))
        {
            var plus = informational.IndexOf('+', StringComparison.Ordinal);
            return plus > 0 ? informational[..plus] : informational;
        }

        return assembly.GetName().Version?.ToString() ?? "0.0.0.0";
    }

    [GeneratedRegex("^[A-Za-z0-9][A-Za-z0-9._-]*$")]
    private static partial Regex NamePattern();
}
