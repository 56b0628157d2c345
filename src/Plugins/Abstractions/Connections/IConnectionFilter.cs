// The connection-level hook: allow or deny a connection at accept, before any byte goes upstream.
namespace Mesh.Plugins;

/// <summary>
/// Runs once per accepted connection on every listener, after the sidecar has read what it can see
/// without decrypting (the SNI and ALPN of a TLS ClientHello). Authorization and plugin filters plug
/// in here. Configured per listener (<c>listeners[].connectionFilters</c>) through an
/// <see cref="IConnectionFilterFactory"/>, or registered in the sidecar's services.
/// </summary>
public interface IConnectionFilter
{
    /// <summary>True lets the connection through; false closes it at once.</summary>
    ValueTask<bool> AllowAsync(AcceptedConnection connection, CancellationToken cancellationToken);
}

/// <summary>What is known of a connection at accept.</summary>
/// <param name="Listener">Name of the listener that accepted it.</param>
/// <param name="Protocol">What the listener saw: <c>http1</c>, <c>http2</c>, <c>tls</c> or <c>tcp</c>.</param>
/// <param name="RemoteAddress">Client IP address as text.</param>
/// <param name="RemotePort">Client port.</param>
/// <param name="ServerName">SNI from the ClientHello, lower case; null when not TLS or absent.</param>
/// <param name="Alpn">ALPN protocols the client offered, in its order; empty when none.</param>
public sealed record AcceptedConnection(
    string Listener,
    string Protocol,
    string RemoteAddress,
    int RemotePort,
    string? ServerName,
    IReadOnlyList<string> Alpn)
{
    /// <summary>
    /// The peer's SPIFFE ID (<c>spiffe://trust-domain/path</c>) from its mTLS client certificate;
    /// null when the listener does not terminate mutual TLS.
    /// </summary>
    public string? PeerIdentity { get; init; }
}
