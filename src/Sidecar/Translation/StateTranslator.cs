// Turns config plus discovery snapshots into routes and clusters (one translator, as in Traefik).
using Mesh.Discovery;
using Mesh.Plugins;
using Mesh.Sidecar.Configuration;
using Mesh.Sidecar.Resilience;
using Mesh.Sidecar.Endpoints;
using Mesh.Sidecar.Filters;
using Mesh.Sidecar.Upstream.Http1;
using Mesh.Sidecar.L4;
using Mesh.Sidecar.LoadBalancing;
using Mesh.Sidecar.Routing;
using Mesh.Sidecar.Security.Tls;
using Mesh.Sidecar.Upstream;
using RouteOptions = Mesh.Sidecar.Configuration.RouteOptions;

namespace Mesh.Sidecar.Translation;

/// <summary>
/// Builds a <see cref="MeshState"/>. Providers know nothing of routes; the translator asks each
/// for the endpoints of the services that name it, and keeps endpoint objects (and their in-flight
/// counts) when an endpoint is unchanged.
/// </summary>
internal sealed class StateTranslator(UpstreamClients clients, UpstreamTlsClients tlsClients, ResilienceRuntime? resilience = null)
{
    /// <summary>Cluster-id prefix of the local app, which inbound listeners deliver to.</summary>
    public const string LocalClusterPrefix = "inbound:";

    private const string Scheme = "http";

    /// <summary>
    /// Builds the next state. <paramref name="filters"/> are the chains built for <paramref name="options"/>;
    /// when null (a discovery update of the same config) the previous state's chains are kept.
    /// </summary>
    public MeshState Build(MeshOptions options, IReadOnlyDictionary<string, IServiceCatalog> catalogs, MeshState? previous, long version, FilterPlan? filters = null)
    {
        filters ??= previous?.Filters ?? FilterPlan.Empty;
        var clusters = new Dictionary<string, Cluster>(StringComparer.Ordinal);
        foreach (var (name, service) in options.Services)
        {
            var endpoints = catalogs.TryGetValue(service.Discovery, out var catalog) ? catalog.Current.EndpointsOf(name) : [];
            clusters[name] = BuildCluster(name, service, endpoints, previous, options.Performance.MeshHttp1Client, tlsClients.For(name, service, options), resilience?.ForService(name, service));
        }

        var localId = LocalClusterPrefix + options.Service.Name;
        if (options.Service.Port > 0)
        {
            var local = UpstreamTlsClients.LocalApp(options);
            clusters[localId] = BuildCluster(localId, local, [new ServiceEndpoint(options.Service.Address, options.Service.Port)], previous, options.Performance.MeshHttp1Client, tlsClients.ForLocalApp(options, local));
        }

        var routes = new Dictionary<string, RouteTable>(StringComparer.Ordinal);
        var l4 = new Dictionary<string, L4Routes>(StringComparer.Ordinal);
        foreach (var listener in options.Listeners)
        {
            if (listener.Protocol != ListenerProtocols.Http)
            {
                l4[listener.Name] = BuildL4(listener, clusters);
            }

            if (!ListenerProtocols.CarriesHttp(listener.Protocol))
            {
                continue;
            }

            var inbound = listener.Direction == Directions.Inbound;
            var compiled = new List<CompiledRoute>();
            foreach (var route in options.Routes)
            {
                var applies = route.Listeners.Count == 0 ? !inbound : route.Listeners.Contains(listener.Name);
                if (applies)
                {
                    var clusterId = string.IsNullOrEmpty(route.Service) ? route.Split is { Count: > 0 } split ? split[0].Service : localId : route.Service;
                    compiled.Add(Compile(route, clusterId, filters.ChainFor(route.Name), resilience?.ForRoute(route)));
                }
            }

            if (inbound && clusters.ContainsKey(localId))
            {
                // Inbound traffic that no route claims goes to the local app.
                compiled.Add(new CompiledRoute { Name = "inbound", ClusterId = localId, ServiceName = options.Service.Name, Transformer = RouteTransformer.None });
            }

            routes[listener.Name] = new RouteTable([.. compiled]);
        }

        return new MeshState(options, version, routes, clusters, l4, filters);
    }

    private static L4Routes BuildL4(ListenerOptions listener, Dictionary<string, Cluster> clusters)
    {
        var defaultCluster = listener.Service is { Length: > 0 } service ? clusters.GetValueOrDefault(service) : null;
        var sni = new List<SniRoute>();
        foreach (var route in listener.Tls.Routes)
        {
            if (clusters.TryGetValue(route.Service, out var cluster))
            {
                sni.Add(new SniRoute(route.Name, [.. route.ServerNames.Select(n => new HostMatcher(n))], [.. route.Alpn], cluster));
            }
        }

        return new L4Routes(listener, defaultCluster, [.. sni]);
    }

    private Cluster BuildCluster(string name, ServiceOptions service, IReadOnlyList<ServiceEndpoint> endpoints, MeshState? previous, bool meshHttp1, UpstreamTls? tls = null, ServiceResilience? policies = null)
    {
        var states = new EndpointState[endpoints.Count];
        EndpointState[] old = previous is not null && previous.Clusters.TryGetValue(name, out var oldCluster) ? oldCluster.Endpoints : [];
        for (var i = 0; i < endpoints.Count; i++)
        {
            states[i] = Reuse(old, endpoints[i]) ?? new EndpointState(endpoints[i], Scheme, clients.Http1Pools);
        }

        var policy = service.LoadBalancing.Policy;
        var hashKey = policy == LoadBalancingPolicies.ConsistentHash && service.LoadBalancing.Hash is { } hash ? new HashKeySelector(hash) : null;
        var cluster = new Cluster(
            name,
            policy,
            states,
            LoadBalancer.Create(policy, states),
            hashKey,
            tls?.Invoker ?? clients.For(service.ConnectTimeoutMs),
            tls?.RequestConfig ?? UpstreamClients.RequestConfig(service.Protocol, service.RequestTimeoutMs),
            // TLS services (mesh, tls) go through YARP, whose handler carries the TLS session.
            meshHttp1 && service.Protocol == UpstreamProtocols.Http1 && tls is null ? new Http1Settings(service.ConnectTimeoutMs, service.RequestTimeoutMs) : null,
            tls)
        {
            Resilience = policies,
        };

        // Endpoints out of rotation (ejected, failing checks, open breakers) stay out in the new snapshot.
        cluster.Activate();
        return cluster;
    }

    private static EndpointState? Reuse(EndpointState[] old, ServiceEndpoint endpoint)
    {
        foreach (var state in old)
        {
            // Tags are kept equal too: Consul can retag an instance (a canary), and routes and filters read them.
            if (state.Endpoint.SameInstanceAs(endpoint) && state.Weight == Math.Max(1, endpoint.Weight) && state.Endpoint.Tags.SequenceEqual(endpoint.Tags))
            {
                return state;
            }
        }

        return null;
    }

    private static CompiledRoute Compile(RouteOptions route, string clusterId, FilterChain filters, RoutePolicy? policy)
    {
        var match = route.Match;
        return new CompiledRoute
        {
            Name = route.Name,
            ClusterId = clusterId,
            ServiceName = route.Split is { Count: > 0 } targets ? SplitName(targets) : clusterId.StartsWith(LocalClusterPrefix, StringComparison.Ordinal) ? clusterId[LocalClusterPrefix.Length..] : clusterId,
            Hosts = [.. match.Hosts.Select(h => new HostMatcher(h))],
            Path = match.Path is null ? null : PathMatcher.Create(match.Path),
            Methods = [.. match.Methods],
            Headers = [.. match.Headers.Select(h => new ValueMatcher(h))],
            Query = [.. match.Query.Select(q => new ValueMatcher(q))],
            Cookies = [.. match.Cookies.Select(c => new ValueMatcher(c))],
            Transformer = new RouteTransformer(route.Transforms),
            Filters = filters,
            Policy = policy,
        };
    }

    // A split route's service label: its services, each once, in config order ("api" for a canary of api's subsets).
    private static string SplitName(IReadOnlyList<SplitOptions> targets) => string.Join('+', targets.Select(t => t.Service).Distinct(StringComparer.Ordinal));
}
