// Configs and waits for sidecars that use the Consul test server.
using System.Diagnostics;
using System.Net;
using Mesh.FunctionalTests.Infrastructure;
using Mesh.Sidecar.Endpoints;
using Mesh.Tests.Consul;

namespace Mesh.FunctionalTests.Consul;

internal static class ConsulHarness
{
    /// <summary>A sidecar whose outbound listener routes everything to <paramref name="service"/>, read from Consul.</summary>
    public static object Outbound(ConsulTestServer consul, string service = "api", object? serviceConsul = null, object[]? routes = null, IReadOnlyDictionary<string, object>? services = null, bool meshHttp1Client = true) => new
    {
        performance = new { meshHttp1Client },
        service = new { name = "client", address = "127.0.0.1", port = 0 },
        admin = new { address = "127.0.0.1", port = 0 },
        listeners = new object[] { new { name = "outbound", address = "127.0.0.1", port = 0, direction = "outbound", protocol = "http" } },
        routes = routes ?? [TestConfig.Route("all", service)],
        services = services ?? new Dictionary<string, object> { [service] = serviceConsul is null ? new { discovery = "consul" } : new { discovery = "consul", consul = serviceConsul } },
        consul = new { address = consul.Address.ToString(), register = false },
        logging = new { level = "Warning" },
    };

    /// <summary>A sidecar for <paramref name="name"/> beside the app on <paramref name="appPort"/>, registering its inbound listener.</summary>
    public static object Registering(ConsulTestServer consul, string name, int appPort, int inboundPort = 0, string checkType = "http", int graceMs = 100, object? extraConsul = null) => new
    {
        service = new { name, address = "127.0.0.1", port = appPort },
        admin = new { address = "127.0.0.1", port = 0 },
        listeners = new object[] { new { name = "inbound", address = "127.0.0.1", port = inboundPort, direction = "inbound", protocol = "http" } },
        consul = extraConsul ?? new
        {
            address = consul.Address.ToString(),
            tags = new[] { "v1", "mesh" },
            meta = new Dictionary<string, string> { ["team"] = "core" },
            check = new { type = checkType, intervalMs = 200, timeoutMs = 1000, ttlMs = 900, deregisterCriticalAfterMs = 60_000 },
            deregisterGraceMs = graceMs,
        },
        logging = new { level = "Warning" },
    };

    /// <summary>The ports of a cluster's endpoints in the sidecar's current routing state.</summary>
    public static int[] Ports(TestSidecar sidecar, string cluster) =>
        sidecar.State.Current.Clusters.TryGetValue(cluster, out var c) ? [.. c.Endpoints.Select(e => e.Endpoint.Port).Order()] : [];

    /// <summary>Waits until the routing state's <paramref name="cluster"/> satisfies <paramref name="condition"/>; returns when it first did.</summary>
    public static async Task<DateTimeOffset> WaitForClusterAsync(TestSidecar sidecar, string cluster, Func<EndpointState[], bool> condition, string what)
    {
        using var deadline = new CancellationTokenSource(TestSidecar.Deadline);
        while (true)
        {
            var next = sidecar.NextStateAsync();
            var seen = DateTimeOffset.UtcNow;
            if (sidecar.State.Current.Clusters.TryGetValue(cluster, out var c) && condition(c.Endpoints))
            {
                return seen;
            }

            try
            {
                await next.WaitAsync(deadline.Token);
            }
            catch (OperationCanceledException)
            {
                throw new TimeoutException($"cluster {cluster} never had {what}; it has {string.Join(",", Ports(sidecar, cluster))}");
            }
        }
    }

    public static Task<DateTimeOffset> WaitForPortsAsync(TestSidecar sidecar, string cluster, params int[] ports) =>
        WaitForClusterAsync(sidecar, cluster, e => e.Select(x => x.Endpoint.Port).Order().SequenceEqual(ports.Order()), $"endpoints {string.Join(",", ports)}");

    /// <summary>When the test server answered the health query that first carried the current state of <paramref name="service"/>.</summary>
    public static DateTimeOffset? AnsweredAt(ConsulTestServer consul, string service, ulong index) =>
        consul.Requests.FirstOrDefault(r => r.Path == "/v1/health/service/" + service && r.Index == index)?.Answered;

    /// <summary>The backend names that answered <paramref name="count"/> sequential GETs.</summary>
    public static async Task<List<string>> BackendsAsync(HttpClient client, Uri listener, int count, string? header = null)
    {
        var names = new List<string>(count);
        for (var i = 0; i < count; i++)
        {
            using var request = Clients.Get(listener, "/");
            if (header is not null)
            {
                request.Headers.Add(header, "true");
            }

            using var response = await client.SendAsync(request);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            names.Add(response.Headers.GetValues("x-backend").Single());
        }

        return names;
    }

    /// <summary>Polls a value that has no change event (admin JSON, metrics) until it holds.</summary>
    public static async Task EventuallyAsync(Func<Task<bool>> condition, string what)
    {
        var clock = Stopwatch.StartNew();
        while (!await condition())
        {
            if (clock.Elapsed > TestSidecar.Deadline)
            {
                throw new TimeoutException($"not reached within {TestSidecar.Deadline}: {what}");
            }

            await Task.Delay(100);
        }
    }
}
