// One healthy instance of a service as a discovery provider reports it.
namespace Mesh.Discovery;

/// <summary>An instance of a service that a discovery provider reports as healthy.</summary>
/// <param name="Address">IP address or host name the instance listens on.</param>
/// <param name="Port">TCP or UDP port of the instance.</param>
/// <param name="Weight">Relative share of traffic; 1 when the provider says nothing.</param>
/// <param name="Tags">Free-form tags (Consul tags, for example).</param>
/// <param name="Metadata">Free-form key/value metadata.</param>
public sealed record ServiceEndpoint(
    string Address,
    int Port,
    int Weight,
    IReadOnlyList<string> Tags,
    IReadOnlyDictionary<string, string> Metadata)
{
    private static readonly IReadOnlyDictionary<string, string> NoMetadata = new Dictionary<string, string>();

    /// <summary>Creates an endpoint with weight 1 and no tags or metadata.</summary>
    public ServiceEndpoint(string address, int port)
        : this(address, port, 1, [], NoMetadata)
    {
    }

    /// <summary>The endpoint as <c>address:port</c>, with IPv6 addresses in brackets.</summary>
    public string Authority => Address.Contains(':', StringComparison.Ordinal) ? $"[{Address}]:{Port}" : $"{Address}:{Port}";

    /// <summary>Two endpoints are the same instance when address and port match; weight and labels are attributes.</summary>
    public bool SameInstanceAs(ServiceEndpoint other)
    {
        ArgumentNullException.ThrowIfNull(other);
        return Port == other.Port && string.Equals(Address, other.Address, StringComparison.OrdinalIgnoreCase);
    }
}
