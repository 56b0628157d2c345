// Creates connection filters from a listener's connectionFilters entries; found by name like request filters.
namespace Mesh.Plugins;

/// <summary>Creates <see cref="IConnectionFilter"/> instances for <c>listeners[].connectionFilters</c>; found by <see cref="Name"/>.</summary>
public interface IConnectionFilterFactory
{
    /// <summary>The name listeners use to ask for this filter.</summary>
    string Name { get; }

    /// <summary>Validates the entry's <c>config</c> once and returns the filter; throw <see cref="FilterConfigException"/> on a bad setting.</summary>
    IConnectionFilter Create(FilterSettings settings);
}
