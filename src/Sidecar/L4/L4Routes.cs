// The L4 routing state of one listener: its default service and its SNI routes, resolved to clusters.
using Mesh.Sidecar.Configuration;
using Mesh.Sidecar.Endpoints;
using Mesh.Sidecar.Routing;

namespace Mesh.Sidecar.L4;

/// <summary>An SNI route compiled from config.</summary>
internal sealed class SniRoute(string name, HostMatcher[] serverNames, string[] alpn, Cluster cluster)
{
    public string Name { get; } = name;

    public Cluster Cluster { get; } = cluster;

    public bool Matches(string serverName, IReadOnlyList<string> offeredAlpn)
    {
        var nameMatches = false;
        foreach (var matcher in serverNames)
        {
            if (matcher.Matches(serverName))
            {
                nameMatches = true;
                break;
            }
        }

        if (!nameMatches)
        {
            return false;
        }

        if (alpn.Length == 0)
        {
            return true;
        }

        foreach (var wanted in alpn)
        {
            foreach (var offered in offeredAlpn)
            {
                if (string.Equals(wanted, offered, StringComparison.Ordinal))
                {
                    return true;
                }
            }
        }

        return false;
    }
}

/// <summary>Per-listener L4 state inside a <see cref="Translation.MeshState"/>.</summary>
internal sealed class L4Routes(ListenerOptions listener, Cluster? defaultCluster, SniRoute[] sniRoutes)
{
    public ListenerOptions Listener { get; } = listener;

    /// <summary>The listener's <c>service</c>: TCP/UDP target, TLS default, auto fall-through.</summary>
    public Cluster? DefaultCluster { get; } = defaultCluster;

    public SniRoute[] SniRoutes { get; } = sniRoutes;

    /// <summary>Routes a ClientHello: first matching SNI route, else the default (unless no SNI and refused).</summary>
    public (Cluster? Cluster, string Route) RouteTls(string? serverName, IReadOnlyList<string> alpn)
    {
        if (serverName is null)
        {
            return Listener.Tls.NoSni == NoSniActions.Refuse ? (null, "no-sni") : (DefaultCluster, "default");
        }

        foreach (var route in SniRoutes)
        {
            if (route.Matches(serverName, alpn))
            {
                return (route.Cluster, route.Name);
            }
        }

        return (DefaultCluster, "default");
    }
}
