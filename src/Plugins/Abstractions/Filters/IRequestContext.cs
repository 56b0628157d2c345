// The view of one request that a filter gets, free of ASP.NET types so plugins stay small.
using System.Runtime.CompilerServices;

namespace Mesh.Plugins;

/// <summary>
/// One request as a filter sees it. The sidecar creates one view per request and hands the same
/// view to every filter of the route's chain, so a filter sees what earlier filters changed.
/// Members added after contract 1.0 have default implementations, so a test double written
/// against 1.0 still compiles; the sidecar's own view implements every member.
/// </summary>
public interface IRequestContext
{
    /// <summary>HTTP method, upper case.</summary>
    string Method { get; }

    /// <summary>Host header without port.</summary>
    string Host { get; }

    /// <summary>Request path, unescaped.</summary>
    string Path { get; }

    /// <summary>Name of the matched route.</summary>
    string Route { get; }

    /// <summary>Name of the service the request goes to so far: the route's, or the last one a filter rerouted to.</summary>
    string Service { get; }

    /// <summary>The client's address as text.</summary>
    string ClientAddress { get; }

    /// <summary>First value of a request header, or null.</summary>
    string? GetHeader(string name);

    /// <summary>Sets (replaces) a request header sent upstream.</summary>
    void SetHeader(string name, string value);

    /// <summary>Removes a request header before it is sent upstream.</summary>
    void RemoveHeader(string name);

    /// <summary><c>http</c> or <c>https</c>, as the client spoke to the sidecar.</summary>
    string Scheme => "http";

    /// <summary>The HTTP version the client used: <c>HTTP/1.1</c> or <c>HTTP/2</c>.</summary>
    string Protocol => "HTTP/1.1";

    /// <summary>The raw query string including its leading <c>?</c>, or empty.</summary>
    string QueryString => "";

    /// <summary>First value of a query parameter (decoded), or null.</summary>
    string? GetQuery(string name) => null;

    /// <summary>A request cookie's value, or null.</summary>
    string? GetCookie(string name) => null;

    /// <summary>Every value of a request header, in order; empty when absent.</summary>
    IReadOnlyList<string> GetHeaderValues(string name) => GetHeader(name) is { } value ? [value] : [];

    /// <summary>Every request header: one pair per value, so a repeated header appears once per value.</summary>
    IEnumerable<KeyValuePair<string, string>> Headers => [];

    /// <summary>Name of the listener that accepted the request.</summary>
    string Listener => "";

    /// <summary><c>inbound</c> (a peer calling the local app) or <c>outbound</c> (the local app calling out).</summary>
    string Direction => "outbound";

    /// <summary>The client's port.</summary>
    int ClientPort => 0;

    /// <summary>
    /// The peer's SPIFFE ID (<c>spiffe://trust-domain/path</c>) from its mTLS client certificate;
    /// null when the connection is not mutual TLS.
    /// </summary>
    string? PeerIdentity => null;

    /// <summary>The endpoint subset (tag) the request goes to so far; null means every endpoint of <see cref="Service"/>.</summary>
    string? Subset => null;

    /// <summary>
    /// Values that filters of this request share: an earlier filter stores, a later one reads.
    /// Lives as long as the request.
    /// </summary>
    IDictionary<string, object?> Items => DefaultItems.For(this);
}

// Backs the default Items of views that do not implement it (test doubles built against contract 1.0):
// one bag per view, dropped with the view.
file static class DefaultItems
{
    private static readonly ConditionalWeakTable<IRequestContext, Dictionary<string, object?>> Bags = [];

    public static IDictionary<string, object?> For(IRequestContext context) => Bags.GetValue(context, static _ => new Dictionary<string, object?>(StringComparer.Ordinal));
}
