// Semantic checks for the resilience and traffic-policy keys: ranges, references to services, and what Polly accepts.
using Mesh.Sidecar.Resilience;

namespace Mesh.Sidecar.Configuration;

/// <summary>Resilience keys of services and routes, each problem with its JSON path.</summary>
internal static partial class ConfigValidator
{
    private static void ValidateServiceResilience(ServiceOptions service, string path, List<ConfigError> errors)
    {
        if (service.Retries is { } retries)
        {
            var at = path + ".retries";
            CheckRange(retries.Attempts, 0, 10, at + ".attempts", errors);
            var on = retries.On ?? [];
            for (var i = 0; i < on.Count; i++)
            {
                if (RetryConditions.Check(on[i]) is { } problem)
                {
                    errors.Add(new ConfigError($"{at}.on[{i}]", problem));
                }
            }

            var grpc = retries.GrpcStatuses ?? [];
            for (var i = 0; i < grpc.Count; i++)
            {
                if (!RetryConditions.GrpcStatuses.ContainsKey(grpc[i]))
                {
                    errors.Add(new ConfigError($"{at}.grpcStatuses[{i}]", $"'{grpc[i]}' is not a gRPC status; use one of {string.Join(", ", RetryConditions.GrpcStatuses.Keys)}"));
                }
            }

            CheckNotNegative(retries.PerTryTimeoutMs, at + ".perTryTimeoutMs", errors);
            CheckNotNegative(retries.BackoffBaseMs, at + ".backoffBaseMs", errors);
            if (retries.BackoffMaxMs < retries.BackoffBaseMs)
            {
                errors.Add(new ConfigError(at + ".backoffMaxMs", $"{retries.BackoffMaxMs} is below backoffBaseMs ({retries.BackoffBaseMs})"));
            }

            CheckRange(retries.BudgetPercent, 0, 100, at + ".budgetPercent", errors);
            CheckRange(retries.MaxBodyBytes, 0, 16 * 1024 * 1024, at + ".maxBodyBytes", errors);
        }

        if (service.CircuitBreaker is { } breaker)
        {
            var at = path + ".circuitBreaker";
            CheckNotNegative(breaker.MaxConcurrentRequests, at + ".maxConcurrentRequests", errors);
            CheckNotNegative(breaker.MaxPendingRequests, at + ".maxPendingRequests", errors);
            if (breaker.MaxPendingRequests > 0 && breaker.MaxConcurrentRequests == 0)
            {
                errors.Add(new ConfigError(at + ".maxPendingRequests", "requests wait only for a limit: set maxConcurrentRequests too"));
            }

            if (double.IsNaN(breaker.FailureRatio) || breaker.FailureRatio is < 0 or > 1)
            {
                errors.Add(new ConfigError(at + ".failureRatio", $"{breaker.FailureRatio} is not a ratio from 0 (off) to 1"));
            }

            // Polly's own limits: at least two requests, and windows longer than half a second.
            if (breaker.MinimumThroughput < 2)
            {
                errors.Add(new ConfigError(at + ".minimumThroughput", $"{breaker.MinimumThroughput} must be 2 or more"));
            }

            if (breaker.SamplingMs <= 500)
            {
                errors.Add(new ConfigError(at + ".samplingMs", $"{breaker.SamplingMs} must be above 500"));
            }

            if (breaker.BreakMs <= 500)
            {
                errors.Add(new ConfigError(at + ".breakMs", $"{breaker.BreakMs} must be above 500"));
            }
        }

        if (service.OutlierDetection is { } outlier)
        {
            var at = path + ".outlierDetection";
            CheckPositive(outlier.ConsecutiveFailures, at + ".consecutiveFailures", errors);
            CheckPositive(outlier.BaseEjectionMs, at + ".baseEjectionMs", errors);
            CheckRange(outlier.MaxEjectionPercent, 0, 100, at + ".maxEjectionPercent", errors);
        }

        if (service.HealthCheck is { } check)
        {
            var at = path + ".healthCheck";
            if (service.Discovery != "static")
            {
                errors.Add(new ConfigError(at, $"health checks are for static services; '{service.Discovery}' services use their provider's checks"));
            }

            if (CheckOneOf(check.Type, at + ".type", [HealthCheckTypes.Http, HealthCheckTypes.Tcp], errors)
                && check.Type == HealthCheckTypes.Http && (!check.Path.StartsWith('/') || check.Path.AsSpan().IndexOfAny(" \t\r\n") >= 0))
            {
                errors.Add(new ConfigError(at + ".path", $"'{check.Path}' must start with '/' and hold no spaces"));
            }

            CheckPositive(check.IntervalMs, at + ".intervalMs", errors);
            CheckPositive(check.TimeoutMs, at + ".timeoutMs", errors);
            CheckPositive(check.HealthyThreshold, at + ".healthyThreshold", errors);
            CheckPositive(check.UnhealthyThreshold, at + ".unhealthyThreshold", errors);
        }
    }

    private static void ValidateRoutePolicy(MeshOptions options, RouteOptions route, string path, List<ConfigError> errors)
    {
        CheckNotNegative(route.TimeoutMs, path + ".timeoutMs", errors);

        if (route.RateLimit is { } limit)
        {
            var at = path + ".rateLimit";
            var key = limit.Key;
            if (key.StartsWith("header:", StringComparison.Ordinal))
            {
                CheckHeaderName(key["header:".Length..], at + ".key", errors);
            }
            else if (key is not ("client-address" or "peer"))
            {
                errors.Add(new ConfigError(at + ".key", $"'{key}' is not a rate-limit key; use client-address, header:NAME or peer"));
            }

            CheckPositive(limit.Rate, at + ".rate", errors);
            CheckPositive(limit.Burst, at + ".burst", errors);
            CheckPositive(limit.PeriodMs, at + ".periodMs", errors);
        }

        if (route.Split is { } split)
        {
            if (!string.IsNullOrEmpty(route.Service))
            {
                errors.Add(new ConfigError(path + ".split", "give service or split, not both"));
            }

            if (split.Count == 0)
            {
                errors.Add(new ConfigError(path + ".split", "give at least one target"));
            }

            long total = 0;
            for (var i = 0; i < split.Count; i++)
            {
                var target = split[i];
                var at = $"{path}.split[{i}]";
                CheckServiceReference(options, target.Service, at + ".service", errors);
                if (target.Subset is { } subset && subset.Length == 0)
                {
                    errors.Add(new ConfigError(at + ".subset", "is empty; leave it out to mean every endpoint"));
                }

                if (CheckRange(target.Weight, 0, 10_000, at + ".weight", errors))
                {
                    total += target.Weight;
                }
            }

            if (split.Count > 0 && total == 0)
            {
                errors.Add(new ConfigError(path + ".split", "the weights add up to 0; give at least one target a weight"));
            }
        }

        if (route.Mirror is { } mirror)
        {
            CheckServiceReference(options, mirror.Service, path + ".mirror.service", errors);
            CheckPercent(mirror.Percent, path + ".mirror.percent", errors);
        }

        if (route.Fault is { } fault)
        {
            var at = path + ".fault";
            CheckNotNegative(fault.DelayMs, at + ".delayMs", errors);
            if (CheckPercent(fault.DelayPercent, at + ".delayPercent", errors) && fault.DelayPercent > 0 && fault.DelayMs == 0)
            {
                errors.Add(new ConfigError(at + ".delayMs", "delayPercent is set, so give a delay above 0"));
            }

            CheckRange(fault.AbortStatus, 200, 599, at + ".abortStatus", errors);
            CheckPercent(fault.AbortPercent, at + ".abortPercent", errors);
        }
    }

    private static void CheckServiceReference(MeshOptions options, string service, string path, List<ConfigError> errors)
    {
        if (string.IsNullOrEmpty(service))
        {
            errors.Add(new ConfigError(path, "is required"));
        }
        else if (!options.Services.ContainsKey(service))
        {
            errors.Add(new ConfigError(path, $"no service named '{service}' in services"));
        }
    }

    private static bool CheckRange(int value, int min, int max, string path, List<ConfigError> errors)
    {
        if (value < min || value > max)
        {
            errors.Add(new ConfigError(path, $"{value} is out of range; use {min} to {max}"));
            return false;
        }

        return true;
    }

    private static bool CheckPercent(double value, string path, List<ConfigError> errors)
    {
        if (double.IsNaN(value) || value is < 0 or > 100)
        {
            errors.Add(new ConfigError(path, $"{value} is not a percentage from 0 to 100"));
            return false;
        }

        return true;
    }
}
