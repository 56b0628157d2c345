// An immutable view of every service a provider knows, with a version that grows on each change.
namespace Mesh.Discovery;

/// <summary>Every service a provider knows at one moment, with its healthy endpoints.</summary>
/// <param name="Provider">Name of the provider that produced the snapshot (for example <c>static</c>).</param>
/// <param name="Version">Grows by at least one on every change.</param>
/// <param name="Services">Healthy endpoints by service name (ordinal, case-sensitive names).</param>
public sealed record CatalogSnapshot(
    string Provider,
    long Version,
    IReadOnlyDictionary<string, IReadOnlyList<ServiceEndpoint>> Services)
{
    /// <summary>An empty snapshot for a provider that has not reported yet.</summary>
    public static CatalogSnapshot Empty(string provider) =>
        new(provider, 0, new Dictionary<string, IReadOnlyList<ServiceEndpoint>>(StringComparer.Ordinal));

    /// <summary>The healthy endpoints of <paramref name="service"/>, or an empty list when it is unknown.</summary>
    public IReadOnlyList<ServiceEndpoint> EndpointsOf(string service)
    {
        ArgumentNullException.ThrowIfNull(service);
        return Services.TryGetValue(service, out var endpoints) ? endpoints : [];
    }
}
