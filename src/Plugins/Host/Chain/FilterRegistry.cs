// Finds filter factories by name; built-in and plugin filters register here alike.
namespace Mesh.Plugins;

/// <summary>The filter factories known to the sidecar, by name (case-insensitive).</summary>
public sealed class FilterRegistry
{
    private readonly Dictionary<string, IRequestFilterFactory> _factories = new(StringComparer.OrdinalIgnoreCase);

    /// <summary>Creates a registry holding <paramref name="factories"/>.</summary>
    public FilterRegistry(IEnumerable<IRequestFilterFactory> factories)
    {
        ArgumentNullException.ThrowIfNull(factories);
        foreach (var factory in factories)
        {
            _factories[factory.Name] = factory;
        }
    }

    /// <summary>Names of every registered filter.</summary>
    public IReadOnlyCollection<string> Names => _factories.Keys;

    /// <summary>Finds a factory by name.</summary>
    public bool TryGet(string name, out IRequestFilterFactory factory)
    {
        ArgumentNullException.ThrowIfNull(name);
        return _factories.TryGetValue(name, out factory!);
    }
}
