// Finds filter factories by name; built-in, C# plugin and (later) JavaScript filters register here alike.
namespace Mesh.Plugins;

/// <summary>
/// An immutable snapshot of the filter factories known to the sidecar, by name (case-insensitive),
/// each with the package it came from. Filter sources publish packages; the catalog merges them
/// into one registry, which is swapped together with the routing state it built.
/// </summary>
public sealed class FilterRegistry
{
    private readonly Dictionary<string, IRequestFilterFactory> _factories = new(StringComparer.OrdinalIgnoreCase);
    private readonly Dictionary<string, IConnectionFilterFactory> _connectionFactories = new(StringComparer.OrdinalIgnoreCase);
    private readonly Dictionary<string, FilterPackage> _packages = new(StringComparer.OrdinalIgnoreCase);

    /// <summary>A registry with no factories.</summary>
    public static FilterRegistry Empty { get; } = new([]);

    /// <summary>Creates a registry holding <paramref name="factories"/> (built-in filters; a later name wins).</summary>
    public FilterRegistry(IEnumerable<IRequestFilterFactory> factories)
    {
        ArgumentNullException.ThrowIfNull(factories);
        foreach (var factory in factories)
        {
            _factories[factory.Name] = factory;
        }

        Packages = [];
    }

    /// <summary>Creates a registry of built-in factories plus every factory of <paramref name="packages"/> (a later name wins).</summary>
    public FilterRegistry(IEnumerable<IRequestFilterFactory> builtIn, IReadOnlyList<FilterPackage> packages)
        : this(builtIn)
    {
        ArgumentNullException.ThrowIfNull(packages);
        foreach (var package in packages)
        {
            foreach (var factory in package.RequestFactories)
            {
                _factories[factory.Name] = factory;
                _packages[factory.Name] = package;
            }

            foreach (var factory in package.ConnectionFactories)
            {
                _connectionFactories[factory.Name] = factory;
                _packages[factory.Name] = package;
            }
        }

        Packages = packages;
    }

    /// <summary>Names of every registered request filter.</summary>
    public IReadOnlyCollection<string> Names => _factories.Keys;

    /// <summary>Names of every registered connection filter.</summary>
    public IReadOnlyCollection<string> ConnectionNames => _connectionFactories.Keys;

    /// <summary>The packages whose factories are in the registry.</summary>
    public IReadOnlyList<FilterPackage> Packages { get; }

    /// <summary>Finds a request filter factory by name.</summary>
    public bool TryGet(string name, out IRequestFilterFactory factory)
    {
        ArgumentNullException.ThrowIfNull(name);
        return _factories.TryGetValue(name, out factory!);
    }

    /// <summary>Finds a connection filter factory by name.</summary>
    public bool TryGetConnection(string name, out IConnectionFilterFactory factory)
    {
        ArgumentNullException.ThrowIfNull(name);
        return _connectionFactories.TryGetValue(name, out factory!);
    }

    /// <summary>The package that published <paramref name="name"/>; null for built-in filters and unknown names.</summary>
    public FilterPackage? PackageOf(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        return _packages.GetValueOrDefault(name);
    }
}
