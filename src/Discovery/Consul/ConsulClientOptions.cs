// Where the Consul agent is and how to talk to it: address, ACL token, datacenter, TLS and retries.
namespace Mesh.Discovery.Consul;

/// <summary>How <see cref="ConsulClient"/> reaches the local Consul agent.</summary>
public sealed record ConsulClientOptions
{
    /// <summary>The agent's HTTP(S) address, for example <c>http://127.0.0.1:8500</c>.</summary>
    public Uri Address { get; init; } = new("http://127.0.0.1:8500");

    /// <summary>ACL token sent as <c>X-Consul-Token</c>; empty sends none (the agent's default token applies).</summary>
    public string Token { get; init; } = "";

    /// <summary>A file holding the ACL token; read again whenever it changes (tokens rotated on disk).</summary>
    public string TokenFile { get; init; } = "";

    /// <summary>Datacenter for catalog and health queries (<c>?dc=</c>); empty means the agent's own.</summary>
    public string Datacenter { get; init; } = "";

    /// <summary>PEM bundle of CAs that sign the agent's HTTPS certificate; empty uses the system store.</summary>
    public string CaFile { get; init; } = "";

    /// <summary>PEM client certificate presented to the agent (with <see cref="KeyFile"/>).</summary>
    public string CertificateFile { get; init; } = "";

    /// <summary>PEM private key of <see cref="CertificateFile"/>.</summary>
    public string KeyFile { get; init; } = "";

    /// <summary>How long the agent may hold a blocking query (<c>?wait=</c>); Consul caps it at 10 minutes.</summary>
    public TimeSpan Wait { get; init; } = TimeSpan.FromMinutes(5);

    /// <summary>Time allowed to open a connection to the agent.</summary>
    public TimeSpan ConnectTimeout { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>Time allowed for a call that does not block.</summary>
    public TimeSpan RequestTimeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>Retries of a failed call (connection refused, 5xx, 429) before it fails.</summary>
    public int MaxRetryAttempts { get; init; } = 3;

    /// <summary>First retry delay; later ones grow exponentially with jitter.</summary>
    public TimeSpan RetryDelay { get; init; } = TimeSpan.FromMilliseconds(200);

    /// <summary>Longest delay between two retries.</summary>
    public TimeSpan MaxRetryDelay { get; init; } = TimeSpan.FromSeconds(5);
}
