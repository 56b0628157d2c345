// The admin API: health, readiness, effective config, clusters and Prometheus metrics.
using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Nodes;
using Mesh.Sidecar.Filters;
using Mesh.Sidecar.Hosting;
using Mesh.Sidecar.Listeners;
using Mesh.Sidecar.Metrics;
using Mesh.Sidecar.Resilience;
using Mesh.Sidecar.Security;
using Mesh.Sidecar.Translation;

namespace Mesh.Sidecar.Admin;

/// <summary>Serves the admin listener. Paths are few and fixed, so a switch beats a router here.</summary>
internal sealed class AdminEndpoints(MeshStateStore store, ListenerManager listeners, PrometheusExporter exporter, IHostApplicationLifetime lifetime, IdentityAdmin identity, DiscoveryStatusReader discovery, PluginsAdmin plugins, ShutdownDrain drain)
{
    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web) { WriteIndented = true, Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };
    private static readonly string[] SecretWords = ["token", "password", "secret", "privatekey", "key", "keys", "tokens", "secrets", "passwords"];

    public Task HandleAsync(HttpContext context) => context.Request.Path.Value switch
    {
        "/healthz" => Text(context, 200, "ok\n"),
        "/ready" => ReadyAsync(context),
        "/admin/config" => ConfigAsync(context),
        "/admin/clusters" => ClustersAsync(context),
        IdentityAdmin.Path => identity.HandleAsync(context),
        "/admin/plugins" => Text(context, 200, plugins.Render().ToJsonString(Json), "application/json"),
        "/metrics" => Text(context, 200, exporter.Render(), "text/plain; version=0.0.4; charset=utf-8"),
        "/" => Text(context, 200, "mesh-sidecar admin: /healthz /ready /admin/config /admin/clusters /admin/identity /admin/plugins /metrics\n"),
        _ => Text(context, 404, $"no admin endpoint {context.Request.Path}\n"),
    };

    private async Task ReadyAsync(HttpContext context)
    {
        if (drain.IsDraining)
        {
            // Load balancers and health checks see the sidecar leave while its sockets still drain.
            await Text(context, 503, "not ready: draining\n");
            return;
        }

        var started = lifetime.ApplicationStarted.IsCancellationRequested && !lifetime.ApplicationStopping.IsCancellationRequested;
        if (!(store.HasState && listeners.AllBound && started))
        {
            await Text(context, 503, "not ready: config not applied or listeners not bound\n");
            return;
        }

        // Registered in Consul, /ready is the instance's health check: the local app must be up too.
        if (LocalAppProbe.Applies(store.Current.Options) && await LocalAppProbe.CheckAsync(store.Current.Options.Service, context.RequestAborted) is { } down)
        {
            await Text(context, 503, $"not ready: {down}\n");
            return;
        }

        await Text(context, 200, "ready\n");
    }

    private Task ConfigAsync(HttpContext context)
    {
        var node = JsonSerializer.SerializeToNode(store.Current.Options, Json)!;
        Redact(node);
        return Text(context, 200, node.ToJsonString(Json), "application/json");
    }

    private Task ClustersAsync(HttpContext context)
    {
        var state = store.Current;
        var bound = listeners.BoundEndpoints;
        var listenerList = new JsonArray();
        foreach (var listener in state.Options.Listeners)
        {
            var entry = new JsonObject
            {
                ["name"] = listener.Name,
                ["address"] = bound.TryGetValue(listener.Name, out var actual) ? actual.ToString() : null,
                ["direction"] = listener.Direction,
                ["protocol"] = listener.Protocol,
                ["routes"] = new JsonArray([.. state.RoutesFor(listener.Name).Routes.Select(r => (JsonNode?)JsonValue.Create(r.Name))]),
            };
            if (state.L4Listeners.TryGetValue(listener.Name, out var l4))
            {
                entry["service"] = l4.DefaultCluster?.Name;
                entry["sniRoutes"] = new JsonArray([.. l4.SniRoutes.Select(r => (JsonNode?)new JsonObject { ["name"] = r.Name, ["service"] = r.Cluster.Name })]);
                entry["activeConnections"] = listeners.ActiveConnections(listener.Name);
                if (listeners.UdpProxyOf(listener.Name) is { } udp)
                {
                    entry["udpFlows"] = udp.ActiveFlows;
                }
            }

            listenerList.Add(entry);
        }

        var clusters = new JsonArray();
        foreach (var cluster in state.Clusters.Values.OrderBy(c => c.Name, StringComparer.Ordinal))
        {
            var endpoints = new JsonArray();
            foreach (var endpoint in cluster.Endpoints)
            {
                endpoints.Add(new JsonObject
                {
                    ["address"] = endpoint.Endpoint.Address,
                    ["port"] = endpoint.Endpoint.Port,
                    ["weight"] = endpoint.Weight,
                    ["health"] = endpoint.Health,
                    // Requests in flight for L7, open connections (or UDP flows) for L4.
                    ["inFlight"] = endpoint.InFlight,
                    ["requests"] = endpoint.Requests,
                    ["failures"] = endpoint.Failures,
                    // Keep-alive connections parked in Mesh's HTTP/1.1 client pool.
                    ["idleConnections"] = endpoint.Http1Pool.IdleCount,
                    ["tags"] = new JsonArray([.. endpoint.Endpoint.Tags.Select(t => (JsonNode?)JsonValue.Create(t))]),
                    // Resilience (src/Sidecar/Resilience): when an ejection ends, the breaker's state, the last health-check verdict.
                    ["ejectedUntil"] = endpoint.EjectedUntil?.ToString("O", System.Globalization.CultureInfo.InvariantCulture),
                    ["breaker"] = cluster.Resilience?.Breaker is null ? null : endpoint.Breaker?.State ?? "closed",
                    ["healthCheck"] = cluster.Resilience?.HealthChecker is null ? null : !endpoint.Check.Checked ? "pending" : endpoint.Check.Failing ? "failing" : "passing",
                });
            }

            clusters.Add(new JsonObject
            {
                ["name"] = cluster.Name,
                ["policy"] = cluster.Policy,
                // Which client carries L7 requests: Mesh's own HTTP/1.1 client, or YARP's forwarder (HTTP/2 services, or switched off).
                ["client"] = cluster.Http1 is null ? "yarp" : "mesh-http1",
                ["discovery"] = Discovery(discovery.Of(state, cluster.Name)),
                ["endpoints"] = endpoints,
                ["resilience"] = ResilienceAdmin.Describe(cluster),
            });
        }

        var body = new JsonObject { ["version"] = state.Version, ["listeners"] = listenerList, ["clusters"] = clusters };
        body["routePolicies"] = ResilienceAdmin.DescribeRoutes(state);
        return Text(context, 200, body.ToJsonString(Json), "application/json");
    }

    // Where a cluster's endpoints come from and how stale they are; the local app's cluster comes from the config.
    private static JsonObject Discovery(ServiceDiscoveryView? view)
    {
        if (view is null)
        {
            return new JsonObject { ["source"] = "config", ["synced"] = true, ["stalenessSeconds"] = 0 };
        }

        var node = new JsonObject
        {
            ["source"] = view.Source,
            ["synced"] = view.Status?.Synced ?? true,
            ["stalenessSeconds"] = Math.Round(view.StalenessSeconds, 3),
        };
        if (view.Status is { } status)
        {
            node["upstream"] = status.Upstream;
            node["lastSync"] = status.LastSync?.ToString("O", System.Globalization.CultureInfo.InvariantCulture);
            node["lastError"] = status.LastError;
            node["index"] = status.Index;
        }

        return node;
    }

    // Values under keys that look secret are replaced, so the endpoint is safe to expose to operators.
    private static void Redact(JsonNode node)
    {
        if (node is JsonObject obj)
        {
            foreach (var (key, value) in obj.ToList())
            {
                // A list of plain values under a secret-looking key (a filter's "keys": [...]) is redacted too.
                if ((value is JsonValue || value is JsonArray { Count: > 0 } list && list.All(item => item is JsonValue)) && SecretWords.Any(w => key.Replace("-", "", StringComparison.Ordinal).EndsWith(w, StringComparison.OrdinalIgnoreCase)))
                {
                    obj[key] = "<redacted>";
                }
                else if (value is not null)
                {
                    Redact(value);
                }
            }
        }
        else if (node is JsonArray array)
        {
            foreach (var item in array)
            {
                if (item is not null)
                {
                    Redact(item);
                }
            }
        }
    }

    private static Task Text(HttpContext context, int status, string body, string contentType = "text/plain; charset=utf-8")
    {
        context.Response.StatusCode = status;
        context.Response.ContentType = contentType;
        return context.Response.WriteAsync(body);
    }
}
