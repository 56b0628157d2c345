// The optional response side of a filter: sees status and headers before they go to the client.
namespace Mesh.Plugins;

/// <summary>
/// Implemented by an <see cref="IRequestFilter"/> that also wants the response. The sidecar calls it
/// once the response head is ready and before any of it goes to the client: for the upstream's
/// response and for the sidecar's own error answers (502, 503, 504) after forwarding. A request
/// answered by a filter (<see cref="FilterResult.Respond(int, string?)"/>) skips response filters.
/// Response filters of a chain run in reverse order (the last request filter sees the response first).
/// </summary>
public interface IResponseFilter
{
    /// <summary>Inspects the response and may set or remove its headers.</summary>
    ValueTask OnResponseAsync(IResponseContext context, CancellationToken cancellationToken);
}

/// <summary>A response as a response filter sees it, before its head is sent.</summary>
public interface IResponseContext
{
    /// <summary>The request this response answers (the same view the request filters saw, with its items).</summary>
    IRequestContext Request { get; }

    /// <summary>The status code about to be sent.</summary>
    int StatusCode { get; }

    /// <summary>First value of a response header, or null.</summary>
    string? GetHeader(string name);

    /// <summary>Every response header: one pair per value.</summary>
    IEnumerable<KeyValuePair<string, string>> Headers { get; }

    /// <summary>Sets (replaces) a response header.</summary>
    void SetHeader(string name, string value);

    /// <summary>Removes a response header.</summary>
    void RemoveHeader(string name);
}
