// A failure-ratio circuit breaker per endpoint (Polly's), which takes the endpoint out of rotation while open.
using Mesh.Sidecar.Configuration;
using Mesh.Sidecar.Endpoints;
using Polly;
using Polly.CircuitBreaker;

namespace Mesh.Sidecar.Resilience;

/// <summary>
/// Polly's circuit breaker around the tries sent to one endpoint, as Linkerd breaks per endpoint. When it
/// opens, the endpoint leaves the balancer; when the break ends it comes back so that the next request
/// picked for it is Polly's half-open probe (concurrent ones are refused by Polly and go elsewhere); the
/// probe's outcome closes the breaker or opens it again.
/// </summary>
internal sealed partial class EndpointBreaker
{
    private readonly CircuitBreakerStateProvider _state = new();
    private readonly EndpointState _endpoint;
    private readonly ResilienceClock _clock;
    private ITimer? _reopen;

    public EndpointBreaker(string service, EndpointState endpoint, CircuitBreakerOptions options, ResilienceClock clock, ResilienceMetrics metrics, ILogger logger)
    {
        Options = options;
        _endpoint = endpoint;
        _clock = clock;
        Pipeline = new ResiliencePipelineBuilder<AttemptOutcome> { TimeProvider = clock.Time }
            .AddCircuitBreaker(new CircuitBreakerStrategyOptions<AttemptOutcome>
            {
                FailureRatio = options.FailureRatio,
                MinimumThroughput = options.MinimumThroughput,
                SamplingDuration = TimeSpan.FromMilliseconds(options.SamplingMs),
                BreakDuration = TimeSpan.FromMilliseconds(options.BreakMs),
                StateProvider = _state,
                ShouldHandle = static args => new ValueTask<bool>(args.Outcome.Exception is not null and not OperationCanceledException || args.Outcome.Result.CountsAsFailure),
                OnOpened = args =>
                {
                    endpoint.SetBreakerOpen(true);
                    ScheduleProbe(args.BreakDuration);
                    metrics.BreakerTransition(service, endpoint.Authority, "open");
                    Log.Opened(logger, service, endpoint.Authority, args.BreakDuration.TotalMilliseconds);
                    return ValueTask.CompletedTask;
                },
                OnHalfOpened = _ =>
                {
                    metrics.BreakerTransition(service, endpoint.Authority, "half-open");
                    return ValueTask.CompletedTask;
                },
                OnClosed = _ =>
                {
                    endpoint.SetBreakerOpen(false);
                    metrics.BreakerTransition(service, endpoint.Authority, "closed");
                    Log.Closed(logger, service, endpoint.Authority);
                    return ValueTask.CompletedTask;
                },
            })
            .Build();
    }

    public CircuitBreakerOptions Options { get; }

    public ResiliencePipeline<AttemptOutcome> Pipeline { get; }

    /// <summary><c>closed</c>, <c>open</c> or <c>half-open</c> (the break is over and a probe may go).</summary>
    public string State => _endpoint.Health == "breaker-open" ? "open"
        : _state.CircuitState switch
        {
            CircuitState.Closed => "closed",
            CircuitState.Isolated => "open",
            _ => "half-open",
        };

    // Polly moves to half-open only when a request arrives after the break, so bring the endpoint back
    // into rotation then, or no request would ever be picked for it.
    private void ScheduleProbe(TimeSpan breakDuration)
    {
        var timer = _clock.Time.CreateTimer(static s => ((EndpointState)s!).SetBreakerOpen(false), _endpoint, breakDuration, Timeout.InfiniteTimeSpan);
        Interlocked.Exchange(ref _reopen, timer)?.Dispose();
    }

    private static partial class Log
    {
        [LoggerMessage(5021, LogLevel.Warning, "Service {Service}: circuit breaker of {Endpoint} opened for {BreakMs} ms")]
        public static partial void Opened(ILogger logger, string service, string endpoint, double breakMs);

        [LoggerMessage(5022, LogLevel.Information, "Service {Service}: circuit breaker of {Endpoint} closed")]
        public static partial void Closed(ILogger logger, string service, string endpoint);
    }
}
