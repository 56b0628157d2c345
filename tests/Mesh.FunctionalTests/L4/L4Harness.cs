// Config builders, metric polling and admin reads shared by the L4 end-to-end tests.
using System.Globalization;
using System.Text.Json;
using Mesh.FunctionalTests.Infrastructure;

namespace Mesh.FunctionalTests.L4;

internal static class L4Harness
{
    /// <summary>A sidecar with the given listeners (L4 or auto), services and HTTP routes; admin on an ephemeral port.</summary>
    public static object Config(object listener, IReadOnlyDictionary<string, object> services, object[]? routes = null) => new
    {
        service = new { name = "client" },
        admin = new { address = "127.0.0.1", port = 0 },
        listeners = new[] { listener },
        routes = routes ?? [],
        services,
        logging = new { level = "Warning" },
    };

    /// <summary>A <c>tcp</c> listener named "tcp" on an ephemeral loopback port.</summary>
    public static object TcpListener(string service, object? tcp = null) => tcp is null
        ? new { name = "tcp", address = "127.0.0.1", port = 0, protocol = "tcp", service }
        : new { name = "tcp", address = "127.0.0.1", port = 0, protocol = "tcp", service, tcp };

    /// <summary>A service with static endpoints; consistent-hash hashes the client address.</summary>
    public static object Service(IEnumerable<object> endpoints, string policy = "round-robin") => policy == "consistent-hash"
        ? new { endpoints = endpoints.ToArray(), loadBalancing = new { policy, hash = new { source = "client-address" } } }
        : new { endpoints = endpoints.ToArray(), loadBalancing = new { policy } };

    public static Dictionary<string, object> Services(params (string Name, object Service)[] services) =>
        services.ToDictionary(s => s.Name, s => s.Service, StringComparer.Ordinal);

    /// <summary>A captured ClientHello from tests/fixtures/tls-clienthellos.</summary>
    public static string ClientHello(string file) => Mesh.Tests.TestFixtures.Path("tls-clienthellos", file);

    /// <summary>The value of one series (exact name and labels as rendered) in /metrics, or null when absent.</summary>
    public static async Task<double?> MetricAsync(TestSidecar sidecar, string series, CancellationToken cancellationToken = default)
    {
        using var client = Clients.Http1();
        var text = await client.GetStringAsync(new Uri(sidecar.Admin, "/metrics"), cancellationToken);
        foreach (var line in text.Split('\n'))
        {
            if (line.StartsWith(series + " ", StringComparison.Ordinal))
            {
                return double.Parse(line[(series.Length + 1)..].Trim(), CultureInfo.InvariantCulture);
            }
        }

        return null;
    }

    /// <summary>Polls /metrics until <paramref name="series"/> has <paramref name="expected"/>, for up to the test deadline.</summary>
    public static Task<double> WaitForMetricAsync(TestSidecar sidecar, string series, double expected) =>
        WaitForMetricAsync(sidecar, series, value => value == expected, expected.ToString(CultureInfo.InvariantCulture));

    /// <summary>Polls /metrics until the value of <paramref name="series"/> satisfies <paramref name="condition"/>; returns it.</summary>
    public static async Task<double> WaitForMetricAsync(TestSidecar sidecar, string series, Func<double, bool> condition, string expected)
    {
        using var deadline = new CancellationTokenSource(TestSidecar.Deadline);
        double? last = null;
        try
        {
            while ((last = await MetricAsync(sidecar, series, deadline.Token)) is not { } value || !condition(value))
            {
                await Task.Delay(50, deadline.Token);
            }

            return last.Value;
        }
        catch (OperationCanceledException) when (deadline.IsCancellationRequested)
        {
            Assert.Fail($"{series} stayed at {last?.ToString(CultureInfo.InvariantCulture) ?? "<absent>"}, expected {expected}");
            throw;
        }
    }

    /// <summary>/admin/clusters as JSON.</summary>
    public static async Task<JsonElement> ClustersAsync(TestSidecar sidecar)
    {
        using var client = Clients.Http1();
        using var document = JsonDocument.Parse(await client.GetStringAsync(new Uri(sidecar.Admin, "/admin/clusters")));
        return document.RootElement.Clone();
    }

    /// <summary>The admin view of one listener.</summary>
    public static JsonElement ListenerOf(JsonElement clusters, string name) =>
        clusters.GetProperty("listeners").EnumerateArray().Single(l => l.GetProperty("name").GetString() == name);

    /// <summary>inFlight of each endpoint of one cluster, by port.</summary>
    public static Dictionary<int, int> InFlightOf(JsonElement clusters, string name) =>
        clusters.GetProperty("clusters").EnumerateArray()
            .Single(c => c.GetProperty("name").GetString() == name)
            .GetProperty("endpoints").EnumerateArray()
            .ToDictionary(e => e.GetProperty("port").GetInt32(), e => e.GetProperty("inFlight").GetInt32());

    /// <summary>Polls /admin/clusters until <paramref name="condition"/> holds, for up to the test deadline.</summary>
    public static async Task<JsonElement> WaitForClustersAsync(TestSidecar sidecar, Func<JsonElement, bool> condition, string what)
    {
        using var deadline = new CancellationTokenSource(TestSidecar.Deadline);
        while (true)
        {
            var clusters = await ClustersAsync(sidecar);
            if (condition(clusters))
            {
                return clusters;
            }

            if (deadline.IsCancellationRequested)
            {
                Assert.Fail($"/admin/clusters never showed {what}: {clusters}");
            }

            await Task.Delay(50, CancellationToken.None);
        }
    }
}
