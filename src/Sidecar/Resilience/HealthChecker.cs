// Active health checks of a static service's endpoints: HTTP GET or TCP connect every interval, thresholds both ways.
using System.Net.Sockets;
using Mesh.Sidecar.Configuration;
using Mesh.Sidecar.Endpoints;

namespace Mesh.Sidecar.Resilience;

/// <summary>Per-endpoint health-check counters; only the one running round of its service writes them.</summary>
internal sealed class HealthCheckState
{
    public int Successes;
    public int Failures;

    /// <summary>True while the endpoint is out for failing its checks.</summary>
    public bool Failing;

    /// <summary>Set once a check has run, for <c>/admin/clusters</c>.</summary>
    public bool Checked;
}

/// <summary>
/// Checks every endpoint of the service's current cluster each interval, on the resilience clock. An
/// endpoint goes out after <c>unhealthyThreshold</c> failed checks in a row and comes back after
/// <c>healthyThreshold</c> passed ones. New endpoints start in rotation and are checked at once.
/// A round that outlives the interval makes the next tick skip, so rounds never overlap.
/// </summary>
internal sealed partial class HealthChecker : IDisposable
{
    private readonly string _service;
    private readonly ResilienceClock _clock;
    private readonly ResilienceMetrics _metrics;
    private readonly ILogger _logger;
    private readonly Lock _lock = new();
    private Cluster? _cluster;
    private ITimer? _timer;
    private int _running;
    private int _rounds;
    private bool _disposed;
    private TaskCompletionSource _round = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public HealthChecker(string service, HealthCheckOptions options, ResilienceClock clock, ResilienceMetrics metrics, ILogger logger)
    {
        _service = service;
        Options = options;
        _clock = clock;
        _metrics = metrics;
        _logger = logger;
    }

    public HealthCheckOptions Options { get; }

    /// <summary>Rounds finished so far.</summary>
    public int Rounds
    {
        get
        {
            lock (_lock)
            {
                return _rounds;
            }
        }
    }

    /// <summary>Completes once <paramref name="count"/> rounds have finished (tests wait on it instead of sleeping).</summary>
    public async Task WhenRoundsAsync(int count)
    {
        while (true)
        {
            Task next;
            lock (_lock)
            {
                if (_rounds >= count)
                {
                    return;
                }

                next = _round.Task;
            }

            await next.ConfigureAwait(false);
        }
    }

    /// <summary>Checks <paramref name="cluster"/>'s endpoints from now on; the first call starts the checks with a round at once.</summary>
    public void Follow(Cluster cluster)
    {
        lock (_lock)
        {
            if (_disposed)
            {
                return;
            }

            _cluster = cluster;
            if (_timer is null)
            {
                var interval = TimeSpan.FromMilliseconds(Options.IntervalMs);
                _timer = _clock.Time.CreateTimer(static s => ((HealthChecker)s!).Tick(), this, TimeSpan.Zero, interval);
            }
        }
    }

    private void Tick()
    {
        if (Interlocked.CompareExchange(ref _running, 1, 0) != 0)
        {
            return;
        }

        _ = RoundAsync();
    }

    private async Task RoundAsync()
    {
        try
        {
            Cluster? cluster;
            lock (_lock)
            {
                cluster = _disposed ? null : _cluster;
            }

            if (cluster is not null)
            {
                var checks = new Task<bool>[cluster.Endpoints.Length];
                for (var i = 0; i < checks.Length; i++)
                {
                    checks[i] = CheckAsync(cluster, cluster.Endpoints[i]);
                }

                for (var i = 0; i < checks.Length; i++)
                {
                    Record(cluster.Endpoints[i], await checks[i].ConfigureAwait(false));
                }
            }
        }
        finally
        {
            Volatile.Write(ref _running, 0);
            TaskCompletionSource done;
            lock (_lock)
            {
                _rounds++;
                done = _round;
                _round = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            }

            done.TrySetResult();
        }
    }

    private async Task<bool> CheckAsync(Cluster cluster, EndpointState endpoint)
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromMilliseconds(Options.TimeoutMs), _clock.Time);
        try
        {
            if (Options.Type == HealthCheckTypes.Tcp)
            {
                using var socket = new Socket(SocketType.Stream, ProtocolType.Tcp);
                await socket.ConnectAsync(endpoint.Endpoint.Address, endpoint.Endpoint.Port, timeout.Token).ConfigureAwait(false);
                return true;
            }

            // Over the service's own client, so mesh and tls services are checked inside their TLS.
            using var request = new HttpRequestMessage(HttpMethod.Get, endpoint.DestinationPrefix + Options.Path)
            {
                Version = cluster.RequestConfig.Version ?? System.Net.HttpVersion.Version11,
                VersionPolicy = cluster.RequestConfig.VersionPolicy ?? HttpVersionPolicy.RequestVersionOrLower,
            };
            request.Headers.TryAddWithoutValidation("user-agent", "mesh-health-check");
            using var response = await cluster.Invoker.SendAsync(request, timeout.Token).ConfigureAwait(false);
            return (int)response.StatusCode is >= 200 and < 300;
        }
        catch (Exception ex) when (ex is SocketException or HttpRequestException or OperationCanceledException or IOException)
        {
            Log.CheckFailed(_logger, _service, endpoint.Authority, ex.Message);
            return false;
        }
    }

    private void Record(EndpointState endpoint, bool passed)
    {
        var state = endpoint.Check;
        state.Checked = true;
        _metrics.HealthCheck(_service, endpoint.Authority, passed);
        if (passed)
        {
            state.Failures = 0;
            state.Successes++;
            if (state.Failing && state.Successes >= Options.HealthyThreshold)
            {
                state.Failing = false;
                endpoint.SetFailingCheck(false);
                _metrics.HealthTransition(_service, endpoint.Authority, healthy: true);
                Log.Healthy(_logger, _service, endpoint.Authority, state.Successes);
            }
        }
        else
        {
            state.Successes = 0;
            state.Failures++;
            if (!state.Failing && state.Failures >= Options.UnhealthyThreshold)
            {
                state.Failing = true;
                endpoint.SetFailingCheck(true);
                _metrics.HealthTransition(_service, endpoint.Authority, healthy: false);
                Log.Unhealthy(_logger, _service, endpoint.Authority, state.Failures);
            }
        }
    }

    /// <summary>Brings back endpoints that a health check took out (the service no longer has one).</summary>
    public static void Release(Cluster cluster)
    {
        foreach (var endpoint in cluster.Endpoints)
        {
            var state = endpoint.Check;
            if (state.Failing || state.Checked)
            {
                state.Failing = false;
                state.Checked = false;
                state.Successes = state.Failures = 0;
                endpoint.SetFailingCheck(false);
            }
        }
    }

    public void Dispose()
    {
        lock (_lock)
        {
            _disposed = true;
            _timer?.Dispose();
            _timer = null;
        }
    }

    private static partial class Log
    {
        [LoggerMessage(5011, LogLevel.Debug, "Service {Service}: health check of {Endpoint} failed: {Reason}")]
        public static partial void CheckFailed(ILogger logger, string service, string endpoint, string reason);

        [LoggerMessage(5012, LogLevel.Warning, "Service {Service}: endpoint {Endpoint} is unhealthy after {Failures} failed health checks")]
        public static partial void Unhealthy(ILogger logger, string service, string endpoint, int failures);

        [LoggerMessage(5013, LogLevel.Information, "Service {Service}: endpoint {Endpoint} is healthy again after {Successes} passed health checks")]
        public static partial void Healthy(ILogger logger, string service, string endpoint, int successes);
    }
}
