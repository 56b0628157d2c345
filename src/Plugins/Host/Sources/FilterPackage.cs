// One loaded unit of filters (a plugin DLL or folder; later a JavaScript file): its factories and its lifetime.
namespace Mesh.Plugins;

/// <summary>Where a package stands in its life.</summary>
public enum PackageState
{
    /// <summary>Its factories are in the registry.</summary>
    Loaded,

    /// <summary>Replaced or removed; filters made from it still serve requests that started before the swap.</summary>
    Draining,

    /// <summary>No filter of it is in use; its load context was told to unload (the runtime collects it once unreferenced).</summary>
    Unloaded,
}

/// <summary>
/// The factories one file (or plugin folder) publishes. A source loads a package; the catalog accepts
/// it into the registry or refuses it; a swap retires it, and once every filter made from it has
/// served its last request the package unloads (for C# plugins: the collectible load context).
/// </summary>
public sealed class FilterPackage
{
    private readonly object _gate = new();
    private Action? _unload;
    private int _instances;
    private bool _retired;
    private bool _unloaded;

    /// <summary>Creates a package.</summary>
    /// <param name="source">The source's name (<c>csharp</c>, <c>javascript</c>).</param>
    /// <param name="id">What identifies the unit across versions: its path under the source's directory.</param>
    /// <param name="file">The file loaded (the main assembly of a plugin folder).</param>
    /// <param name="requestFactories">Request filter factories it publishes.</param>
    /// <param name="connectionFactories">Connection filter factories it publishes.</param>
    /// <param name="unload">Called once when the package unloads.</param>
    public FilterPackage(
        string source,
        string id,
        string file,
        IReadOnlyList<IRequestFilterFactory> requestFactories,
        IReadOnlyList<IConnectionFilterFactory> connectionFactories,
        Action? unload = null)
    {
        ArgumentNullException.ThrowIfNull(source);
        ArgumentNullException.ThrowIfNull(id);
        ArgumentNullException.ThrowIfNull(file);
        ArgumentNullException.ThrowIfNull(requestFactories);
        ArgumentNullException.ThrowIfNull(connectionFactories);
        Source = source;
        Id = id;
        File = file;
        RequestFactories = requestFactories;
        ConnectionFactories = connectionFactories;
        _unload = unload;
    }

    /// <summary>The source that loaded it.</summary>
    public string Source { get; }

    /// <summary>The unit's identity across versions.</summary>
    public string Id { get; }

    /// <summary>The file loaded.</summary>
    public string File { get; }

    /// <summary>Version of the unit (the assembly's informational or assembly version); null when it has none.</summary>
    public string? Version { get; init; }

    /// <summary>The contract version it was built against (for C# plugins: its Mesh.Plugins.Abstractions reference).</summary>
    public string? ContractVersion { get; init; }

    /// <summary>Hash of the content loaded; an unchanged file is not loaded again.</summary>
    public string ContentHash { get; init; } = "";

    /// <summary>When it was loaded.</summary>
    public DateTimeOffset LoadedAt { get; init; } = DateTimeOffset.UtcNow;

    /// <summary>The load context, weakly: alive until the runtime has collected the unloaded plugin.</summary>
    public WeakReference? LoadContext { get; init; }

    /// <summary>Request filter factories.</summary>
    public IReadOnlyList<IRequestFilterFactory> RequestFactories { get; private set; }

    /// <summary>Connection filter factories.</summary>
    public IReadOnlyList<IConnectionFilterFactory> ConnectionFactories { get; private set; }

    /// <summary>Names of every factory it publishes.</summary>
    public IEnumerable<string> FactoryNames => RequestFactories.Select(f => f.Name).Concat(ConnectionFactories.Select(f => f.Name));

    /// <summary>Raised once, right after the package unloaded.</summary>
    public event Action<FilterPackage>? Unloaded;

    /// <summary>Filters made from it that have not closed yet.</summary>
    public int LiveInstances
    {
        get
        {
            lock (_gate)
            {
                return _instances;
            }
        }
    }

    /// <summary>Where it stands.</summary>
    public PackageState State
    {
        get
        {
            lock (_gate)
            {
                return !_retired ? PackageState.Loaded : _unloaded ? PackageState.Unloaded : PackageState.Draining;
            }
        }
    }

    /// <summary>A filter was made from one of its factories.</summary>
    public void AddInstance()
    {
        lock (_gate)
        {
            _instances++;
        }
    }

    /// <summary>A filter made from it closed.</summary>
    public void ReleaseInstance()
    {
        Action? unload;
        lock (_gate)
        {
            _instances--;
            unload = TakeUnload();
        }

        RunUnload(unload);
    }

    /// <summary>No registry holds it any more: unload once its last filter closes (now, if none is open).</summary>
    public void Retire()
    {
        Action? unload;
        lock (_gate)
        {
            _retired = true;
            unload = TakeUnload();
        }

        RunUnload(unload);
    }

    private void RunUnload(Action? unload)
    {
        if (unload is null)
        {
            return;
        }

        unload();
        Unloaded?.Invoke(this);
        Unloaded = null;
    }

    // Drops every strong reference into the load context before unloading it, so it can be collected.
    private Action? TakeUnload()
    {
        if (!_retired || _instances > 0 || _unloaded)
        {
            return null;
        }

        var unload = _unload ?? (static () => { });
        _unload = null;
        _unloaded = true;
        RequestFactories = [];
        ConnectionFactories = [];
        return unload;
    }
}
