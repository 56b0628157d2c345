// Merges every filter source's packages into one registry: accepts, refuses, replaces and retires packages.
namespace Mesh.Plugins;

/// <summary>A refused attempt to load a unit.</summary>
/// <param name="Source">The source's name.</param>
/// <param name="Id">The unit.</param>
/// <param name="File">The file refused.</param>
/// <param name="Reason">Why.</param>
/// <param name="At">When.</param>
public sealed record FilterRefusal(string Source, string Id, string File, string Reason, DateTimeOffset At);

/// <summary>One unit as the admin API shows it: the version serving (if any) and the last refusal (if the latest attempt failed).</summary>
/// <param name="Id">The unit.</param>
/// <param name="Source">The source's name.</param>
/// <param name="Loaded">The package serving, or null.</param>
/// <param name="Refusal">The refusal of the latest attempt, or null when it loaded.</param>
public sealed record FilterUnitView(string Id, string Source, FilterPackage? Loaded, FilterRefusal? Refusal);

/// <summary>
/// The accepted packages of every source and the registry they make. Changes are proposed
/// (a candidate registry the runtime tries to build routing state with) and then accepted or
/// refused; the registry only ever holds packages whose filters built. Writers are serialised by
/// the caller (the sidecar's apply gate); readers (the admin API) may read at any time.
/// </summary>
public sealed class FilterCatalog
{
    private const int RetiredKept = 32;
    private readonly object _gate = new();
    private readonly IRequestFilterFactory[] _builtIn;
    private readonly SortedDictionary<string, FilterPackage> _accepted = new(StringComparer.Ordinal);
    private readonly Dictionary<string, FilterRefusal> _refusals = new(StringComparer.Ordinal);
    private readonly LinkedList<FilterPackage> _retired = new();
    private FilterRegistry _registry;

    /// <summary>Creates a catalog with the sidecar's built-in factories.</summary>
    public FilterCatalog(IEnumerable<IRequestFilterFactory>? builtIn = null)
    {
        _builtIn = [.. builtIn ?? []];
        _registry = new FilterRegistry(_builtIn, []);
    }

    /// <summary>The registry of every accepted package.</summary>
    public FilterRegistry Registry
    {
        get
        {
            lock (_gate)
            {
                return _registry;
            }
        }
    }

    /// <summary>
    /// The registry with <paramref name="package"/> in place of its unit's current version, or a
    /// reason it cannot be (a factory name another unit already publishes).
    /// </summary>
    public FilterRegistry? Propose(FilterPackage package, out string? conflict) => Propose(package, out conflict, out _);

    /// <summary>As <see cref="Propose(FilterPackage, out string?)"/>, also naming the unit that already publishes a conflicting name.</summary>
    public FilterRegistry? Propose(FilterPackage package, out string? conflict, out string? conflictingUnit)
    {
        ArgumentNullException.ThrowIfNull(package);
        conflictingUnit = null;
        lock (_gate)
        {
            foreach (var name in package.FactoryNames)
            {
                foreach (var other in _accepted.Values)
                {
                    if (other.Id != package.Id && other.FactoryNames.Contains(name, StringComparer.OrdinalIgnoreCase))
                    {
                        conflict = $"filter name '{name}' is already published by {other.File}";
                        conflictingUnit = other.Id;
                        return null;
                    }
                }
            }

            conflict = null;
            var packages = _accepted.Values.Where(p => p.Id != package.Id).Append(package).OrderBy(p => p.Id, StringComparer.Ordinal).ToList();
            return new FilterRegistry(_builtIn, packages);
        }
    }

    /// <summary>The registry without unit <paramref name="id"/>.</summary>
    public FilterRegistry ProposeRemoval(string id)
    {
        ArgumentNullException.ThrowIfNull(id);
        lock (_gate)
        {
            return new FilterRegistry(_builtIn, [.. _accepted.Values.Where(p => p.Id != id)]);
        }
    }

    /// <summary>
    /// Makes <paramref name="package"/> its unit's version (after the state built with it was swapped
    /// in); the version it replaces is retired and unloads once its last filter closes.
    /// </summary>
    public void Accept(FilterPackage package)
    {
        ArgumentNullException.ThrowIfNull(package);
        FilterPackage? replaced;
        lock (_gate)
        {
            _accepted.TryGetValue(package.Id, out replaced);
            _accepted[package.Id] = package;
            _refusals.Remove(package.Id);
            Rebuild();
            if (replaced is not null)
            {
                Remember(replaced);
            }
        }

        replaced?.Retire();
    }

    /// <summary>Refuses a unit's new version; the version serving (if any) stays. A loaded package is unloaded.</summary>
    public void Refuse(FilterRefusal refusal, FilterPackage? package = null)
    {
        ArgumentNullException.ThrowIfNull(refusal);
        lock (_gate)
        {
            _refusals[refusal.Id] = refusal;
        }

        package?.Retire();
    }

    /// <summary>Removes a unit (after the state built without it was swapped in); its package unloads once drained.</summary>
    public void Remove(string id)
    {
        ArgumentNullException.ThrowIfNull(id);
        FilterPackage? removed;
        lock (_gate)
        {
            _refusals.Remove(id);
            if (_accepted.Remove(id, out removed))
            {
                Rebuild();
                Remember(removed);
            }
        }

        removed?.Retire();
    }

    /// <summary>Every unit with its serving version and latest refusal, by id.</summary>
    public IReadOnlyList<FilterUnitView> Units()
    {
        lock (_gate)
        {
            var ids = _accepted.Keys.Concat(_refusals.Keys).Distinct().Order(StringComparer.Ordinal);
            return [.. ids.Select(id => new FilterUnitView(
                id,
                _accepted.TryGetValue(id, out var p) ? p.Source : _refusals[id].Source,
                _accepted.GetValueOrDefault(id),
                _refusals.GetValueOrDefault(id)))];
        }
    }

    /// <summary>Packages replaced or removed lately (newest first), draining or unloaded.</summary>
    public IReadOnlyList<FilterPackage> Retired()
    {
        lock (_gate)
        {
            return [.. _retired];
        }
    }

    private void Rebuild() => _registry = new FilterRegistry(_builtIn, [.. _accepted.Values]);

    private void Remember(FilterPackage package)
    {
        _retired.AddFirst(package);
        while (_retired.Count > RetiredKept)
        {
            _retired.RemoveLast();
        }
    }
}
