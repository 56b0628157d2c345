// SPIFFE IDs of services: Mesh's form (spiffe://td/ns/N/svc/S), Consul Connect's (…/dc/D/svc/S), and how two are compared.
using System.Diagnostics.CodeAnalysis;

namespace Mesh.Sidecar.Security;

/// <summary>
/// A parsed SPIFFE ID (<c>spiffe://trust-domain/path</c>). Service IDs have the path
/// <c>/ns/NAMESPACE/svc/SERVICE</c> (Mesh, Istio) or <c>/ns/NAMESPACE/dc/DC/svc/SERVICE</c> (Consul Connect).
/// </summary>
public sealed class SpiffeId : IEquatable<SpiffeId>
{
    /// <summary>The URI scheme prefix of every SPIFFE ID.</summary>
    public const string Prefix = "spiffe://";

    private SpiffeId(string value, string trustDomain, string path, string? ns, string? datacenter, string? service)
    {
        Value = value;
        TrustDomain = trustDomain;
        Path = path;
        Namespace = ns;
        Datacenter = datacenter;
        Service = service;
    }

    /// <summary>The whole ID as written.</summary>
    public string Value { get; }

    /// <summary>The trust domain, lower case.</summary>
    public string TrustDomain { get; }

    /// <summary>The path, starting with <c>/</c>.</summary>
    public string Path { get; }

    /// <summary>The namespace of a service ID, else null.</summary>
    public string? Namespace { get; }

    /// <summary>The Consul datacenter of a Consul-form service ID, else null.</summary>
    public string? Datacenter { get; }

    /// <summary>The service of a service ID, else null.</summary>
    public string? Service { get; }

    /// <summary>The ID of <paramref name="service"/> in Mesh's form.</summary>
    public static string ForService(string trustDomain, string ns, string service)
    {
        ArgumentNullException.ThrowIfNull(trustDomain);
        return $"{Prefix}{trustDomain.ToLowerInvariant()}/ns/{ns}/svc/{service}";
    }

    /// <summary>Parses a SPIFFE ID; false with a reason when <paramref name="text"/> is not one.</summary>
    public static bool TryParse(string? text, [NotNullWhen(true)] out SpiffeId? id, out string? problem)
    {
        id = null;
        if (string.IsNullOrEmpty(text) || !text.StartsWith(Prefix, StringComparison.OrdinalIgnoreCase))
        {
            problem = "does not start with spiffe://";
            return false;
        }

        var rest = text[Prefix.Length..];
        var slash = rest.IndexOf('/', StringComparison.Ordinal);
        var domain = slash < 0 ? rest : rest[..slash];
        var path = slash < 0 ? "" : rest[slash..];
        if (domain.Length == 0 || Uri.CheckHostName(domain) == UriHostNameType.Unknown || domain.Contains(':', StringComparison.Ordinal))
        {
            problem = $"'{domain}' is not a trust domain name";
            return false;
        }

        if (path.Length > 0 && (path == "/" || path.EndsWith('/') || path.Contains("//", StringComparison.Ordinal) || path.Contains('?', StringComparison.Ordinal) || path.Contains('#', StringComparison.Ordinal)
            || path.Contains("/./", StringComparison.Ordinal) || path.Contains("/../", StringComparison.Ordinal)))
        {
            problem = $"'{path}' is not a valid SPIFFE path";
            return false;
        }

        string? ns = null, dc = null, service = null;
        var segments = path.Split('/', StringSplitOptions.RemoveEmptyEntries);
        if (segments.Length == 4 && segments[0] == "ns" && segments[2] == "svc")
        {
            (ns, service) = (segments[1], segments[3]);
        }
        else if (segments.Length == 6 && segments[0] == "ns" && segments[2] == "dc" && segments[4] == "svc")
        {
            (ns, dc, service) = (segments[1], segments[3], segments[5]);
        }

        var lowerDomain = domain.ToLowerInvariant();
        id = new SpiffeId(Prefix + lowerDomain + path, lowerDomain, path, ns, dc, service);
        problem = null;
        return true;
    }

    /// <summary>
    /// True when this ID names the same workload as <paramref name="expected"/>: equal IDs, or service
    /// IDs with the same trust domain, namespace and service, where a Consul datacenter on only one
    /// side is ignored (a Consul Connect leaf matches Mesh's form of the same service).
    /// </summary>
    public bool Matches(SpiffeId expected)
    {
        ArgumentNullException.ThrowIfNull(expected);
        if (string.Equals(Value, expected.Value, StringComparison.Ordinal))
        {
            return true;
        }

        return Service is not null && expected.Service is not null
            && TrustDomain == expected.TrustDomain
            && string.Equals(Namespace, expected.Namespace, StringComparison.Ordinal)
            && string.Equals(Service, expected.Service, StringComparison.Ordinal)
            && (Datacenter is null || expected.Datacenter is null || string.Equals(Datacenter, expected.Datacenter, StringComparison.Ordinal));
    }

    /// <inheritdoc />
    public bool Equals(SpiffeId? other) => other is not null && string.Equals(Value, other.Value, StringComparison.Ordinal);

    /// <inheritdoc />
    public override bool Equals(object? obj) => Equals(obj as SpiffeId);

    /// <inheritdoc />
    public override int GetHashCode() => StringComparer.Ordinal.GetHashCode(Value);

    /// <inheritdoc />
    public override string ToString() => Value;
}
