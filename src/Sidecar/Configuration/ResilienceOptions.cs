// Resilience and traffic-policy settings: per service (retries, circuit breaker, outlier detection, health checks) and per route (rate limit, split, mirror, fault).
namespace Mesh.Sidecar.Configuration;

/// <summary>Retries of failed tries on other endpoints (<c>services.NAME.retries</c>).</summary>
public sealed record RetryOptions
{
    /// <summary>Retries after the first try; 2 means up to three tries.</summary>
    public int Attempts { get; init; } = 2;

    /// <summary>
    /// What is retried: <c>connect-failure</c>, <c>reset</c>, a status code (<c>502</c>), <c>5xx</c> or
    /// <c>gateway-error</c> (502, 503, 504). Null means connect-failure, reset, 502, 503 and 504.
    /// </summary>
    public IReadOnlyList<string>? On { get; init; }

    /// <summary>gRPC statuses retried when a response carries them in its headers; null means <c>unavailable</c>.</summary>
    public IReadOnlyList<string>? GrpcStatuses { get; init; }

    /// <summary>Time allowed to each try; 0 leaves only the route's <c>timeoutMs</c>.</summary>
    public int PerTryTimeoutMs { get; init; }

    /// <summary>Median delay before the first retry; later ones grow exponentially, with jitter. 0 retries at once.</summary>
    public int BackoffBaseMs { get; init; } = 25;

    /// <summary>Longest delay between tries.</summary>
    public int BackoffMaxMs { get; init; } = 250;

    /// <summary>Retries allowed as a share of the service's requests over the last 10 s (at least 100 per window); 0 lifts the cap.</summary>
    public int BudgetPercent { get; init; } = 20;

    /// <summary>Also retry methods that are not idempotent (POST, PATCH).</summary>
    public bool NonIdempotent { get; init; }

    /// <summary>Largest request body kept for a retry; a request with a larger body is not retried.</summary>
    public int MaxBodyBytes { get; init; } = 65_536;
}

/// <summary>Limits and failure-ratio breaking (<c>services.NAME.circuitBreaker</c>).</summary>
public sealed record CircuitBreakerOptions
{
    /// <summary>Requests in flight to the service at once; 0 means no limit. Excess requests get 503.</summary>
    public int MaxConcurrentRequests { get; init; }

    /// <summary>Requests that may wait for a free slot when <see cref="MaxConcurrentRequests"/> is reached.</summary>
    public int MaxPendingRequests { get; init; }

    /// <summary>Share of failed requests to one endpoint in <see cref="SamplingMs"/> that opens its breaker; 0 turns ratio breaking off.</summary>
    public double FailureRatio { get; init; } = 0.5;

    /// <summary>Requests an endpoint must see in the sampling window before its ratio counts.</summary>
    public int MinimumThroughput { get; init; } = 20;

    /// <summary>Sampling window of the failure ratio.</summary>
    public int SamplingMs { get; init; } = 10_000;

    /// <summary>How long an open breaker stays open before one probe request is let through (half-open).</summary>
    public int BreakMs { get; init; } = 5_000;
}

/// <summary>Ejection of endpoints that keep failing (<c>services.NAME.outlierDetection</c>).</summary>
public sealed record OutlierDetectionOptions
{
    /// <summary>Consecutive 5xx answers or connect failures that eject an endpoint.</summary>
    public int ConsecutiveFailures { get; init; } = 5;

    /// <summary>First ejection period; each further ejection of the same endpoint lasts one period more.</summary>
    public int BaseEjectionMs { get; init; } = 30_000;

    /// <summary>Most endpoints of the service ejected at once, as a share of its endpoints.</summary>
    public int MaxEjectionPercent { get; init; } = 50;
}

/// <summary>Active health checks of statically configured endpoints (<c>services.NAME.healthCheck</c>).</summary>
public sealed record HealthCheckOptions
{
    /// <summary><c>http</c> (GET <see cref="Path"/>, 2xx is healthy) or <c>tcp</c> (a connect is healthy).</summary>
    public string Type { get; init; } = HealthCheckTypes.Http;

    /// <summary>Path of the HTTP check.</summary>
    public string Path { get; init; } = "/healthz";

    /// <summary>Time between checks.</summary>
    public int IntervalMs { get; init; } = 5_000;

    /// <summary>Time allowed to one check.</summary>
    public int TimeoutMs { get; init; } = 1_000;

    /// <summary>Consecutive passing checks that bring a failing endpoint back.</summary>
    public int HealthyThreshold { get; init; } = 2;

    /// <summary>Consecutive failing checks that take an endpoint out.</summary>
    public int UnhealthyThreshold { get; init; } = 3;
}

/// <summary>Health-check kinds.</summary>
public static class HealthCheckTypes
{
    /// <summary>GET the path; a 2xx answer passes.</summary>
    public const string Http = "http";

    /// <summary>A TCP connect passes.</summary>
    public const string Tcp = "tcp";
}

/// <summary>A token bucket per key (<c>routes[i].rateLimit</c>).</summary>
public sealed record RateLimitOptions
{
    /// <summary><c>client-address</c>, <c>header:NAME</c> or <c>peer</c> (the caller's SPIFFE ID).</summary>
    public string Key { get; init; } = "client-address";

    /// <summary>Tokens added every <see cref="PeriodMs"/>.</summary>
    public int Rate { get; init; } = 100;

    /// <summary>Bucket size: requests admitted at once after a quiet spell.</summary>
    public int Burst { get; init; } = 100;

    /// <summary>Refill period.</summary>
    public int PeriodMs { get; init; } = 1_000;
}

/// <summary>One weighted target of a traffic split (<c>routes[i].split[j]</c>).</summary>
public sealed record SplitOptions
{
    /// <summary>Target service.</summary>
    public string Service { get; init; } = "";

    /// <summary>Only the endpoints of the service carrying this tag; null means all of them.</summary>
    public string? Subset { get; init; }

    /// <summary>Relative weight; 0 sends nothing.</summary>
    public int Weight { get; init; }
}

/// <summary>Copies of requests sent to a shadow service (<c>routes[i].mirror</c>).</summary>
public sealed record MirrorOptions
{
    /// <summary>Shadow service.</summary>
    public string Service { get; init; } = "";

    /// <summary>Share of requests copied, 0 to 100.</summary>
    public double Percent { get; init; } = 100;
}

/// <summary>Fault injection for testing (<c>routes[i].fault</c>); off unless a percent is set.</summary>
public sealed record FaultOptions
{
    /// <summary>Delay added to delayed requests.</summary>
    public int DelayMs { get; init; }

    /// <summary>Share of requests delayed, 0 to 100.</summary>
    public double DelayPercent { get; init; }

    /// <summary>Status answered to aborted requests.</summary>
    public int AbortStatus { get; init; } = 503;

    /// <summary>Share of requests answered with <see cref="AbortStatus"/> without reaching the service, 0 to 100.</summary>
    public double AbortPercent { get; init; }
}
