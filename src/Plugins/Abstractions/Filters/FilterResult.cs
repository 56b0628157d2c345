// What a filter tells the data path to do next: continue, answer now, or send to another service.
namespace Mesh.Plugins;

/// <summary>The kinds of decision a filter can take.</summary>
public enum FilterAction
{
    /// <summary>Run the next filter, then forward.</summary>
    Continue,

    /// <summary>Answer the client now with <see cref="FilterResult.StatusCode"/> and <see cref="FilterResult.Body"/>.</summary>
    Respond,

    /// <summary>Forward to <see cref="FilterResult.Service"/> instead of the route's service.</summary>
    Reroute,
}

/// <summary>A filter's decision. A small value type so that <see cref="Continue"/> costs nothing.</summary>
public readonly record struct FilterResult(FilterAction Action, int StatusCode, string? Body, string? Service)
{
    /// <summary>Go on to the next filter.</summary>
    public static FilterResult Continue => default;

    /// <summary>Answer the client directly.</summary>
    public static FilterResult Respond(int statusCode, string? body = null) => new(FilterAction.Respond, statusCode, body, null);

    /// <summary>Send the request to another service.</summary>
    public static FilterResult Reroute(string service)
    {
        ArgumentException.ThrowIfNullOrEmpty(service);
        return new(FilterAction.Reroute, 0, null, service);
    }
}
