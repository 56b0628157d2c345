// Misbehaving upstreams, configs and probes shared by the resilience tests.
using System.Net;
using System.Net.Sockets;
using System.Text.Json.Nodes;
using Mesh.FunctionalTests.Infrastructure;
using Mesh.Sidecar.Resilience;
using Microsoft.Extensions.Time.Testing;

namespace Mesh.FunctionalTests.Resilience;

/// <summary>Helpers for the resilience tests: Kestrel backends with scripted behaviour, configs, admin and metrics reads.</summary>
public static class ResilienceHarness
{
    /// <summary>A Kestrel backend whose every request runs <paramref name="handler"/> (after it sets x-backend and counts the hit).</summary>
    public static Task<TestBackend> BackendAsync(string name, Func<HttpContext, Task> handler) =>
        TestBackend.StartAsync(name, configure: app => app.Run(context => handler(context)));

    /// <summary>A backend answering its name with 200.</summary>
    public static Task<TestBackend> OkAsync(string name) => BackendAsync(name, context => context.Response.WriteAsync(name));

    /// <summary>An outbound sidecar config with the given routes and services.</summary>
    public static object Config(object[] routes, IReadOnlyDictionary<string, object> services, bool meshClient = true) => new
    {
        service = new { name = "client", address = "127.0.0.1", port = 0 },
        admin = new { address = "127.0.0.1", port = 0 },
        listeners = new object[] { new { name = "outbound", address = "127.0.0.1", port = 0, direction = "outbound", protocol = "http" } },
        routes,
        services,
        logging = new { level = "Warning" },
        performance = new { meshHttp1Client = meshClient },
    };

    /// <summary>Starts a sidecar whose resilience policies run on <paramref name="clock"/>.</summary>
    public static Task<TestSidecar> StartAsync(object config, FakeTimeProvider? clock = null) =>
        TestSidecar.StartAsync(config, clock is null ? null : services => services.AddSingleton(new ResilienceClock(clock)));

    /// <summary>A fake clock at a fixed start.</summary>
    public static FakeTimeProvider Clock() => new(new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero));

    /// <summary>A loopback port that refuses connections (bound, then closed).</summary>
    public static int RefusingPort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var port = ((IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();
        return port;
    }

    public static async Task<string> MetricsAsync(TestSidecar sidecar)
    {
        using var client = Clients.Http1();
        return await client.GetStringAsync(new Uri(sidecar.Admin, "/metrics"));
    }

    /// <summary>The value of one Prometheus series, or 0 when it has not appeared.</summary>
    public static double Metric(string metrics, string series)
    {
        foreach (var line in metrics.Split('\n'))
        {
            if (line.StartsWith(series + " ", StringComparison.Ordinal))
            {
                return double.Parse(line[(series.Length + 1)..], System.Globalization.CultureInfo.InvariantCulture);
            }
        }

        return 0;
    }

    /// <summary>The /admin/clusters entry of <paramref name="service"/>.</summary>
    public static async Task<JsonObject> ClusterAsync(TestSidecar sidecar, string service)
    {
        using var client = Clients.Http1();
        var body = JsonNode.Parse(await client.GetStringAsync(new Uri(sidecar.Admin, "/admin/clusters")))!;
        return body["clusters"]!.AsArray().Select(c => c!.AsObject()).Single(c => (string?)c["name"] == service);
    }

    /// <summary>The /admin/clusters entry of the endpoint on <paramref name="port"/>.</summary>
    public static async Task<JsonObject> EndpointAsync(TestSidecar sidecar, string service, int port)
    {
        var cluster = await ClusterAsync(sidecar, service);
        return cluster["endpoints"]!.AsArray().Select(e => e!.AsObject()).Single(e => (int)e["port"]! == port);
    }

    /// <summary>Sends <paramref name="count"/> requests from <paramref name="parallel"/> clients at once; returns the responses' status and x-backend.</summary>
    public static async Task<List<(HttpStatusCode Status, string Backend)>> SendManyAsync(Uri listener, int count, int parallel = 4, Func<int, HttpRequestMessage>? build = null)
    {
        var results = new List<(HttpStatusCode, string)>(count);
        var next = -1;
        using var client = Clients.Http1();
        var workers = Enumerable.Range(0, parallel).Select(async _ =>
        {
            int i;
            while ((i = Interlocked.Increment(ref next)) < count)
            {
                using var request = build?.Invoke(i) ?? Clients.Get(listener, "/");
                using var response = await client.SendAsync(request);
                var backend = response.Headers.TryGetValues("x-backend", out var values) ? values.First() : "";
                await response.Content.ReadAsByteArrayAsync();
                lock (results)
                {
                    results.Add((response.StatusCode, backend));
                }
            }
        });
        await Task.WhenAll(workers);
        return results;
    }
}
