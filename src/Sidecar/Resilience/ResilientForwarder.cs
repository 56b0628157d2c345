// The resilience stages of the L7 data path: admission (rate limit, fault, split) and the upstream call with its policies.
using System.Runtime.CompilerServices;
using System.Threading.RateLimiting;
using Mesh.Sidecar.Endpoints;
using Mesh.Sidecar.Routing;
using Mesh.Sidecar.Translation;
using Mesh.Sidecar.Upstream.Http1;
using Yarp.ReverseProxy.Forwarder;

namespace Mesh.Sidecar.Resilience;

/// <summary>
/// Called by <c>HttpDataPath</c> only for routes and services with a policy, so the plain path stays as
/// it was. <see cref="AdmitAsync"/> runs after the route match; <see cref="Begin"/> replaces the
/// plain upstream call and returns the same <see cref="ForwarderError"/> for the data path to report.
/// </summary>
internal sealed class ResilientForwarder(
    IHttpForwarder forwarder,
    Http1Forwarder http1,
    ResilienceMetrics metrics,
    ResilienceClock clock,
    MirrorSender mirrors)
{
    public IHttpForwarder Forwarder { get; } = forwarder;

    public Http1Forwarder Http1 { get; } = http1;

    public ResilienceMetrics Metrics { get; } = metrics;

    public ResilienceClock Clock { get; } = clock;

    /// <summary>True when the upstream call of this route and service goes through <see cref="Begin"/>.</summary>
    public static bool Applies(CompiledRoute route, Cluster cluster) =>
        route.Policy is { OnRequestPath: true } || cluster.Resilience is { OnRequestPath: true };

    /// <summary>
    /// Rate limit (429 with Retry-After) then fault injection (delay, abort). False when the request was
    /// answered here. Completes synchronously unless a fault delays the request.
    /// </summary>
    public ValueTask<bool> AdmitAsync(HttpContext context, RoutePolicy policy)
    {
        if (policy.Limiter is { } limiter)
        {
            using var lease = limiter.AttemptAcquire(context);
            if (!lease.IsAcquired)
            {
                Metrics.RateLimited(policy.Name);
                var response = context.Response;
                response.StatusCode = StatusCodes.Status429TooManyRequests;
                response.ContentType = "text/plain; charset=utf-8";
                var seconds = lease.TryGetMetadata(MetadataName.RetryAfter, out var retryAfter) ? Math.Max(1, (int)Math.Ceiling(retryAfter.TotalSeconds)) : 1;
                response.Headers.RetryAfter = seconds.ToString(System.Globalization.CultureInfo.InvariantCulture);
                return Answered(response.WriteAsync($"route '{policy.Name}' is over its rate limit ({policy.Options.RateLimit!.Rate} per {policy.Options.RateLimit.PeriodMs} ms by {policy.Options.RateLimit.Key})\n"));
            }
        }

        if (policy.Fault is not { } fault)
        {
            return new ValueTask<bool>(true);
        }

        if (policy.Random.Chance(fault.AbortPercent))
        {
            Metrics.Fault(policy.Name, "abort");
            context.Response.StatusCode = fault.AbortStatus;
            context.Response.ContentType = "text/plain; charset=utf-8";
            return Answered(context.Response.WriteAsync($"fault injected by route '{policy.Name}'\n"));
        }

        if (policy.Random.Chance(fault.DelayPercent))
        {
            Metrics.Fault(policy.Name, "delay");
            return DelayAsync(context, fault.DelayMs);
        }

        return new ValueTask<bool>(true);
    }

    /// <summary>The split target for this request: the service's cluster id and the subset (tag) or null.</summary>
    public (string ClusterId, string? Subset) Split(RoutePolicy policy)
    {
        var target = policy.Split!.Pick(policy.Random.Next());
        Metrics.Split(policy.Name, target.Service, target.Subset ?? "");
        return (target.Service, target.Subset);
    }

    /// <summary>
    /// The request's exchange with the route's and the service's policies: the data path awaits its
    /// <c>RunAsync</c> itself (one async method fewer per request), takes the last try's endpoint
    /// from it, and disposes it.
    /// </summary>
    public ResilientExchange Begin(HttpContext context, MeshState state, CompiledRoute route, Cluster cluster, string? subset, EndpointState first) =>
        new(this, context, state, route, cluster, subset, first);

    /// <summary>Sends the request's copy to the route's mirror service, in the background.</summary>
    public void Mirror(HttpContext context, MeshState state, CompiledRoute route, ReplayableBody? body, bool bodyNotKept) =>
        mirrors.Send(context, state, route, body, bodyNotKept);

    private static async ValueTask<bool> Answered(Task write)
    {
        await write.ConfigureAwait(false);
        return false;
    }

    private async ValueTask<bool> DelayAsync(HttpContext context, int delayMs)
    {
        try
        {
            await Task.Delay(TimeSpan.FromMilliseconds(delayMs), Clock.Time, context.RequestAborted).ConfigureAwait(false);
            return true;
        }
        catch (OperationCanceledException)
        {
            return false;
        }
    }
}
