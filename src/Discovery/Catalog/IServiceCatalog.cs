// The discovery abstraction: a source of catalog snapshots that the sidecar translates into clusters.
namespace Mesh.Discovery;

/// <summary>
/// A discovery provider. It knows nothing of listeners or routes: it only publishes snapshots of
/// healthy endpoints, and the sidecar turns them into its routing state.
/// </summary>
public interface IServiceCatalog
{
    /// <summary>Short name used in configuration (<c>static</c>, later <c>consul</c>).</summary>
    string Name { get; }

    /// <summary>The latest snapshot; never null.</summary>
    CatalogSnapshot Current { get; }

    /// <summary>
    /// Streams the current snapshot at once and then every later one. A slow reader skips
    /// intermediate snapshots and always sees the newest.
    /// </summary>
    IAsyncEnumerable<CatalogSnapshot> WatchAsync(CancellationToken cancellationToken);
}
