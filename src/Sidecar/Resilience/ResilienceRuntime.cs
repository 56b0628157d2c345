// Keeps the resilience policies across snapshots: reuses what did not change, starts and stops health checks on each swap.
using System.Threading.RateLimiting;
using Mesh.Sidecar.Configuration;
using RouteOptions = Mesh.Sidecar.Configuration.RouteOptions;
using Mesh.Sidecar.Translation;
using Microsoft.Extensions.Primitives;

namespace Mesh.Sidecar.Resilience;

/// <summary>
/// The translator asks here for each service's <see cref="ServiceResilience"/> and each route's
/// <see cref="RoutePolicy"/>. Equal settings get the same object back, so a reload or a discovery update
/// keeps retry budgets, concurrency counts, rate-limit buckets and health-check rounds going. After each
/// state swap the health checks follow the new clusters, and objects no snapshot uses any more are disposed.
/// </summary>
internal sealed class ResilienceRuntime : IDisposable
{
    private readonly ResilienceClock _clock;
    private readonly ResilienceMetrics _metrics;
    private readonly ILoggerFactory _loggers;
    private readonly MeshStateStore _store;
    private readonly Lock _lock = new();
    private readonly Dictionary<string, ServiceResilience> _services = new(StringComparer.Ordinal);
    private readonly Dictionary<string, RoutePolicy> _routes = new(StringComparer.Ordinal);
    private readonly IDisposable _subscription;

    public ResilienceRuntime(ResilienceClock clock, ResilienceMetrics metrics, ILoggerFactory loggers, MeshStateStore store)
    {
        _clock = clock;
        _metrics = metrics;
        _loggers = loggers;
        _store = store;
        _subscription = ChangeToken.OnChange(store.GetChangeToken, Reconcile);
    }

    /// <summary>The service's policies, or null when it has none.</summary>
    public ServiceResilience? ForService(string name, ServiceOptions options)
    {
        if (options.Retries is null && options.CircuitBreaker is null && options.OutlierDetection is null && options.HealthCheck is null)
        {
            return null;
        }

        lock (_lock)
        {
            if (_services.TryGetValue(name, out var existing) && existing.SameAs(options))
            {
                return existing;
            }

            // The replaced object is disposed once no snapshot uses it (Reconcile).
            var made = new ServiceResilience(name, options, _clock, _metrics, _loggers);
            _services[name] = made;
            _pending.Add(existing);
            return made;
        }
    }

    /// <summary>The route's policy, or null when it has none. One object per route name, shared by every listener.</summary>
    public RoutePolicy? ForRoute(RouteOptions route)
    {
        if (!RoutePolicy.Needed(route))
        {
            return null;
        }

        lock (_lock)
        {
            if (_routes.TryGetValue(route.Name, out var existing) && ReferenceEquals(existing.Options, route))
            {
                return existing;
            }

            // Keep the buckets when the rate limit is unchanged, so a reload does not hand out a fresh burst.
            var limiter = existing is not null && route.RateLimit is not null && existing.Options.RateLimit == route.RateLimit
                ? existing.Limiter
                : route.RateLimit is { } limit ? RoutePolicy.CreateLimiter(limit, _clock) : null;
            if (existing?.Limiter is { } old && !ReferenceEquals(old, limiter))
            {
                _retiredLimiters.Add(old);
            }

            var made = new RoutePolicy(route, limiter);
            _routes[route.Name] = made;
            return made;
        }
    }

    private readonly List<ServiceResilience?> _pending = [];
    private readonly List<PartitionedRateLimiter<HttpContext>> _retiredLimiters = [];

    /// <summary>After a swap: health checks follow the new clusters; what no cluster or route uses is disposed.</summary>
    private void Reconcile()
    {
        if (!_store.HasState)
        {
            return;
        }

        var state = _store.Current;
        lock (_lock)
        {
            foreach (var cluster in state.Clusters.Values)
            {
                if (cluster.Resilience?.HealthChecker is { } checker)
                {
                    checker.Follow(cluster);
                }
                else
                {
                    HealthChecker.Release(cluster);
                }
            }

            foreach (var name in _services.Keys.ToList())
            {
                if (!state.Clusters.TryGetValue(name, out var cluster) || !ReferenceEquals(cluster.Resilience, _services[name]))
                {
                    _services[name].Dispose();
                    _services.Remove(name);
                }
            }

            foreach (var old in _pending)
            {
                if (old is not null && !_services.ContainsValue(old))
                {
                    old.Dispose();
                }
            }

            _pending.Clear();
            var routes = new HashSet<string>(StringComparer.Ordinal);
            foreach (var route in state.Options.Routes)
            {
                routes.Add(route.Name);
            }

            foreach (var name in _routes.Keys.ToList())
            {
                if (!routes.Contains(name) || !RoutePolicy.Needed(_routes[name].Options))
                {
                    _routes[name].Limiter?.Dispose();
                    _routes.Remove(name);
                }
            }

            foreach (var limiter in _retiredLimiters)
            {
                limiter.Dispose();
            }

            _retiredLimiters.Clear();
        }
    }

    public void Dispose()
    {
        _subscription.Dispose();
        lock (_lock)
        {
            foreach (var service in _services.Values)
            {
                service.Dispose();
            }

            foreach (var route in _routes.Values)
            {
                route.Limiter?.Dispose();
            }

            _services.Clear();
            _routes.Clear();
        }
    }
}
