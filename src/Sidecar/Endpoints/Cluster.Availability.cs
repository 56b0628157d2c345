// Which of a service's endpoints take traffic now, and subsets of them by tag; rebuilt when an endpoint goes out or comes back.
using System.Collections.Concurrent;
using Mesh.Sidecar.LoadBalancing;
using Mesh.Sidecar.Resilience;

namespace Mesh.Sidecar.Endpoints;

/// <summary>
/// The cluster's balancer covers only available endpoints: health checks, outlier ejection and open
/// breakers take endpoints out, L7 and L4 alike. Changes are rare, so each one rebuilds the balancer
/// and swaps it whole; a pick stays one volatile read and the policy's own arithmetic.
/// </summary>
internal sealed partial class Cluster
{
    private const int MaxCachedSubsets = 64;
    private readonly Lock _refresh = new();
    private ConcurrentDictionary<string, LoadBalancer> _subsets = new(StringComparer.Ordinal);

    /// <summary>Retries, breakers and outlier detection of the service; null when it has none.</summary>
    public ServiceResilience? Resilience { get; init; }

    /// <summary>Takes over the endpoints' availability changes (this is the newest snapshot) and builds the balancer over the available ones.</summary>
    public void Activate()
    {
        foreach (var endpoint in Endpoints)
        {
            endpoint.AdoptOwner(this);
        }

        RefreshAvailability();
    }

    /// <summary>Rebuilds the balancer over the endpoints available now. Serialised, so the last rebuild sees the latest flags.</summary>
    public void RefreshAvailability()
    {
        lock (_refresh)
        {
            // One read of each endpoint's flags: they change outside this lock, and a change made after
            // its read here is followed by another refresh, which reads it.
            var available = new List<EndpointState>(Endpoints.Length);
            foreach (var endpoint in Endpoints)
            {
                if (endpoint.IsAvailable)
                {
                    available.Add(endpoint);
                }
            }

            var current = Volatile.Read(ref _available);
            LoadBalancer next;
            if (available.Count == Endpoints.Length)
            {
                if (ReferenceEquals(current.Endpoints, Endpoints))
                {
                    return;
                }

                next = LoadBalancer.Create(Policy, Endpoints);
            }
            else
            {
                next = LoadBalancer.Create(Policy, [.. available]);
            }

            Volatile.Write(ref _available, next);
            Volatile.Write(ref _subsets, new ConcurrentDictionary<string, LoadBalancer>(StringComparer.Ordinal));
        }
    }

    /// <summary>
    /// A balancer (same policy) over the available endpoints carrying <paramref name="tag"/>: the subset
    /// a route's split or a filter's <c>FilterResult.Reroute(service, subset)</c> asked for. Built on first
    /// use and dropped whenever availability changes (and with the cluster on every endpoint change). It
    /// shares the endpoints' live counts.
    /// </summary>
    public LoadBalancer SubsetBalancer(string tag)
    {
        var subsets = Volatile.Read(ref _subsets);
        if (subsets.TryGetValue(tag, out var subset))
        {
            return subset;
        }

        var members = new List<EndpointState>();
        foreach (var endpoint in Balancer.Endpoints)
        {
            if (endpoint.Endpoint.Tags.Contains(tag, StringComparer.Ordinal))
            {
                members.Add(endpoint);
            }
        }

        subset = LoadBalancer.Create(Policy, [.. members]);
        return subsets.Count < MaxCachedSubsets ? subsets.GetOrAdd(tag, subset) : subset;
    }
}
