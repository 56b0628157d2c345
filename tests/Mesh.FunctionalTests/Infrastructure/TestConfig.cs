// Builders for sidecar configs used across functional tests.
namespace Mesh.FunctionalTests.Infrastructure;

/// <summary>Config objects serialised to JSON with the same keys a user writes.</summary>
public static class TestConfig
{
    /// <summary>A sidecar with one outbound HTTP listener on an ephemeral port and admin on another.</summary>
    public static object Outbound(object[] routes, IReadOnlyDictionary<string, object> services, bool accessLog = false) => new
    {
        service = new { name = "client", address = "127.0.0.1", port = 0 },
        admin = new { address = "127.0.0.1", port = 0 },
        listeners = new object[] { new { name = "outbound", address = "127.0.0.1", port = 0, direction = "outbound", protocol = "http" } },
        routes,
        services,
        logging = new { level = "Warning", accessLog },
    };

    /// <summary>A service entry with static endpoints.</summary>
    public static object Service(IEnumerable<TestBackend> backends, string policy = "round-robin", object? hash = null, string protocol = "http1") => new
    {
        endpoints = backends.Select(b => b.Endpoint()).ToArray(),
        loadBalancing = hash is null ? (object)new { policy } : new { policy, hash },
        protocol,
    };

    /// <summary>A route to <paramref name="service"/> with the given match.</summary>
    public static object Route(string name, string service, object? match = null, object? transforms = null) =>
        transforms is null
            ? new { name, service, match = match ?? new { } }
            : new { name, service, match = match ?? new { }, transforms };
}
