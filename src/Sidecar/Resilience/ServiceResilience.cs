// A service's resilience policies compiled once: retry rules and pipeline, budget, concurrency limit, breakers, outlier detection, health checks.
using System.Threading.RateLimiting;
using Mesh.Sidecar.Configuration;
using Mesh.Sidecar.Endpoints;
using Polly;
using Polly.Retry;

namespace Mesh.Sidecar.Resilience;

/// <summary>
/// Built from <c>services.NAME</c> when it has retries, a circuit breaker, outlier detection or a health
/// check; kept across snapshots while those settings are unchanged, so budgets, limits and checks carry on.
/// </summary>
internal sealed class ServiceResilience : IDisposable
{
    private readonly ResilienceClock _clock;
    private readonly ResilienceMetrics _metrics;
    private readonly ILogger _logger;

    public ServiceResilience(string name, ServiceOptions options, ResilienceClock clock, ResilienceMetrics metrics, ILoggerFactory loggers)
    {
        Name = name;
        Settings = options;
        _clock = clock;
        _metrics = metrics;
        _logger = loggers.CreateLogger("Mesh.Resilience");
        if (options.Retries is { } retries)
        {
            Retry = new RetryRules(name, retries, clock, metrics);
        }

        if (options.CircuitBreaker is { } breaker)
        {
            Breaker = breaker.FailureRatio > 0 ? breaker : null;
            if (breaker.MaxConcurrentRequests > 0)
            {
                Limiter = new ConcurrencyLimiter(new ConcurrencyLimiterOptions
                {
                    PermitLimit = breaker.MaxConcurrentRequests,
                    QueueLimit = breaker.MaxPendingRequests,
                    QueueProcessingOrder = QueueProcessingOrder.OldestFirst,
                });
                MaxConcurrent = breaker.MaxConcurrentRequests;
                MaxPending = breaker.MaxPendingRequests;
            }
        }

        if (options.OutlierDetection is { } outlier)
        {
            Outlier = new OutlierDetector(name, outlier, clock, metrics, _logger);
        }

        if (options.HealthCheck is { } check)
        {
            HealthChecker = new HealthChecker(name, check, clock, metrics, _logger);
        }
    }

    public string Name { get; }

    /// <summary>The settings this was built from; a reload with equal ones keeps this object.</summary>
    public ServiceOptions Settings { get; }

    public RetryRules? Retry { get; }

    /// <summary>Per-endpoint breaker settings; null when ratio breaking is off.</summary>
    public CircuitBreakerOptions? Breaker { get; }

    /// <summary>The service-wide concurrency limit with its waiting queue; null without <c>maxConcurrentRequests</c>.</summary>
    public ConcurrencyLimiter? Limiter { get; }

    public int MaxConcurrent { get; }

    public int MaxPending { get; }

    public OutlierDetector? Outlier { get; }

    public HealthChecker? HealthChecker { get; }

    /// <summary>True when requests go through the resilience stage (health checks alone act only on availability).</summary>
    public bool OnRequestPath => Retry is not null || Breaker is not null || Limiter is not null || Outlier is not null;

    /// <summary>The endpoint's breaker, made (or remade, when the settings changed) on first use.</summary>
    public EndpointBreaker BreakerFor(EndpointState endpoint)
    {
        var breaker = endpoint.Breaker;
        if (breaker is null || breaker.Options != Breaker)
        {
            breaker = endpoint.InstallBreaker(breaker, new EndpointBreaker(Name, endpoint, Breaker!, _clock, _metrics, _logger));
        }

        return breaker;
    }

    /// <summary>True when <paramref name="options"/> would build the same policies.</summary>
    public bool SameAs(ServiceOptions options) =>
        options.CircuitBreaker == Settings.CircuitBreaker
        && options.OutlierDetection == Settings.OutlierDetection
        && options.HealthCheck == Settings.HealthCheck
        && SameRetries(options.Retries, Settings.Retries);

    private static bool SameRetries(RetryOptions? a, RetryOptions? b) =>
        a is null || b is null
            ? a is null && b is null
            : a with { On = null, GrpcStatuses = null } == b with { On = null, GrpcStatuses = null }
                && (a.On ?? RetryConditions.Default).SequenceEqual(b.On ?? RetryConditions.Default, StringComparer.Ordinal)
                && (a.GrpcStatuses ?? RetryConditions.DefaultGrpc).SequenceEqual(b.GrpcStatuses ?? RetryConditions.DefaultGrpc, StringComparer.Ordinal);

    public void Dispose()
    {
        HealthChecker?.Dispose();
        Limiter?.Dispose();
    }
}

/// <summary>The retry settings of a service, compiled for per-try decisions without allocating.</summary>
internal sealed class RetryRules
{
    private readonly bool[] _statuses = new bool[600];
    private readonly int _grpcMask;

    public RetryRules(string service, RetryOptions options, ResilienceClock clock, ResilienceMetrics metrics)
    {
        Options = options;
        foreach (var condition in options.On ?? RetryConditions.Default)
        {
            switch (condition)
            {
                case RetryConditions.ConnectFailure:
                    ConnectFailure = true;
                    break;
                case RetryConditions.Reset:
                    Reset = true;
                    break;
                case RetryConditions.AnyServerError:
                    Array.Fill(_statuses, true, 500, 100);
                    break;
                case RetryConditions.GatewayError:
                    _statuses[502] = _statuses[503] = _statuses[504] = true;
                    break;
                default:
                    _statuses[RetryConditions.StatusOf(condition)] = true;
                    break;
            }
        }

        foreach (var status in options.GrpcStatuses ?? RetryConditions.DefaultGrpc)
        {
            _grpcMask |= 1 << RetryConditions.GrpcStatuses[status];
        }

        HoldsStatuses = Array.IndexOf(_statuses, true) >= 0 || _grpcMask != 0;
        Budget = new RetryBudget(options.BudgetPercent, clock);
        if (options.Attempts == 0)
        {
            // Only perTryTimeoutMs applies.
            return;
        }

        var backoff = TimeSpan.FromMilliseconds(options.BackoffBaseMs);
        Pipeline = new ResiliencePipelineBuilder<AttemptOutcome> { TimeProvider = clock.Time }
            .AddRetry(new RetryStrategyOptions<AttemptOutcome>
            {
                MaxRetryAttempts = options.Attempts,
                BackoffType = DelayBackoffType.Exponential,
                UseJitter = true,
                Delay = backoff,
                MaxDelay = TimeSpan.FromMilliseconds(Math.Max(options.BackoffMaxMs, options.BackoffBaseMs)),
                // A zero base retries at once; Polly's exponential jitter would otherwise still wait.
                DelayGenerator = options.BackoffBaseMs == 0 ? static _ => new ValueTask<TimeSpan?>(TimeSpan.Zero) : null,
                // The try decided (and took from the budget) already; see ResilientExchange.
                ShouldHandle = static args => new ValueTask<bool>(args.Outcome.Result.Retry),
                OnRetry = args =>
                {
                    metrics.Retry(service, args.Outcome.Result.Reason ?? "unknown");
                    return ValueTask.CompletedTask;
                },
            })
            .Build();
    }

    public RetryOptions Options { get; }

    public bool ConnectFailure { get; }

    public bool Reset { get; }

    /// <summary>True when a response may be held back by status or gRPC status (the response gate is needed).</summary>
    public bool HoldsStatuses { get; }

    public RetryBudget Budget { get; }

    /// <summary>Polly's retry strategy; null when <c>attempts</c> is 0.</summary>
    public ResiliencePipeline<AttemptOutcome>? Pipeline { get; }

    public bool RetriesStatus(int status) => (uint)status < (uint)_statuses.Length && _statuses[status];

    public bool RetriesGrpc(int code) => (uint)code < 32 && (_grpcMask & (1 << code)) != 0;
}
