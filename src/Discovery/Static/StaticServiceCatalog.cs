// The embedded default provider: endpoints come from the sidecar's own configuration file.
namespace Mesh.Discovery.Static;

/// <summary>
/// Discovery from configuration: the sidecar hands it the endpoints written in its config file,
/// again on every reload, and it publishes them as a snapshot.
/// </summary>
public sealed class StaticServiceCatalog : IServiceCatalog
{
    /// <summary>The provider name used in configuration.</summary>
    public const string ProviderName = "static";

    private readonly SnapshotPublisher _publisher = new(ProviderName);

    /// <inheritdoc />
    public string Name => ProviderName;

    /// <inheritdoc />
    public CatalogSnapshot Current => _publisher.Current;

    /// <summary>Replaces every service's endpoints with <paramref name="services"/>.</summary>
    public CatalogSnapshot Update(IReadOnlyDictionary<string, IReadOnlyList<ServiceEndpoint>> services)
    {
        ArgumentNullException.ThrowIfNull(services);
        return _publisher.Publish(services);
    }

    /// <inheritdoc />
    public IAsyncEnumerable<CatalogSnapshot> WatchAsync(CancellationToken cancellationToken) =>
        _publisher.WatchAsync(cancellationToken);
}
