// Config records for mTLS: the sidecar's identity, listener TLS, upstream TLS and authorization rules.
namespace Mesh.Sidecar.Configuration;

/// <summary>The sidecar's own SPIFFE identity and where its certificates come from (<c>identity</c>).</summary>
public sealed record IdentityOptions
{
    /// <summary>Where the leaf and the trust bundle come from: <c>ca</c>, <c>files</c> or <c>consul</c>; unset means no identity (no mTLS).</summary>
    public string? Source { get; init; }

    /// <summary>The SPIFFE trust domain, for example <c>mesh.local</c>.</summary>
    public string TrustDomain { get; init; } = "mesh.local";

    /// <summary>The namespace part of this sidecar's SPIFFE ID (<c>spiffe://td/ns/NAMESPACE/svc/NAME</c>).</summary>
    public string Namespace { get; init; } = "default";

    /// <summary><c>ca</c> source: the folder <c>mesh-sidecar ca init</c> wrote (<c>ca.crt</c>, <c>ca.key</c>).</summary>
    public string? CaDir { get; init; }

    /// <summary><c>files</c> source: the leaf certificate (PEM; intermediates may follow it).</summary>
    public string? CertificateFile { get; init; }

    /// <summary><c>files</c> source: the leaf's private key (PEM).</summary>
    public string? KeyFile { get; init; }

    /// <summary><c>files</c> source: the CA certificates peers must chain to (PEM).</summary>
    public string? TrustBundleFile { get; init; }

    /// <summary><c>ca</c> source: lifetime of the leaf the sidecar issues itself; it is renewed at two-thirds of it.</summary>
    public int LeafTtlHours { get; init; } = 24;
}

/// <summary>How a listener treats TLS from peers (<c>listeners[].mtls</c>).</summary>
public static class MtlsModes
{
    /// <summary>Plaintext only (the default).</summary>
    public const string Off = "off";

    /// <summary>Only mTLS clients whose certificate chains to the trust bundle.</summary>
    public const string Strict = "strict";

    /// <summary>mTLS or plaintext on one port, told apart by the first byte.</summary>
    public const string Permissive = "permissive";

    /// <summary>Every mode.</summary>
    public static readonly IReadOnlyList<string> All = [Off, Strict, Permissive];
}

/// <summary>An edge certificate of an <c>http</c> listener, chosen by SNI (<c>listeners[].tls.certificates[]</c>).</summary>
public sealed record ServerCertificateOptions
{
    /// <summary>Exact names or <c>*.suffix</c> wildcards this certificate serves.</summary>
    public IReadOnlyList<string> ServerNames { get; init; } = [];

    /// <summary>Certificate (PEM; intermediates may follow it).</summary>
    public string CertificateFile { get; init; } = "";

    /// <summary>Private key (PEM).</summary>
    public string KeyFile { get; init; } = "";
}

/// <summary>How the sidecar talks TLS to a service's endpoints (<c>services.NAME.tls</c>).</summary>
public sealed record UpstreamTlsOptions
{
    /// <summary><c>off</c>, <c>mesh</c> (mTLS to peer sidecars) or <c>tls</c> (plain TLS to a non-mesh upstream).</summary>
    public string Mode { get; init; } = UpstreamTlsModes.Off;

    /// <summary><c>mesh</c>: the SPIFFE ID the endpoints must present; default <c>spiffe://TD/ns/default/svc/NAME</c>.</summary>
    public string? ServerIdentity { get; init; }

    /// <summary><c>tls</c>: CA certificates (PEM) to verify the upstream with; the system store when unset.</summary>
    public string? CaFile { get; init; }

    /// <summary><c>tls</c>: the name sent in SNI and checked in the certificate; the endpoint's host when unset.</summary>
    public string? ServerName { get; init; }

    /// <summary><c>tls</c>: an optional client certificate (PEM).</summary>
    public string? CertificateFile { get; init; }

    /// <summary><c>tls</c>: the client certificate's key (PEM).</summary>
    public string? KeyFile { get; init; }
}

/// <summary>Upstream TLS modes.</summary>
public static class UpstreamTlsModes
{
    /// <summary>Plaintext.</summary>
    public const string Off = "off";

    /// <summary>mTLS with this sidecar's leaf; the server must present the expected SPIFFE ID.</summary>
    public const string Mesh = "mesh";

    /// <summary>Plain TLS re-encryption to a non-mesh upstream.</summary>
    public const string Tls = "tls";

    /// <summary>Every mode.</summary>
    public static readonly IReadOnlyList<string> All = [Off, Mesh, Tls];
}

/// <summary>Who may call the local app (<c>authorization</c>); evaluated on inbound listeners.</summary>
public sealed record AuthorizationOptions
{
    /// <summary><c>allow</c> or <c>deny</c>: what happens when no rule matches.</summary>
    public string DefaultAction { get; init; } = AuthorizationActions.Allow;

    /// <summary>Ordered rules; the first that matches decides.</summary>
    public IReadOnlyList<AuthorizationRuleOptions> Rules { get; init; } = [];

    /// <summary>Also ask the Consul agent's intentions (<c>/v1/agent/connect/authorize</c>) for each caller the rules allow; fails closed.</summary>
    public bool ConsulIntentions { get; init; }
}

/// <summary>One authorization rule.</summary>
public sealed record AuthorizationRuleOptions
{
    /// <summary>Rule name, reported in metrics and in the 403 body.</summary>
    public string Name { get; init; } = "";

    /// <summary>Inbound listeners the rule applies to; empty means every inbound listener.</summary>
    public IReadOnlyList<string> Listeners { get; init; } = [];

    /// <summary>Caller SPIFFE IDs, <c>*</c> (any authenticated peer) or <c>unauthenticated</c>; empty means anyone.</summary>
    public IReadOnlyList<string> From { get; init; } = [];

    /// <summary>HTTP conditions (the route match model); a rule with a match does not apply to TCP.</summary>
    public AuthorizationMatchOptions? Match { get; init; }

    /// <summary><c>allow</c> or <c>deny</c>.</summary>
    public string Action { get; init; } = AuthorizationActions.Allow;
}

/// <summary>The HTTP part of an authorization rule: path, methods and headers, as in route matches.</summary>
public sealed record AuthorizationMatchOptions
{
    /// <summary>Path condition.</summary>
    public PathMatchOptions? Path { get; init; }

    /// <summary>Methods; empty allows any.</summary>
    public IReadOnlyList<string> Methods { get; init; } = [];

    /// <summary>Header conditions.</summary>
    public IReadOnlyList<ValueMatchOptions> Headers { get; init; } = [];
}

/// <summary>Authorization actions.</summary>
public static class AuthorizationActions
{
    /// <summary>Let the request or connection through.</summary>
    public const string Allow = "allow";

    /// <summary>Refuse it: 403 for HTTP, a closed connection for TCP.</summary>
    public const string Deny = "deny";
}
