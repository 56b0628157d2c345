// Stage 5 of the data path: the ordered routes of one listener; the first route whose every condition holds wins.
using Mesh.Plugins;
using Mesh.Sidecar.Upstream;

namespace Mesh.Sidecar.Routing;

/// <summary>A route compiled from config: matchers built once, checked per request without allocating.</summary>
internal sealed class CompiledRoute
{
    public required string Name { get; init; }

    /// <summary>Id of the cluster the route sends to.</summary>
    public required string ClusterId { get; init; }

    /// <summary>Service name as users know it (metrics label).</summary>
    public required string ServiceName { get; init; }

    public HostMatcher[] Hosts { get; init; } = [];

    public PathMatcher? Path { get; init; }

    public string[] Methods { get; init; } = [];

    public ValueMatcher[] Headers { get; init; } = [];

    public ValueMatcher[] Query { get; init; } = [];

    public ValueMatcher[] Cookies { get; init; } = [];

    public required RouteTransformer Transformer { get; init; }

    public FilterChain Filters { get; init; } = FilterChain.Empty;

    /// <summary>Timeout, rate limit, split, mirror and fault (src/Sidecar/Resilience); null when the route has none.</summary>
    public Mesh.Sidecar.Resilience.RoutePolicy? Policy { get; init; }

    public bool Matches(HttpRequest request) => Matches(request, HostWithoutPort(request.Host.Value));

    /// <summary>Checks every condition; <paramref name="host"/> is the Host header without its port.</summary>
    public bool Matches(HttpRequest request, ReadOnlySpan<char> host)
    {
        if (Hosts.Length > 0 && !AnyHost(host))
        {
            return false;
        }

        if (Path is not null && !Path.Matches(request.Path.Value ?? "/"))
        {
            return false;
        }

        if (Methods.Length > 0 && !AnyMethod(request.Method))
        {
            return false;
        }

        foreach (var header in Headers)
        {
            if (!header.Matches(request.Headers[header.Name]))
            {
                return false;
            }
        }

        // Query and cookie collections are parsed lazily, so only routes that ask for them pay.
        foreach (var query in Query)
        {
            if (!query.Matches(request.Query[query.Name]))
            {
                return false;
            }
        }

        foreach (var cookie in Cookies)
        {
            if (!cookie.Matches(request.Cookies[cookie.Name]))
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>The host part of a Host header, sliced rather than copied (HostString.Host allocates when a port is present).</summary>
    public static ReadOnlySpan<char> HostWithoutPort(string? value)
    {
        if (string.IsNullOrEmpty(value))
        {
            return [];
        }

        var span = value.AsSpan();
        if (span[0] == '[')
        {
            var close = span.IndexOf(']');
            return close > 0 ? span[1..close] : span;
        }

        var colon = span.LastIndexOf(':');
        return colon >= 0 ? span[..colon] : span;
    }

    private bool AnyHost(ReadOnlySpan<char> host)
    {
        foreach (var matcher in Hosts)
        {
            if (matcher.Matches(host))
            {
                return true;
            }
        }

        return false;
    }

    private bool AnyMethod(string method)
    {
        foreach (var allowed in Methods)
        {
            if (string.Equals(method, allowed, StringComparison.OrdinalIgnoreCase))
            {
                return true;
            }
        }

        return false;
    }
}

/// <summary>The routes of one listener in config order.</summary>
internal sealed class RouteTable(CompiledRoute[] routes)
{
    public static RouteTable Empty { get; } = new([]);

    public CompiledRoute[] Routes { get; } = routes;

    public CompiledRoute? Match(HttpRequest request)
    {
        var host = CompiledRoute.HostWithoutPort(request.Host.Value);
        foreach (var route in Routes)
        {
            if (route.Matches(request, host))
            {
                return route;
            }
        }

        return null;
    }
}
