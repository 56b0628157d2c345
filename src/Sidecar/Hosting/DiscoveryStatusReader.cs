// Each service's discovery source and freshness, for /admin/clusters and the discovery metrics.
using Mesh.Discovery;
using Mesh.Sidecar.Metrics;
using Mesh.Sidecar.Translation;

namespace Mesh.Sidecar.Hosting;

/// <summary>Where a service's endpoints come from and how fresh they are.</summary>
internal sealed record ServiceDiscoveryView(string Service, string Source, int Endpoints, ServiceSyncStatus? Status)
{
    /// <summary>Seconds since the endpoints were last confirmed; 0 for config-defined ones and while synced.</summary>
    public double StalenessSeconds => Status?.Staleness.TotalSeconds ?? 0;
}

/// <summary>Reads each configured service's provider status from the current state.</summary>
internal sealed class DiscoveryStatusReader
{
    private readonly MeshStateStore _store;
    private readonly Dictionary<string, IServiceCatalog> _catalogs;

    public DiscoveryStatusReader(MeshStateStore store, IEnumerable<IServiceCatalog> catalogs, MeshMetrics metrics)
    {
        _store = store;
        _catalogs = catalogs.ToDictionary(c => c.Name, StringComparer.Ordinal);
        metrics.Discovery = Read;
    }

    public IReadOnlyList<ServiceDiscoveryView> Read()
    {
        if (!_store.HasState)
        {
            return [];
        }

        var state = _store.Current;
        var views = new List<ServiceDiscoveryView>(state.Options.Services.Count);
        foreach (var (name, service) in state.Options.Services)
        {
            views.Add(View(state, name, service.Discovery));
        }

        return views;
    }

    /// <summary>The view of one configured service; null for clusters that are not services (the local app).</summary>
    public ServiceDiscoveryView? Of(MeshState state, string service) =>
        state.Options.Services.TryGetValue(service, out var options) ? View(state, service, options.Discovery) : null;

    private ServiceDiscoveryView View(MeshState state, string name, string source)
    {
        var status = _catalogs.TryGetValue(source, out var catalog) && catalog is ICatalogStatus reporting ? reporting.SyncStatusOf(name) : null;
        var endpoints = state.Clusters.TryGetValue(name, out var cluster) ? cluster.Endpoints.Length : 0;
        return new ServiceDiscoveryView(name, source, endpoints, status);
    }
}
