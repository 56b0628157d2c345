// Bodies of the Connect endpoints: CA roots, leaf certificates, authorize, intentions.
using System.Text.Json.Serialization;

namespace Mesh.Discovery.Consul;

/// <summary><c>GET /v1/agent/connect/ca/roots</c> (and <c>/v1/connect/ca/roots</c>).</summary>
public sealed record CaRootList
{
    /// <summary>ID of the root that signs new leaves.</summary>
    [JsonPropertyName("ActiveRootID")]
    public string ActiveRootId { get; init; } = "";

    /// <summary>The SPIFFE trust domain (<c>&lt;uuid&gt;.consul</c>).</summary>
    public string? TrustDomain { get; init; }

    /// <summary>Every root to trust, active or not (both during a rotation).</summary>
    public IReadOnlyList<CaRoot> Roots { get; init; } = [];
}

/// <summary>One Connect CA root.</summary>
public sealed record CaRoot
{
    /// <summary>Root ID (a key fingerprint).</summary>
    [JsonPropertyName("ID")]
    public string Id { get; init; } = "";

    /// <summary>Human-readable name.</summary>
    public string? Name { get; init; }

    /// <summary>Certificate serial number.</summary>
    public ulong SerialNumber { get; init; }

    /// <summary>ID of the signing key.</summary>
    [JsonPropertyName("SigningKeyID")]
    public string? SigningKeyId { get; init; }

    /// <summary>Trust domain of an external CA.</summary>
    public string? ExternalTrustDomain { get; init; }

    /// <summary>Start of validity.</summary>
    public DateTimeOffset NotBefore { get; init; }

    /// <summary>End of validity.</summary>
    public DateTimeOffset NotAfter { get; init; }

    /// <summary>The root certificate, PEM.</summary>
    public string RootCert { get; init; } = "";

    /// <summary>Intermediates between the root and leaves, PEM; null when none.</summary>
    public IReadOnlyList<string>? IntermediateCerts { get; init; }

    /// <summary>Whether this root signs new leaves.</summary>
    public bool Active { get; init; }

    /// <summary><c>ec</c> or <c>rsa</c>.</summary>
    public string? PrivateKeyType { get; init; }

    /// <summary>Key size.</summary>
    public int PrivateKeyBits { get; init; }

    /// <summary>Raft index at creation.</summary>
    public ulong CreateIndex { get; init; }

    /// <summary>Raft index of the last change.</summary>
    public ulong ModifyIndex { get; init; }
}

/// <summary><c>GET /v1/agent/connect/ca/leaf/:service</c>: a service's certificate and key.</summary>
public sealed record LeafCert
{
    /// <summary>Serial number as colon-separated hex.</summary>
    public string SerialNumber { get; init; } = "";

    /// <summary>The leaf certificate, PEM.</summary>
    [JsonPropertyName("CertPEM")]
    public string CertPem { get; init; } = "";

    /// <summary>Its private key, PEM.</summary>
    [JsonPropertyName("PrivateKeyPEM")]
    public string PrivateKeyPem { get; init; } = "";

    /// <summary>The service the leaf is for.</summary>
    public string Service { get; init; } = "";

    /// <summary>The SPIFFE ID in the leaf's URI SAN.</summary>
    [JsonPropertyName("ServiceURI")]
    public string ServiceUri { get; init; } = "";

    /// <summary>Start of validity.</summary>
    public DateTimeOffset ValidAfter { get; init; }

    /// <summary>End of validity.</summary>
    public DateTimeOffset ValidBefore { get; init; }

    /// <summary>Enterprise namespace.</summary>
    public string? Namespace { get; init; }

    /// <summary>Raft index at creation.</summary>
    public ulong CreateIndex { get; init; }

    /// <summary>Raft index of the last change.</summary>
    public ulong ModifyIndex { get; init; }
}

/// <summary>The body of <c>POST /v1/agent/connect/authorize</c>.</summary>
public sealed record AuthorizeRequest
{
    /// <summary>The destination service (the one being called).</summary>
    public string Target { get; init; } = "";

    /// <summary>The caller's SPIFFE ID from its certificate's URI SAN.</summary>
    [JsonPropertyName("ClientCertURI")]
    public string ClientCertUri { get; init; } = "";

    /// <summary>The caller certificate's serial number.</summary>
    public string ClientCertSerial { get; init; } = "";
}

/// <summary>The answer of <c>POST /v1/agent/connect/authorize</c>.</summary>
public sealed record AuthorizeResponse
{
    /// <summary>Whether the connection may proceed.</summary>
    public bool Authorized { get; init; }

    /// <summary>Why (the matching intention, or the default policy).</summary>
    public string? Reason { get; init; }
}

/// <summary>A service intention (<c>/v1/connect/intentions</c>).</summary>
public sealed record Intention
{
    /// <summary>Legacy ID (older Consul only).</summary>
    [JsonPropertyName("ID")]
    public string? Id { get; init; }

    /// <summary>Free-form description.</summary>
    public string? Description { get; init; }

    /// <summary>Source namespace.</summary>
    [JsonPropertyName("SourceNS")]
    public string? SourceNs { get; init; }

    /// <summary>Source service, or <c>*</c>.</summary>
    public string SourceName { get; init; } = "";

    /// <summary>Destination namespace.</summary>
    [JsonPropertyName("DestinationNS")]
    public string? DestinationNs { get; init; }

    /// <summary>Destination service, or <c>*</c>.</summary>
    public string DestinationName { get; init; } = "";

    /// <summary><c>consul</c>.</summary>
    public string? SourceType { get; init; }

    /// <summary><c>allow</c> or <c>deny</c> (absent for L7 intentions with permissions).</summary>
    public string? Action { get; init; }

    /// <summary>Metadata.</summary>
    public IReadOnlyDictionary<string, string>? Meta { get; init; }

    /// <summary>Evaluation precedence; higher wins.</summary>
    public int Precedence { get; init; }

    /// <summary>Raft index at creation.</summary>
    public ulong CreateIndex { get; init; }

    /// <summary>Raft index of the last change.</summary>
    public ulong ModifyIndex { get; init; }
}

/// <summary>The answer of <c>GET /v1/connect/intentions/check</c>.</summary>
public sealed record IntentionCheck
{
    /// <summary>Whether a connection from source to destination is allowed.</summary>
    public bool Allowed { get; init; }
}
