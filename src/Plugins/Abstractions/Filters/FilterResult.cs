// What a filter tells the data path to do next: continue, answer now, or send to another service or subset.
namespace Mesh.Plugins;

/// <summary>The kinds of decision a filter can take.</summary>
public enum FilterAction
{
    /// <summary>Run the next filter, then forward.</summary>
    Continue,

    /// <summary>Answer the client now with <see cref="FilterResult.StatusCode"/> and <see cref="FilterResult.Body"/>.</summary>
    Respond,

    /// <summary>
    /// Forward to <see cref="FilterResult.Service"/> (and <see cref="FilterResult.Subset"/>) instead of
    /// the route's service. The chain goes on: later filters see the new service, the last reroute wins.
    /// </summary>
    Reroute,
}

/// <summary>
/// A filter's decision. A small value type so that <see cref="Continue"/> costs nothing; a filter
/// that answers the same way every time can build its result once and return it on each request.
/// </summary>
public readonly record struct FilterResult(FilterAction Action, int StatusCode, string? Body, string? Service)
{
    /// <summary>Go on to the next filter.</summary>
    public static FilterResult Continue => default;

    /// <summary>For <see cref="FilterAction.Reroute"/>: the tag the chosen endpoints must carry; null means every endpoint.</summary>
    public string? Subset { get; init; }

    /// <summary>For <see cref="FilterAction.Respond"/>: response headers (for example <c>WWW-Authenticate</c>, <c>Retry-After</c>).</summary>
    public IReadOnlyList<KeyValuePair<string, string>>? Headers { get; init; }

    /// <summary>Answer the client directly.</summary>
    public static FilterResult Respond(int statusCode, string? body = null) => new(FilterAction.Respond, statusCode, body, null);

    /// <summary>Answer the client directly with response headers.</summary>
    public static FilterResult Respond(int statusCode, string? body, IEnumerable<KeyValuePair<string, string>> headers)
    {
        ArgumentNullException.ThrowIfNull(headers);
        return new(FilterAction.Respond, statusCode, body, null) { Headers = [.. headers] };
    }

    /// <summary>Send the request to another service.</summary>
    public static FilterResult Reroute(string service)
    {
        ArgumentException.ThrowIfNullOrEmpty(service);
        return new(FilterAction.Reroute, 0, null, service);
    }

    /// <summary>Send the request to the endpoints of <paramref name="service"/> that carry the tag <paramref name="subset"/>.</summary>
    public static FilterResult Reroute(string service, string subset)
    {
        ArgumentException.ThrowIfNullOrEmpty(service);
        ArgumentException.ThrowIfNullOrEmpty(subset);
        return new(FilterAction.Reroute, 0, null, service) { Subset = subset };
    }
}
