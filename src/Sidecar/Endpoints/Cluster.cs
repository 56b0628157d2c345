// A service at runtime: its endpoints, its balancer and how to talk to it upstream.
using System.Collections.Concurrent;
using Mesh.Sidecar.LoadBalancing;
using Mesh.Sidecar.Security.Tls;
using Mesh.Sidecar.Upstream.Http1;
using Yarp.ReverseProxy.Forwarder;

namespace Mesh.Sidecar.Endpoints;

/// <summary>An immutable runtime service, rebuilt whole when its config or endpoints change.</summary>
internal sealed class Cluster(
    string name,
    string policy,
    EndpointState[] endpoints,
    LoadBalancer balancer,
    HashKeySelector? hashKey,
    HttpMessageInvoker invoker,
    ForwarderRequestConfig requestConfig,
    Http1Settings? http1 = null,
    UpstreamTls? tls = null)
{
    public string Name { get; } = name;

    public string Policy { get; } = policy;

    public EndpointState[] Endpoints { get; } = endpoints;

    public LoadBalancer Balancer { get; } = balancer;

    /// <summary>Null unless the policy hashes a request attribute.</summary>
    public HashKeySelector? HashKey { get; } = hashKey;

    public HttpMessageInvoker Invoker { get; } = invoker;

    public ForwarderRequestConfig RequestConfig { get; } = requestConfig;

    /// <summary>Set when requests may go through Mesh's own HTTP/1.1 client instead of YARP's forwarder.</summary>
    public Http1Settings? Http1 { get; } = http1;

    /// <summary>Set when endpoints are reached over TLS (<c>mesh</c> or <c>tls</c> mode); L4 listeners open TLS with it.</summary>
    public UpstreamTls? Tls { get; } = tls;

    // Subsets that filters rerouted to, built on first use; the cluster is rebuilt (and this emptied) on every endpoint change.
    private const int MaxCachedSubsets = 64;
    private readonly ConcurrentDictionary<string, LoadBalancer> _subsets = new(StringComparer.Ordinal);

    /// <summary>
    /// A balancer (same policy) over the endpoints carrying <paramref name="tag"/>: the subset a filter
    /// asked for with <c>FilterResult.Reroute(service, subset)</c>. It shares the endpoints' live counts.
    /// </summary>
    public LoadBalancer SubsetBalancer(string tag)
    {
        if (_subsets.TryGetValue(tag, out var balancer))
        {
            return balancer;
        }

        var members = new List<EndpointState>();
        foreach (var endpoint in Endpoints)
        {
            if (endpoint.Endpoint.Tags.Contains(tag, StringComparer.Ordinal))
            {
                members.Add(endpoint);
            }
        }

        balancer = LoadBalancer.Create(Policy, [.. members]);
        return _subsets.Count < MaxCachedSubsets ? _subsets.GetOrAdd(tag, balancer) : balancer;
    }
}
