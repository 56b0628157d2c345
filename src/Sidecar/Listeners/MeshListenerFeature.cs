// Connection feature telling the data path which Mesh listener accepted the connection.
namespace Mesh.Sidecar.Listeners;

/// <summary>What kind of traffic a bound socket carries.</summary>
internal enum ListenerKind
{
    /// <summary>Proxied traffic (inbound or outbound).</summary>
    Proxy,

    /// <summary>The admin API.</summary>
    Admin,
}

/// <summary>Identity of the Mesh listener that accepted a connection; set at accept, read per request.</summary>
internal sealed class MeshListenerFeature(string name, ListenerKind kind, bool inbound)
{
    public string Name { get; } = name;

    public ListenerKind Kind { get; } = kind;

    public bool Inbound { get; } = inbound;
}
