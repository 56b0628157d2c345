// Bodies of the agent endpoints: service and check registration, TTL updates, registered services.
using System.Text.Json;
using System.Text.Json.Serialization;

namespace Mesh.Discovery.Consul;

/// <summary>The body of <c>PUT /v1/agent/service/register</c>.</summary>
public sealed record AgentServiceRegistration
{
    /// <summary>Instance ID; Consul uses <see cref="Name"/> when empty.</summary>
    [JsonPropertyName("ID")]
    public string? Id { get; init; }

    /// <summary>Service name (required).</summary>
    public string Name { get; init; } = "";

    /// <summary>Free-form tags.</summary>
    public IReadOnlyList<string>? Tags { get; init; }

    /// <summary>Address peers use; empty means the agent's node address.</summary>
    public string? Address { get; init; }

    /// <summary>Named alternative addresses (<c>lan</c>, <c>wan</c>).</summary>
    public IReadOnlyDictionary<string, ServiceAddress>? TaggedAddresses { get; init; }

    /// <summary>Key/value metadata.</summary>
    public IReadOnlyDictionary<string, string>? Meta { get; init; }

    /// <summary>Port peers use.</summary>
    public int Port { get; init; }

    /// <summary>Service kind (empty for a typical service, <c>connect-proxy</c>, ...).</summary>
    public string? Kind { get; init; }

    /// <summary>Whether catalog tag changes override the agent's.</summary>
    public bool EnableTagOverride { get; init; }

    /// <summary>One check.</summary>
    public AgentServiceCheck? Check { get; init; }

    /// <summary>Several checks.</summary>
    public IReadOnlyList<AgentServiceCheck>? Checks { get; init; }

    /// <summary>Relative weights by health; Consul defaults to passing 1, warning 1.</summary>
    public ServiceWeights? Weights { get; init; }
}

/// <summary>A check embedded in a service registration.</summary>
public record AgentServiceCheck
{
    /// <summary>Check ID; Consul uses <c>service:&lt;service id&gt;</c> for a service's single check.</summary>
    [JsonPropertyName("CheckID")]
    public string? CheckId { get; init; }

    /// <summary>Human-readable name.</summary>
    public string? Name { get; init; }

    /// <summary>Free-form notes.</summary>
    public string? Notes { get; init; }

    /// <summary>Script check command and arguments.</summary>
    public IReadOnlyList<string>? Args { get; init; }

    /// <summary>Docker container for a script check.</summary>
    [JsonPropertyName("DockerContainerID")]
    public string? DockerContainerId { get; init; }

    /// <summary>Shell for a Docker script check.</summary>
    public string? Shell { get; init; }

    /// <summary>URL an HTTP check requests.</summary>
    [JsonPropertyName("HTTP")]
    public string? Http { get; init; }

    /// <summary>HTTP method of an HTTP check.</summary>
    public string? Method { get; init; }

    /// <summary>Headers of an HTTP check.</summary>
    public IReadOnlyDictionary<string, IReadOnlyList<string>>? Header { get; init; }

    /// <summary>Body of an HTTP check.</summary>
    public string? Body { get; init; }

    /// <summary><c>host:port</c> a TCP check connects to.</summary>
    [JsonPropertyName("TCP")]
    public string? Tcp { get; init; }

    /// <summary>How often a check runs, as a Go duration (<c>10s</c>).</summary>
    public string? Interval { get; init; }

    /// <summary>Timeout of one run, as a Go duration.</summary>
    public string? Timeout { get; init; }

    /// <summary>A TTL check turns critical when not updated within this duration.</summary>
    [JsonPropertyName("TTL")]
    public string? Ttl { get; init; }

    /// <summary>Skip TLS verification of an HTTPS check.</summary>
    [JsonPropertyName("TLSSkipVerify")]
    public bool? TlsSkipVerify { get; init; }

    /// <summary>Initial status (<c>passing</c>, <c>warning</c>, <c>critical</c>); Consul starts checks critical.</summary>
    public string? Status { get; init; }

    /// <summary>After being critical this long, the service is deregistered (Go duration, at least 1m).</summary>
    public string? DeregisterCriticalServiceAfter { get; init; }
}

/// <summary>The body of <c>PUT /v1/agent/check/register</c>: a check, optionally tied to a service.</summary>
public sealed record AgentCheckRegistration : AgentServiceCheck
{
    /// <summary>Check ID; defaults to the name.</summary>
    [JsonPropertyName("ID")]
    public string? Id { get; init; }

    /// <summary>The service the check belongs to.</summary>
    [JsonPropertyName("ServiceID")]
    public string? ServiceId { get; init; }
}

/// <summary>The body of <c>PUT /v1/agent/check/update/:check_id</c>.</summary>
public sealed record CheckUpdate
{
    /// <summary><c>passing</c>, <c>warning</c> or <c>critical</c>.</summary>
    public string Status { get; init; } = HealthStatus.Passing;

    /// <summary>Free-form output shown with the check.</summary>
    public string? Output { get; init; }
}

/// <summary>Relative traffic weights of an instance by its health.</summary>
public sealed record ServiceWeights
{
    /// <summary>Weight while every check passes.</summary>
    public int Passing { get; init; } = 1;

    /// <summary>Weight while a check warns.</summary>
    public int Warning { get; init; } = 1;
}

/// <summary>An address and port in <c>TaggedAddresses</c>.</summary>
public sealed record ServiceAddress
{
    /// <summary>IP address or host name.</summary>
    [JsonPropertyName("address")]
    public string Address { get; init; } = "";

    /// <summary>Port.</summary>
    [JsonPropertyName("port")]
    public int Port { get; init; }
}

/// <summary>A service as the agent (<c>/v1/agent/services</c>) or the health endpoint reports it.</summary>
public sealed record AgentService
{
    /// <summary>Service kind; empty for a typical service.</summary>
    public string? Kind { get; init; }

    /// <summary>Instance ID.</summary>
    [JsonPropertyName("ID")]
    public string Id { get; init; } = "";

    /// <summary>Service name.</summary>
    public string Service { get; init; } = "";

    /// <summary>Tags; null when the instance has none.</summary>
    public IReadOnlyList<string>? Tags { get; init; }

    /// <summary>Metadata; null when the instance has none.</summary>
    public IReadOnlyDictionary<string, string>? Meta { get; init; }

    /// <summary>Enterprise namespace.</summary>
    public string? Namespace { get; init; }

    /// <summary>Port.</summary>
    public int Port { get; init; }

    /// <summary>Address; empty means the node's address.</summary>
    public string? Address { get; init; }

    /// <summary>Named alternative addresses.</summary>
    public IReadOnlyDictionary<string, ServiceAddress>? TaggedAddresses { get; init; }

    /// <summary>Weights by health.</summary>
    public ServiceWeights? Weights { get; init; }

    /// <summary>Whether catalog tag changes override the agent's.</summary>
    public bool EnableTagOverride { get; init; }

    /// <summary>Datacenter of the instance.</summary>
    public string? Datacenter { get; init; }

    /// <summary>Hash of the definition (hash-based blocking on <c>/v1/agent/service/:id</c>).</summary>
    public string? ContentHash { get; init; }

    /// <summary>Proxy settings of a <c>connect-proxy</c>.</summary>
    public ConnectProxyConfig? Proxy { get; init; }
}

/// <summary>A Connect proxy's configuration as Consul reports it.</summary>
public sealed record ConnectProxyConfig
{
    /// <summary>The service the proxy represents.</summary>
    public string? DestinationServiceName { get; init; }

    /// <summary>The instance the proxy represents.</summary>
    [JsonPropertyName("DestinationServiceID")]
    public string? DestinationServiceId { get; init; }

    /// <summary>Where the proxied application listens.</summary>
    public string? LocalServiceAddress { get; init; }

    /// <summary>Port of the proxied application.</summary>
    public int LocalServicePort { get; init; }

    /// <summary><c>direct</c> or <c>transparent</c>.</summary>
    public string? Mode { get; init; }

    /// <summary>Transparent-proxy settings.</summary>
    public TransparentProxyConfig? TransparentProxy { get; init; }

    /// <summary>Opaque proxy configuration.</summary>
    public IReadOnlyDictionary<string, JsonElement>? Config { get; init; }

    /// <summary>Upstreams the proxy exposes locally.</summary>
    public IReadOnlyList<ProxyUpstream>? Upstreams { get; init; }
}

/// <summary>Transparent-proxy settings.</summary>
public sealed record TransparentProxyConfig
{
    /// <summary>Port outbound traffic is redirected to.</summary>
    public int OutboundListenerPort { get; init; }
}

/// <summary>An upstream of a Connect proxy.</summary>
public sealed record ProxyUpstream
{
    /// <summary><c>service</c> or <c>prepared_query</c>.</summary>
    public string? DestinationType { get; init; }

    /// <summary>Name of the upstream service.</summary>
    public string DestinationName { get; init; } = "";

    /// <summary>Local port the proxy binds for it.</summary>
    public int LocalBindPort { get; init; }
}
