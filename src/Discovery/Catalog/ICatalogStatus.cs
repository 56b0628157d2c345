// Optional provider interface: how fresh each service's endpoints are, for admin and metrics.
namespace Mesh.Discovery;

/// <summary>Implemented by providers whose endpoints come from elsewhere and can go stale (Consul).</summary>
public interface ICatalogStatus
{
    /// <summary>The sync state of <paramref name="service"/>, or null when the provider does not serve it.</summary>
    ServiceSyncStatus? SyncStatusOf(string service);
}

/// <summary>How fresh a service's endpoints are.</summary>
/// <param name="Source">The provider name (<c>consul</c>).</param>
/// <param name="Upstream">What the provider reads (the Consul service name).</param>
/// <param name="Synced">True while the last read succeeded; false while the source is unreachable or not read yet.</param>
/// <param name="LastSync">When the source last answered; null when it never did.</param>
/// <param name="Staleness">Zero while synced; otherwise how long the endpoints have not been confirmed.</param>
/// <param name="LastError">Why the last read failed, while not synced.</param>
/// <param name="Index">The provider's change index (Consul's <c>X-Consul-Index</c>).</param>
public sealed record ServiceSyncStatus(
    string Source,
    string Upstream,
    bool Synced,
    DateTimeOffset? LastSync,
    TimeSpan Staleness,
    string? LastError,
    ulong Index);
