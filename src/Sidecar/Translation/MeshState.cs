// The whole routing state as one immutable snapshot, swapped atomically on every change.
using Mesh.Sidecar.Configuration;
using Mesh.Sidecar.Endpoints;
using Mesh.Sidecar.Filters;
using Mesh.Sidecar.L4;
using Mesh.Sidecar.Routing;
using Microsoft.Extensions.Primitives;

namespace Mesh.Sidecar.Translation;

/// <summary>Routes per listener and clusters per service, built from one config and the discovery snapshots.</summary>
internal sealed class MeshState(
    MeshOptions options,
    long version,
    IReadOnlyDictionary<string, RouteTable> routesByListener,
    IReadOnlyDictionary<string, Cluster> clusters,
    IReadOnlyDictionary<string, L4Routes> l4Listeners,
    FilterPlan? filters = null)
{
    public MeshOptions Options { get; } = options;

    public long Version { get; } = version;

    public IReadOnlyDictionary<string, RouteTable> RoutesByListener { get; } = routesByListener;

    public IReadOnlyDictionary<string, Cluster> Clusters { get; } = clusters;

    public IReadOnlyDictionary<string, L4Routes> L4Listeners { get; } = l4Listeners;

    /// <summary>Every filter chain of this snapshot (per route and per listener) and the registry they came from.</summary>
    public FilterPlan Filters { get; } = filters ?? FilterPlan.Empty;

    public RouteTable RoutesFor(string listener) => RoutesByListener.TryGetValue(listener, out var table) ? table : RouteTable.Empty;
}

/// <summary>Holds the current <see cref="MeshState"/>; readers never lock, writers swap the whole snapshot.</summary>
internal sealed class MeshStateStore
{
    private MeshState? _current;
    private CancellationTokenSource _changed = new();

    /// <summary>The current state; throws before the first config is applied.</summary>
    public MeshState Current => Volatile.Read(ref _current) ?? throw new InvalidOperationException("No configuration has been applied yet.");

    public bool HasState => Volatile.Read(ref _current) is not null;

    public void Swap(MeshState next)
    {
        Interlocked.Exchange(ref _current, next);
        var changed = Interlocked.Exchange(ref _changed, new CancellationTokenSource());
        changed.Cancel();
        changed.Dispose();
    }

    /// <summary>Fires once when the state is next swapped.</summary>
    public IChangeToken GetChangeToken() => new CancellationChangeToken(Volatile.Read(ref _changed).Token);
}
