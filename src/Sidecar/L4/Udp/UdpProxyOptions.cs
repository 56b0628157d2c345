// Limits of the UDP L4 proxy: how long an idle flow lives and how many flows may exist at once.
namespace Mesh.Sidecar.L4.Udp;

/// <summary>Settings of one <see cref="UdpProxy"/>.</summary>
internal sealed record UdpProxyOptions
{
    /// <summary>A flow with no datagram in either direction for this long is closed. Default 60 s.</summary>
    public TimeSpan FlowIdleTimeout { get; init; } = TimeSpan.FromSeconds(60);

    /// <summary>Flows open at once; datagrams that would open one more are dropped and counted. Default 65536.</summary>
    public int MaxFlows { get; init; } = 65536;
}
