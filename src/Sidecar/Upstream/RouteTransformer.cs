// Route transforms applied while YARP copies the request and response: header set/add/remove and prefix stripping.
using Mesh.Sidecar.Configuration;
using Yarp.ReverseProxy.Forwarder;

namespace Mesh.Sidecar.Upstream;

/// <summary>
/// One transformer per route, built at config time. It keeps the client's Host header (as Envoy
/// does by default) so virtual-hosted upstreams see the name the client asked for.
/// </summary>
internal sealed class RouteTransformer : HttpTransformer
{
    private readonly string? _stripPrefix;
    private readonly KeyValuePair<string, string>[] _requestSet;
    private readonly KeyValuePair<string, string>[] _requestAdd;
    private readonly string[] _requestRemove;
    private readonly KeyValuePair<string, string>[] _responseSet;
    private readonly KeyValuePair<string, string>[] _responseAdd;
    private readonly string[] _responseRemove;
    private readonly bool _touchesResponse;

    public RouteTransformer(TransformOptions options)
    {
        _stripPrefix = string.IsNullOrEmpty(options.StripPrefix) || options.StripPrefix == "/" ? null : options.StripPrefix.TrimEnd('/');
        _requestSet = [.. options.RequestHeaders.Set];
        _requestAdd = [.. options.RequestHeaders.Add];
        _requestRemove = [.. options.RequestHeaders.Remove];
        _responseSet = [.. options.ResponseHeaders.Set];
        _responseAdd = [.. options.ResponseHeaders.Add];
        _responseRemove = [.. options.ResponseHeaders.Remove];
        _touchesResponse = _responseSet.Length + _responseAdd.Length + _responseRemove.Length > 0;
    }

    public static RouteTransformer None { get; } = new(new TransformOptions());

    public override async ValueTask TransformRequestAsync(HttpContext httpContext, HttpRequestMessage proxyRequest, string destinationPrefix, CancellationToken cancellationToken)
    {
        await base.TransformRequestAsync(httpContext, proxyRequest, destinationPrefix, cancellationToken).ConfigureAwait(false);
        var request = httpContext.Request;
        // The base copy keeps the client's Host header (YARP drops it only through its transform builder).

        if (_stripPrefix is not null)
        {
            proxyRequest.RequestUri = RequestUtilities.MakeDestinationAddress(destinationPrefix, UpstreamPath(request), request.QueryString);
        }

        foreach (var name in _requestRemove)
        {
            RemoveRequestHeader(proxyRequest, name);
        }

        foreach (var (name, value) in _requestSet)
        {
            RemoveRequestHeader(proxyRequest, name);
            AddRequestHeader(proxyRequest, name, value);
        }

        foreach (var (name, value) in _requestAdd)
        {
            AddRequestHeader(proxyRequest, name, value);
        }
    }

    public override async ValueTask<bool> TransformResponseAsync(HttpContext httpContext, HttpResponseMessage? proxyResponse, CancellationToken cancellationToken)
    {
        var copyBody = await base.TransformResponseAsync(httpContext, proxyResponse, cancellationToken).ConfigureAwait(false);
        ApplyResponseHeaders(httpContext.Response.Headers);
        return copyBody;
    }

    /// <summary>True when the route sets, adds or removes request headers.</summary>
    internal bool ChangesRequestHeaders => _requestSet.Length + _requestAdd.Length + _requestRemove.Length > 0;

    /// <summary>Request headers the route sets, replacing the client's.</summary>
    internal ReadOnlySpan<KeyValuePair<string, string>> RequestSet => _requestSet;

    /// <summary>Request headers the route adds next to the client's.</summary>
    internal ReadOnlySpan<KeyValuePair<string, string>> RequestAdd => _requestAdd;

    /// <summary>Whether the client's header <paramref name="name"/> is removed or replaced on the way upstream.</summary>
    internal bool DropsRequestHeader(string name)
    {
        foreach (var removed in _requestRemove)
        {
            if (string.Equals(removed, name, StringComparison.OrdinalIgnoreCase))
            {
                return true;
            }
        }

        foreach (var (set, _) in _requestSet)
        {
            if (string.Equals(set, name, StringComparison.OrdinalIgnoreCase))
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>The path sent upstream: the client's, less the route's strip prefix.</summary>
    internal PathString UpstreamPath(HttpRequest request)
    {
        if (_stripPrefix is not null && request.Path.StartsWithSegments(_stripPrefix, StringComparison.Ordinal, out var remaining))
        {
            return remaining.HasValue ? remaining : new PathString("/");
        }

        return request.Path;
    }

    /// <summary>Applies the route's response header changes to a response not yet started.</summary>
    internal void ApplyResponseHeaders(IHeaderDictionary headers)
    {
        if (!_touchesResponse)
        {
            return;
        }

        foreach (var name in _responseRemove)
        {
            headers.Remove(name);
        }

        foreach (var (name, value) in _responseSet)
        {
            headers[name] = value;
        }

        foreach (var (name, value) in _responseAdd)
        {
            headers.Append(name, value);
        }
    }

    private static void RemoveRequestHeader(HttpRequestMessage request, string name)
    {
        // Remove throws for a name that belongs to the other collection (Content-Type on the
        // request's headers, Authorization on its content's); NonValidated.Contains answers false.
        if (request.Headers.NonValidated.Contains(name))
        {
            request.Headers.Remove(name);
        }

        if (request.Content is { } content && content.Headers.NonValidated.Contains(name))
        {
            content.Headers.Remove(name);
        }
    }

    private static void AddRequestHeader(HttpRequestMessage request, string name, string value)
    {
        if (!request.Headers.TryAddWithoutValidation(name, value))
        {
            request.Content?.Headers.TryAddWithoutValidation(name, value);
        }
    }
}
