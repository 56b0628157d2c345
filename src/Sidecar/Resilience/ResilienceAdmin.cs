// The resilience part of /admin/clusters: each service's policies and their live counts.
using System.Text.Json.Nodes;
using Mesh.Sidecar.Endpoints;
using Mesh.Sidecar.Translation;

namespace Mesh.Sidecar.Resilience;

/// <summary>Describes a cluster's policies for the admin API (per-endpoint state is in the endpoint entries).</summary>
internal static class ResilienceAdmin
{
    /// <summary>Null when the service has no policy.</summary>
    public static JsonObject? Describe(Cluster cluster)
    {
        if (cluster.Resilience is not { } service)
        {
            return null;
        }

        var node = new JsonObject();
        if (service.Retry is { } retry)
        {
            node["retries"] = new JsonObject
            {
                ["attempts"] = retry.Options.Attempts,
                ["on"] = new JsonArray([.. (retry.Options.On ?? RetryConditions.Default).Select(o => (JsonNode?)JsonValue.Create(o))]),
                ["grpcStatuses"] = new JsonArray([.. (retry.Options.GrpcStatuses ?? RetryConditions.DefaultGrpc).Select(o => (JsonNode?)JsonValue.Create(o))]),
                ["perTryTimeoutMs"] = retry.Options.PerTryTimeoutMs,
                ["budgetPercent"] = retry.Options.BudgetPercent,
            };
        }

        if (service.Settings.CircuitBreaker is { } breaker)
        {
            var stats = service.Limiter?.GetStatistics();
            node["circuitBreaker"] = new JsonObject
            {
                ["maxConcurrentRequests"] = breaker.MaxConcurrentRequests,
                ["maxPendingRequests"] = breaker.MaxPendingRequests,
                ["inFlight"] = stats is null ? null : breaker.MaxConcurrentRequests - stats.CurrentAvailablePermits,
                ["pending"] = stats?.CurrentQueuedCount,
                ["failureRatio"] = breaker.FailureRatio,
                ["breakMs"] = breaker.BreakMs,
            };
        }

        if (service.Outlier is { } outlier)
        {
            var ejected = 0;
            foreach (var endpoint in cluster.Endpoints)
            {
                ejected += endpoint.IsEjected ? 1 : 0;
            }

            node["outlierDetection"] = new JsonObject
            {
                ["consecutiveFailures"] = outlier.Options.ConsecutiveFailures,
                ["baseEjectionMs"] = outlier.Options.BaseEjectionMs,
                ["maxEjectionPercent"] = outlier.Options.MaxEjectionPercent,
                ["ejected"] = ejected,
            };
        }

        if (service.HealthChecker is { } checker)
        {
            node["healthCheck"] = new JsonObject
            {
                ["type"] = checker.Options.Type,
                ["path"] = checker.Options.Type == Configuration.HealthCheckTypes.Http ? checker.Options.Path : null,
                ["intervalMs"] = checker.Options.IntervalMs,
            };
        }

        node["available"] = cluster.Balancer.Endpoints.Length;
        return node;
    }

    /// <summary>Each route with a policy (timeout, rate limit, split, mirror, fault), by route name.</summary>
    public static JsonObject DescribeRoutes(MeshState state)
    {
        var routes = new JsonObject();
        foreach (var table in state.RoutesByListener.Values)
        {
            foreach (var route in table.Routes)
            {
                if (route.Policy is not { } policy || routes.ContainsKey(route.Name))
                {
                    continue;
                }

                var options = policy.Options;
                var node = new JsonObject { ["timeoutMs"] = policy.TimeoutMs };
                if (options.RateLimit is { } limit)
                {
                    node["rateLimit"] = new JsonObject { ["key"] = limit.Key, ["rate"] = limit.Rate, ["burst"] = limit.Burst, ["periodMs"] = limit.PeriodMs };
                }

                if (policy.Split is { } split)
                {
                    node["split"] = new JsonArray([.. split.Targets.Select(t => (JsonNode?)new JsonObject { ["service"] = t.Service, ["subset"] = t.Subset, ["weight"] = t.Weight })]);
                }

                if (policy.Mirror is { } mirror)
                {
                    node["mirror"] = new JsonObject { ["service"] = mirror.Service, ["percent"] = mirror.Percent };
                }

                if (policy.Fault is { } fault)
                {
                    node["fault"] = new JsonObject { ["delayMs"] = fault.DelayMs, ["delayPercent"] = fault.DelayPercent, ["abortStatus"] = fault.AbortStatus, ["abortPercent"] = fault.AbortPercent };
                }

                routes[route.Name] = node;
            }
        }

        return routes;
    }
}
