// Bodies of the discovery endpoints: health entries, nodes, checks and the flat catalog listing.
using System.Text.Json.Serialization;

namespace Mesh.Discovery.Consul;

/// <summary>Check status values.</summary>
public static class HealthStatus
{
    /// <summary>Healthy.</summary>
    public const string Passing = "passing";

    /// <summary>Degraded: still served, with the warning weight.</summary>
    public const string Warning = "warning";

    /// <summary>Failing: not served.</summary>
    public const string Critical = "critical";

    /// <summary>Maintenance mode, which Consul reports as its own status.</summary>
    public const string Maintenance = "maintenance";
}

/// <summary>One element of <c>GET /v1/health/service/:service</c>: an instance, its node and their checks.</summary>
public sealed record ServiceEntry
{
    /// <summary>The node the instance runs on.</summary>
    public CatalogNode Node { get; init; } = new();

    /// <summary>The instance.</summary>
    public AgentService Service { get; init; } = new();

    /// <summary>Node checks (such as <c>serfHealth</c>) and service checks.</summary>
    public IReadOnlyList<HealthCheck> Checks { get; init; } = [];

    /// <summary>The worst status among <see cref="Checks"/>; passing when there is none.</summary>
    public string AggregatedStatus()
    {
        var worst = HealthStatus.Passing;
        foreach (var check in Checks)
        {
            if (check.Status is HealthStatus.Critical or HealthStatus.Maintenance)
            {
                return HealthStatus.Critical;
            }

            if (check.Status == HealthStatus.Warning)
            {
                worst = HealthStatus.Warning;
            }
        }

        return worst;
    }
}

/// <summary>A Consul node.</summary>
public sealed record CatalogNode
{
    /// <summary>Node UUID.</summary>
    [JsonPropertyName("ID")]
    public string? Id { get; init; }

    /// <summary>Node name.</summary>
    [JsonPropertyName("Node")]
    public string Name { get; init; } = "";

    /// <summary>Node address; used when the service has none.</summary>
    public string Address { get; init; } = "";

    /// <summary>Datacenter.</summary>
    public string? Datacenter { get; init; }

    /// <summary>Named node addresses (<c>lan</c>, <c>wan</c>).</summary>
    public IReadOnlyDictionary<string, string>? TaggedAddresses { get; init; }

    /// <summary>Node metadata.</summary>
    public IReadOnlyDictionary<string, string>? Meta { get; init; }
}

/// <summary>A health check as Consul reports it.</summary>
public sealed record HealthCheck
{
    /// <summary>Node the check runs on.</summary>
    public string? Node { get; init; }

    /// <summary>Check ID.</summary>
    [JsonPropertyName("CheckID")]
    public string CheckId { get; init; } = "";

    /// <summary>Human-readable name.</summary>
    public string? Name { get; init; }

    /// <summary><c>passing</c>, <c>warning</c>, <c>critical</c> (or <c>maintenance</c>).</summary>
    public string Status { get; init; } = "";

    /// <summary>Free-form notes.</summary>
    public string? Notes { get; init; }

    /// <summary>Output of the last run.</summary>
    public string? Output { get; init; }

    /// <summary>Service the check belongs to; empty for a node check.</summary>
    [JsonPropertyName("ServiceID")]
    public string? ServiceId { get; init; }

    /// <summary>Name of that service.</summary>
    public string? ServiceName { get; init; }

    /// <summary>Tags of that service.</summary>
    public IReadOnlyList<string>? ServiceTags { get; init; }

    /// <summary>Enterprise namespace.</summary>
    public string? Namespace { get; init; }
}

/// <summary>One element of <c>GET /v1/catalog/service/:service</c>: node and instance flattened.</summary>
public sealed record CatalogService
{
    /// <summary>Node UUID.</summary>
    [JsonPropertyName("ID")]
    public string? Id { get; init; }

    /// <summary>Node name.</summary>
    public string Node { get; init; } = "";

    /// <summary>Node address.</summary>
    public string Address { get; init; } = "";

    /// <summary>Datacenter.</summary>
    public string? Datacenter { get; init; }

    /// <summary>Named node addresses.</summary>
    public IReadOnlyDictionary<string, string>? TaggedAddresses { get; init; }

    /// <summary>Node metadata.</summary>
    public IReadOnlyDictionary<string, string>? NodeMeta { get; init; }

    /// <summary>Raft index at creation.</summary>
    public ulong CreateIndex { get; init; }

    /// <summary>Raft index of the last change.</summary>
    public ulong ModifyIndex { get; init; }

    /// <summary>Instance address; empty means <see cref="Address"/>.</summary>
    public string? ServiceAddress { get; init; }

    /// <summary>Whether catalog tag changes override the agent's.</summary>
    public bool ServiceEnableTagOverride { get; init; }

    /// <summary>Instance ID.</summary>
    [JsonPropertyName("ServiceID")]
    public string ServiceId { get; init; } = "";

    /// <summary>Service name.</summary>
    public string ServiceName { get; init; } = "";

    /// <summary>Instance port.</summary>
    public int ServicePort { get; init; }

    /// <summary>Instance metadata.</summary>
    public IReadOnlyDictionary<string, string>? ServiceMeta { get; init; }

    /// <summary>Named instance addresses.</summary>
    public IReadOnlyDictionary<string, ServiceAddress>? ServiceTaggedAddresses { get; init; }

    /// <summary>Instance tags.</summary>
    public IReadOnlyList<string>? ServiceTags { get; init; }

    /// <summary>Proxy settings when the instance is a proxy.</summary>
    public ConnectProxyConfig? ServiceProxy { get; init; }

    /// <summary>Connect settings.</summary>
    public ServiceConnect? ServiceConnect { get; init; }

    /// <summary>Enterprise namespace.</summary>
    public string? Namespace { get; init; }

    /// <summary>Instance weights.</summary>
    public ServiceWeights? ServiceWeights { get; init; }
}

/// <summary>Connect settings of an instance.</summary>
public sealed record ServiceConnect
{
    /// <summary>The instance speaks Connect natively.</summary>
    public bool Native { get; init; }

    /// <summary>Deprecated managed-proxy settings.</summary>
    public ConnectProxyConfig? Proxy { get; init; }
}
