// The resilience part of /admin/clusters: each service's policies and their live counts.
using System.Text.Json.Nodes;
using Mesh.Sidecar.Endpoints;

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
}
