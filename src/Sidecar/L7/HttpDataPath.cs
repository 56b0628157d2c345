// The L7 data path in one place: listener → route → filters → service endpoints → load balancer → upstream.
using System.Diagnostics;
using Mesh.Plugins;
using Mesh.Sidecar.Admin;
using Mesh.Sidecar.Endpoints;
using Mesh.Sidecar.Filters;
using Mesh.Sidecar.Hosting;
using Mesh.Sidecar.Listeners;
using Mesh.Sidecar.Metrics;
using Mesh.Sidecar.Resilience;
using Mesh.Sidecar.Routing;
using Mesh.Sidecar.Security;
using Mesh.Sidecar.Security.Authorization;
using Mesh.Sidecar.Security.Tls;
using Mesh.Sidecar.Translation;
using Mesh.Sidecar.Upstream;
using Mesh.Sidecar.Upstream.Http1;
using Yarp.ReverseProxy.Forwarder;

namespace Mesh.Sidecar.L7;

/// <summary>
/// Kestrel's only request handler. Inbound and outbound listeners share the stages and differ
/// only in their route tables (inbound tables end in a route to the local app). Per request it
/// allocates nothing of its own and logs nothing above Debug unless the access log is on.
/// </summary>
internal sealed partial class HttpDataPath(
    MeshStateStore store,
    IHttpForwarder forwarder,
    Http1Forwarder http1Forwarder,
    MeshMetrics metrics,
    AdminEndpoints admin,
    SecurityRuntime security,
    SecurityMetrics securityMetrics,
    ResilientForwarder resilience,
    ILoggerFactory loggerFactory,
    ConsulIntentionsCheck intentions,
    ShutdownDrain drain,
    UpstreamErrors upstreamErrors)
{
    private readonly ILogger _accessLog = loggerFactory.CreateLogger("Mesh.AccessLog");

    public Task InvokeAsync(HttpContext context)
    {
        // 1. Listener: which Mesh socket accepted this connection (tagged at accept, before protocol detection).
        var listener = context.Features.Get<MeshListenerFeature>();
        if (listener is null || listener.Kind == ListenerKind.Admin)
        {
            return admin.HandleAsync(context);
        }

        return ProxyAsync(context, listener);
    }

    private async Task ProxyAsync(HttpContext context, MeshListenerFeature listener)
    {
        var started = Stopwatch.GetTimestamp();
        var state = store.Current;
        using var inFlight = drain.TrackRequest();
        if (drain.IsClosingConnections)
        {
            ShutdownDrain.CloseAfterResponse(context);
        }

        // 1a. Request check: header names must be tokens and values free of CR, LF and NUL (HTTP/2 lets them through), else 400 on both upstream paths.
        if (HttpSyntax.FindInvalidRequestHeader(context.Request.Headers) is not null)
        {
            await RespondAsync(context, StatusCodes.Status400BadRequest, "a request header name is not a token, or its value holds CR, LF or NUL\n").ConfigureAwait(false);
            metrics.RequestCompleted("", "", StatusCodes.Status400BadRequest, started);
            return;
        }

        // 1b. Identity: drop any x-forwarded-client-cert the client sent; on mTLS connections set it from the verified caller.
        var peer = context.Features.Get<IPeerIdentityFeature>() as PeerIdentityFeature;
        ForwardedClientCert.Apply(context.Request.Headers, peer);

        // 1c. Authorization: on inbound listeners the first matching rule (caller, path, method, headers) allows or denies.
        if (listener.Inbound && security.Current.Policy is { } policy)
        {
            var decision = policy.Decide(listener.Name, peer?.PeerId, context.Request);
            securityMetrics.Decision(listener.Name, decision.Rule, decision.Allowed);
            if (!decision.Allowed)
            {
                Log.Denied(_accessLog, listener.Name, peer?.PeerId.Value ?? "unauthenticated", context.Request.Method, context.Request.Path.Value ?? "", decision.Rule);
                await RespondAsync(context, StatusCodes.Status403Forbidden, Denied(decision.Rule, peer)).ConfigureAwait(false);
                metrics.RequestCompleted("", "", StatusCodes.Status403Forbidden, started);
                return;
            }
        }

        // 1d. Consul intentions: with authorization.consulIntentions, the agent decides for this caller (cached per caller, fails closed).
        if (listener.Inbound && state.Options.Authorization.ConsulIntentions)
        {
            var intention = await intentions.CheckAsync(state.Options.Service.Name, peer).ConfigureAwait(false);
            securityMetrics.Decision(listener.Name, ConsulIntentionsCheck.RuleName, intention.Authorized);
            if (!intention.Authorized)
            {
                Log.Denied(_accessLog, listener.Name, peer?.PeerId.Value ?? "unauthenticated", context.Request.Method, context.Request.Path.Value ?? "", ConsulIntentionsCheck.RuleName);
                await RespondAsync(context, StatusCodes.Status403Forbidden, $"denied by Consul intentions: {intention.Reason} (caller {peer?.PeerId.Value ?? "unauthenticated"})\n").ConfigureAwait(false);
                metrics.RequestCompleted("", "", StatusCodes.Status403Forbidden, started);
                return;
            }
        }

        // 2. Route: first match in this listener's table (host, path, method, headers, query, cookies).
        var route = state.RoutesFor(listener.Name).Match(context.Request);
        // A route whose filters closed after this state was read (a plugin swap that has drained since)
        // belongs to an older snapshot: read the current one. Otherwise the request holds its filters.
        while (route is not null && !route.Filters.TryEnter())
        {
            state = store.Current;
            route = state.RoutesFor(listener.Name).Match(context.Request);
        }

        if (route is null)
        {
            await RespondAsync(context, StatusCodes.Status404NotFound, NoRouteMessage(context, listener)).ConfigureAwait(false);
            metrics.RequestCompleted("", "", StatusCodes.Status404NotFound, started);
            return;
        }

        try
        {
            var clusterId = route.ClusterId;
            string? subset = null;

            // 2b. Traffic policy (src/Sidecar/Resilience): rate limit (429), fault injection, then the weighted split's service or subset.
            if (route.Policy is { } traffic)
            {
                if (traffic.Admits && !await resilience.AdmitAsync(context, traffic).ConfigureAwait(false))
                {
                    Completed(context, route, started);
                    return;
                }

                if (traffic.Split is not null)
                {
                    (clusterId, subset) = resilience.Split(traffic);
                }
            }

            // 3. Filters: the route's ordered chain may answer now or pick another service or subset.
            if (!route.Filters.IsEmpty)
            {
                var view = new HttpRequestContext(context, route, listener);
                var decision = await route.Filters.RunAsync(view, context.RequestAborted).ConfigureAwait(false);
                if (decision.Action == FilterAction.Respond)
                {
                    await RespondAsync(context, decision.StatusCode, decision.Body ?? "", decision.Headers).ConfigureAwait(false);
                    Completed(context, route, started);
                    return;
                }

                if (decision.Action == FilterAction.Reroute)
                {
                    clusterId = decision.Service == route.ServiceName ? route.ClusterId : decision.Service!;
                    subset = decision.Subset;
                }

                if (route.Filters.HasResponseFilters)
                {
                    view.RunResponseFiltersOnStart(route.Filters);
                }
            }

            // 4. Service endpoints: the cluster translated from config and discovery snapshots.
            if (!state.Clusters.TryGetValue(clusterId, out var cluster))
            {
                await RespondAsync(context, StatusCodes.Status503ServiceUnavailable, $"no service named '{clusterId}'\n").ConfigureAwait(false);
                Completed(context, route, started);
                return;
            }

            // 5. Load balancer: one endpoint for this request (among the subset's endpoints when the split or a filter chose one).
            var balancer = subset is null ? cluster.Balancer : cluster.SubsetBalancer(subset);
            var endpoint = balancer.Pick(cluster.HashKey?.Compute(context));
            if (endpoint is null)
            {
                await RespondAsync(context, StatusCodes.Status503ServiceUnavailable, subset is null ? $"service '{cluster.Name}' has no healthy endpoint\n" : $"service '{cluster.Name}' has no healthy endpoint in subset '{subset}'\n").ConfigureAwait(false);
                Completed(context, route, started);
                return;
            }

            // 6. Upstream: forward with the route's transforms over the cluster's shared client.
            // Inline rather than a helper method: one async state machine per request, not two.
            var error = ForwarderError.None;
            if (ResilientForwarder.Applies(route, cluster))
            {
                // 6r. Resilience (src/Sidecar/Resilience): concurrency limit, route and per-try timeouts, retries on
                // other endpoints behind a response gate, per-endpoint breakers, outlier detection, the mirror.
                // Without a concurrency limit or breaker the first try is sent here like a plain one, and the exchange
                // steps in only when it wants a retry or an answer of its own.
                var exchange = resilience.Begin(context, state, route, cluster, subset, endpoint);
                try
                {
                    if (exchange.TryBeginFirstTry())
                    {
                        var sent = await cluster.SendAsync(context, endpoint, route.Transformer, http1Forwarder, forwarder).ConfigureAwait(false);
                        error = await exchange.EndFirstTryAsync(sent).ConfigureAwait(false);
                    }
                    else
                    {
                        error = await exchange.RunAsync().ConfigureAwait(false);
                    }

                    endpoint = exchange.Endpoint;
                }
                finally
                {
                    exchange.Dispose();
                }
            }
            else
            {
                endpoint.Enter();
                try
                {
                    error = await cluster.SendAsync(context, endpoint, route.Transformer, http1Forwarder, forwarder).ConfigureAwait(false);
                }
                finally
                {
                    endpoint.Leave(error != ForwarderError.None);
                }
            }

            if (error != ForwarderError.None)
            {
                Log.ForwardFailed(_accessLog, route.Name, endpoint.Authority, error.ToString());
                if (UpstreamTlsException.Find(context.Features.Get<IForwarderErrorFeature>()?.Exception) is { } refused)
                {
                    // YARP answered 502 without a body; say which identity the peer had and which was expected.
                    await RespondAsync(context, StatusCodes.Status502BadGateway, refused.Message + "\n").ConfigureAwait(false);
                }
                else
                {
                    // 7. Upstream errors: a 502 or 504 not yet sent gets a body naming the service and the reason.
                    await upstreamErrors.RespondAsync(context, route.ServiceName, cluster, endpoint, error).ConfigureAwait(false);
                }
            }

            if (route.Filters.HasResponseFilters && !context.Response.HasStarted)
            {
                // Response filters run while this request still holds its filters.
                await context.Response.StartAsync().ConfigureAwait(false);
            }

            Completed(context, route, started);
        }
        finally
        {
            route.Filters.Leave();
        }
    }

    private void Completed(HttpContext context, CompiledRoute route, long started)
    {
        var status = context.Response.StatusCode;
        metrics.RequestCompleted(route.Name, route.ServiceName, status, started);
        if (store.Current.Options.Logging.AccessLog)
        {
            var peer = (context.Features.Get<IPeerIdentityFeature>()?.PeerId.Value) ?? "-";
            Log.Access(_accessLog, context.Request.Method, context.Request.Host.Value ?? "", context.Request.Path.Value ?? "", status, route.Name, route.ServiceName, peer, Stopwatch.GetElapsedTime(started).TotalMilliseconds);
        }
    }

    private static string Denied(string rule, PeerIdentityFeature? peer) => rule == Security.Authorization.AuthorizationDecision.DefaultRule
        ? $"denied by the authorization default action (caller {peer?.PeerId.Value ?? "unauthenticated"})\n"
        : $"denied by authorization rule '{rule}' (caller {peer?.PeerId.Value ?? "unauthenticated"})\n";

    private static string NoRouteMessage(HttpContext context, MeshListenerFeature listener) =>
        $"no route matched {context.Request.Method} {context.Request.Host}{context.Request.Path} on listener '{listener.Name}'\n";

    private static Task RespondAsync(HttpContext context, int status, string body, IReadOnlyList<KeyValuePair<string, string>>? headers = null)
    {
        if (context.Response.HasStarted)
        {
            return Task.CompletedTask;
        }

        context.Response.StatusCode = status;
        context.Response.ContentType = "text/plain; charset=utf-8";
        if (headers is not null)
        {
            // A filter's answer (401 with WWW-Authenticate, 429 with Retry-After).
            foreach (var (name, value) in headers)
            {
                context.Response.Headers.Append(name, value);
            }
        }

        return context.Response.WriteAsync(body);
    }

    private static partial class Log
    {
        [LoggerMessage(3001, LogLevel.Information, "{Method} {Host}{Path} {Status} route={Route} service={Service} peer={Peer} {ElapsedMs:0.###}ms")]
        public static partial void Access(ILogger logger, string method, string host, string path, int status, string route, string service, string peer, double elapsedMs);

        [LoggerMessage(3003, LogLevel.Information, "Listener {Listener}: {Caller} denied {Method} {Path} by authorization rule {Rule}")]
        public static partial void Denied(ILogger logger, string listener, string caller, string method, string path, string rule);

        [LoggerMessage(3002, LogLevel.Debug, "Route {Route}: forwarding to {Endpoint} failed: {Error}")]
        public static partial void ForwardFailed(ILogger logger, string route, string endpoint, string error);
    }
}
