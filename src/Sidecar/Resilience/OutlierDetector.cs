// Outlier detection: an endpoint that fails N times in a row is ejected for a period that grows with each ejection.
using Mesh.Sidecar.Configuration;
using Mesh.Sidecar.Endpoints;

namespace Mesh.Sidecar.Resilience;

/// <summary>Per-endpoint bookkeeping of outlier detection; it lives on the endpoint, so it survives reloads.</summary>
internal sealed class OutlierState
{
    public int ConsecutiveFailures;
    public int Ejections;
    public long ReadmittedAtMs = long.MinValue;
    public ITimer? Readmission;
}

/// <summary>
/// Envoy's consecutive-failure ejection: 5xx answers and connect failures (L7 tries and L4 connects
/// alike) count; a success resets the count. Ejection lasts <c>baseEjectionMs</c> times the number of
/// times the endpoint has been ejected (that number decays by one per quiet period), and never takes out
/// more than <c>maxEjectionPercent</c> of the service's endpoints.
/// </summary>
internal sealed partial class OutlierDetector(string service, OutlierDetectionOptions options, ResilienceClock clock, ResilienceMetrics metrics, ILogger logger)
{
    /// <summary>The longest ejection, however often an endpoint has been ejected (Envoy's default).</summary>
    private static readonly TimeSpan MaxEjection = TimeSpan.FromMinutes(5);

    private readonly Lock _lock = new();

    public OutlierDetectionOptions Options { get; } = options;

    public void Success(EndpointState endpoint)
    {
        if (Volatile.Read(ref endpoint.Outlier.ConsecutiveFailures) != 0)
        {
            Volatile.Write(ref endpoint.Outlier.ConsecutiveFailures, 0);
        }
    }

    public void Failure(Cluster cluster, EndpointState endpoint)
    {
        var state = endpoint.Outlier;
        if (Interlocked.Increment(ref state.ConsecutiveFailures) < Options.ConsecutiveFailures || endpoint.IsEjected)
        {
            return;
        }

        lock (_lock)
        {
            if (endpoint.IsEjected || Volatile.Read(ref state.ConsecutiveFailures) < Options.ConsecutiveFailures)
            {
                return;
            }

            var ejected = 0;
            foreach (var other in cluster.Endpoints)
            {
                ejected += other.IsEjected ? 1 : 0;
            }

            if (ejected + 1 > cluster.Endpoints.Length * Options.MaxEjectionPercent / 100)
            {
                // Keep counting: it is ejected as soon as another endpoint comes back.
                metrics.Ejection(service, endpoint.Authority, "skipped-max-percent");
                return;
            }

            var now = clock.NowMs;
            var baseMs = (long)Options.BaseEjectionMs;
            if (state.ReadmittedAtMs != long.MinValue)
            {
                // One ejection forgiven per quiet base period since the last readmission.
                var forgiven = (now - state.ReadmittedAtMs) / baseMs;
                state.Ejections = (int)Math.Max(0, state.Ejections - forgiven);
            }

            state.Ejections++;
            var duration = TimeSpan.FromMilliseconds(Math.Min(baseMs * state.Ejections, Math.Max(baseMs, (long)MaxEjection.TotalMilliseconds)));
            state.Readmission?.Dispose();
            state.Readmission = clock.Time.CreateTimer(static s => ((ReadmitState)s!).Run(), new ReadmitState(this, endpoint), duration, Timeout.InfiniteTimeSpan);
            endpoint.SetEjected(clock.Time.GetUtcNow() + duration);
            metrics.Ejection(service, endpoint.Authority, "ejected");
            Log.Ejected(logger, service, endpoint.Authority, state.ConsecutiveFailures, duration.TotalMilliseconds);
        }
    }

    private void Readmit(EndpointState endpoint)
    {
        lock (_lock)
        {
            var state = endpoint.Outlier;
            state.Readmission?.Dispose();
            state.Readmission = null;
            state.ReadmittedAtMs = clock.NowMs;
            Volatile.Write(ref state.ConsecutiveFailures, 0);
        }

        endpoint.SetEjected(null);
        metrics.Ejection(service, endpoint.Authority, "readmitted");
        Log.Readmitted(logger, service, endpoint.Authority);
    }

    private sealed class ReadmitState(OutlierDetector detector, EndpointState endpoint)
    {
        public void Run() => detector.Readmit(endpoint);
    }

    private static partial class Log
    {
        [LoggerMessage(5001, LogLevel.Warning, "Service {Service}: endpoint {Endpoint} ejected after {Failures} consecutive failures for {DurationMs} ms")]
        public static partial void Ejected(ILogger logger, string service, string endpoint, int failures, double durationMs);

        [LoggerMessage(5002, LogLevel.Information, "Service {Service}: endpoint {Endpoint} readmitted after its ejection")]
        public static partial void Readmitted(ILogger logger, string service, string endpoint);
    }
}
