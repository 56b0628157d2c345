// 502 and 504 answers that say which service and why, and a Warning per failing endpoint at most every 10 s.
using System.Runtime.CompilerServices;
using Mesh.Sidecar.Endpoints;
using Yarp.ReverseProxy.Forwarder;

namespace Mesh.Sidecar.L7;

/// <summary>
/// Both upstream clients (Mesh's HTTP/1.1 client and YARP's forwarder) report a failure before the
/// response started by setting the status and writing nothing. This fills in a short body naming
/// the service, the endpoint and the reason, as the 503 for a service without endpoints does, and
/// logs a Warning. A dead endpoint fails every request sent to it, so each endpoint logs at most
/// once per <see cref="LogInterval"/>, with the count of failures it did not log.
/// </summary>
internal sealed partial class UpstreamErrors
{
    /// <summary>Shortest time between two Warnings about the same endpoint.</summary>
    public static readonly TimeSpan LogInterval = TimeSpan.FromSeconds(10);

    // Per endpoint object, so the state goes away with the endpoint.
    private readonly ConditionalWeakTable<EndpointState, LogWindow> _windows = [];
    private readonly ILogger _logger;
    private readonly TimeProvider _time;

    public UpstreamErrors(ILogger<UpstreamErrors> logger)
        : this(logger, TimeProvider.System)
    {
    }

    /// <summary>An instance on <paramref name="time"/> (tests use a fake clock).</summary>
    internal UpstreamErrors(ILogger logger, TimeProvider time)
    {
        _logger = logger;
        _time = time;
    }

    /// <summary>Writes the body of a 502 or 504 that the forwarder set, and logs it (rate-limited).</summary>
    public Task RespondAsync(HttpContext context, string service, Cluster cluster, EndpointState endpoint, ForwarderError error)
    {
        var response = context.Response;
        var status = response.StatusCode;
        if (response.HasStarted || status is not (StatusCodes.Status502BadGateway or StatusCodes.Status504GatewayTimeout)
            || context.RequestAborted.IsCancellationRequested)
        {
            // Started responses were aborted by the forwarder; a client that left reads nothing.
            return Task.CompletedTask;
        }

        var reason = Reason(context, cluster, error);
        Report(service, endpoint, status, reason);
        response.ContentType = "text/plain; charset=utf-8";
        return response.WriteAsync($"service '{service}': endpoint {endpoint.Authority} {reason}\n");
    }

    private static string Reason(HttpContext context, Cluster cluster, ForwarderError error)
    {
        if (error == ForwarderError.RequestTimedOut)
        {
            return $"did not answer within {cluster.RequestConfig.ActivityTimeout?.TotalMilliseconds ?? 0:0} ms (requestTimeoutMs)";
        }

        // YARP hands over the exception; its innermost message is the one a person can act on ("Connection refused").
        if (context.Features.Get<IForwarderErrorFeature>()?.Exception is { } exception)
        {
            while (exception.InnerException is not null)
            {
                exception = exception.InnerException;
            }

            return $"failed: {exception.Message}";
        }

        return error switch
        {
            ForwarderError.Request => "failed: no valid response (connection refused, reset or closed, or not HTTP/1.1)",
            ForwarderError.RequestBodyDestination => "failed: it stopped reading the request body",
            _ => $"failed: {error}",
        };
    }

    /// <summary>Logs one failure of <paramref name="endpoint"/>, or counts it when its last line is under <see cref="LogInterval"/> old.</summary>
    internal void Report(string service, EndpointState endpoint, int status, string reason)
    {
        var window = _windows.GetValue(endpoint, static _ => new LogWindow());
        var now = (long)_time.GetElapsedTime(0).TotalMilliseconds;
        var next = Volatile.Read(ref window.NextLogAt);
        if (now < next || Interlocked.CompareExchange(ref window.NextLogAt, now + (long)LogInterval.TotalMilliseconds, next) != next)
        {
            Interlocked.Increment(ref window.Suppressed);
            return;
        }

        Log.UpstreamFailed(_logger, service, status, endpoint.Authority, reason, Interlocked.Exchange(ref window.Suppressed, 0), LogInterval.TotalSeconds);
    }

    private sealed class LogWindow
    {
        public long NextLogAt = long.MinValue;
        public int Suppressed;
    }

    private static partial class Log
    {
        [LoggerMessage(3050, LogLevel.Warning, "Service {Service} answered {Status}: endpoint {Endpoint} {Reason} ({Suppressed} more failures of this endpoint since its last line; one line per endpoint every {IntervalSeconds} s at most)")]
        public static partial void UpstreamFailed(ILogger logger, string service, int status, string endpoint, string reason, int suppressed, double intervalSeconds);
    }
}
