// The consul block and services.NAME.consul: the agent, registration of the local service, and what a service reads.
namespace Mesh.Sidecar.Configuration;

/// <summary>The local Consul agent: how to reach it, and how this sidecar registers its service.</summary>
public sealed record ConsulOptions
{
    /// <summary>The agent's HTTP API (<c>http://</c> or <c>https://</c>).</summary>
    public string Address { get; init; } = "http://127.0.0.1:8500";

    /// <summary>ACL token sent as <c>X-Consul-Token</c>; empty sends none.</summary>
    public string Token { get; init; } = "";

    /// <summary>A file holding the ACL token (re-read when it changes); instead of <see cref="Token"/>.</summary>
    public string TokenFile { get; init; } = "";

    /// <summary>Datacenter of catalog and health reads; empty means the agent's.</summary>
    public string Datacenter { get; init; } = "";

    /// <summary>PEM CA bundle that signs the agent's HTTPS certificate.</summary>
    public string CaFile { get; init; } = "";

    /// <summary>PEM client certificate for an agent that verifies clients.</summary>
    public string CertificateFile { get; init; } = "";

    /// <summary>PEM key of <see cref="CertificateFile"/>.</summary>
    public string KeyFile { get; init; } = "";

    /// <summary>Register the local service on start and deregister it on shutdown.</summary>
    public bool Register { get; init; } = true;

    /// <summary>Registration ID; empty derives a stable one from the service name, advertised address and inbound port.</summary>
    public string ServiceId { get; init; } = "";

    /// <summary>Address peers use when the inbound listener binds a wildcard (<c>0.0.0.0</c>); empty lets Consul use the node's.</summary>
    public string AdvertiseAddress { get; init; } = "";

    /// <summary>Tags of the registration.</summary>
    public IReadOnlyList<string> Tags { get; init; } = [];

    /// <summary>Metadata of the registration; Mesh adds <c>mesh-protocol</c> and <c>mesh-version</c>.</summary>
    public IReadOnlyDictionary<string, string> Meta { get; init; } = new Dictionary<string, string>();

    /// <summary>The health check Consul keeps on the registration.</summary>
    public ConsulCheckOptions Check { get; init; } = new();

    /// <summary>On shutdown, time between deregistering and draining, so peers stop sending first.</summary>
    public int DeregisterGraceMs { get; init; } = 2000;
}

/// <summary>The registration's health check.</summary>
public sealed record ConsulCheckOptions
{
    /// <summary><c>http</c> (Consul calls the sidecar's <c>/ready</c>) or <c>ttl</c> (the sidecar reports on a timer).</summary>
    public string Type { get; init; } = ConsulCheckTypes.Http;

    /// <summary>How often Consul calls <c>/ready</c> (http).</summary>
    public int IntervalMs { get; init; } = 10_000;

    /// <summary>How long Consul waits for <c>/ready</c> (http).</summary>
    public int TimeoutMs { get; init; } = 5000;

    /// <summary>The check turns critical when the sidecar has not reported for this long (ttl).</summary>
    public int TtlMs { get; init; } = 15_000;

    /// <summary>Consul deregisters the service after the check has been critical this long; 0 never.</summary>
    public int DeregisterCriticalAfterMs { get; init; } = 60_000;
}

/// <summary>Registration check types.</summary>
public static class ConsulCheckTypes
{
    /// <summary>Consul calls the sidecar's <c>/ready</c>.</summary>
    public const string Http = "http";

    /// <summary>The sidecar passes a TTL check while it and the local app are healthy.</summary>
    public const string Ttl = "ttl";
}

/// <summary>What a service with <c>"discovery": "consul"</c> reads.</summary>
public sealed record ConsulServiceOptions
{
    /// <summary>The service name in Consul; empty means the service's own name.</summary>
    public string Service { get; init; } = "";

    /// <summary>Only instances with this tag (a subset such as <c>v2</c>); empty takes all.</summary>
    public string Tag { get; init; } = "";

    /// <summary>Only instances whose every check passes; false also takes warning ones at their warning weight.</summary>
    public bool PassingOnly { get; init; } = true;
}
