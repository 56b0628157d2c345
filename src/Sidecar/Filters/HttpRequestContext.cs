// Stage 3 of the data path: adapts an ASP.NET request (and its response) to the plugin-facing views.
using Mesh.Plugins;
using Mesh.Sidecar.Listeners;
using Mesh.Sidecar.Routing;
using Mesh.Sidecar.Security;

namespace Mesh.Sidecar.Filters;

/// <summary>
/// The filter chain's view of one request; created only for routes that have filters, and the only
/// object the filter stage allocates per request (the item bag and header lists only when a filter asks).
/// The same object is the response filters' view, so a response filter sees what request filters left
/// in <see cref="Items"/>.
/// </summary>
internal sealed class HttpRequestContext : IRequestContext, IResponseContext, IRoutableContext
{
    private readonly HttpContext _context;
    private readonly CompiledRoute _route;
    private readonly MeshListenerFeature? _listener;
    private string _service;
    private string? _subset;
    private string? _clientAddress;
    private Dictionary<string, object?>? _items;
    private FilterChain? _responseChain;

    public HttpRequestContext(HttpContext context, CompiledRoute route, MeshListenerFeature? listener = null)
    {
        _context = context;
        _route = route;
        _listener = listener;
        _service = route.ServiceName;
    }

    public string Method => _context.Request.Method;

    public string Host => _context.Request.Host.Host;

    public string Path => _context.Request.Path.Value ?? "/";

    public string Route => _route.Name;

    public string Service => _service;

    public string? Subset => _subset;

    public string ClientAddress => _clientAddress ??= _context.Connection.RemoteIpAddress?.ToString() ?? "";

    public int ClientPort => _context.Connection.RemotePort;

    public string Scheme => _context.Request.Scheme;

    public string Protocol => _context.Request.Protocol;

    public string QueryString => _context.Request.QueryString.Value ?? "";

    public string Listener => _listener?.Name ?? "";

    public string Direction => _listener?.Inbound == true ? "inbound" : "outbound";

    // The mTLS listener sets the feature on connections whose client certificate passed the checks.
    public string? PeerIdentity => _context.Features.Get<IPeerIdentityFeature>()?.PeerId.Value;

    public IDictionary<string, object?> Items => _items ??= new Dictionary<string, object?>(StringComparer.Ordinal);

    public IEnumerable<KeyValuePair<string, string>> Headers => Pairs(_context.Request.Headers);

    public string? GetHeader(string name)
    {
        var values = _context.Request.Headers[name];
        return values.Count == 0 ? null : values[0];
    }

    public IReadOnlyList<string> GetHeaderValues(string name)
    {
        var values = _context.Request.Headers[name];
        return values.Count == 0 ? [] : (string[])values!;
    }

    public void SetHeader(string name, string value) => _context.Request.Headers[name] = value;

    public void RemoveHeader(string name) => _context.Request.Headers.Remove(name);

    public string? GetQuery(string name)
    {
        var values = _context.Request.Query[name];
        return values.Count == 0 ? null : values[0];
    }

    public string? GetCookie(string name) => _context.Request.Cookies[name];

    void IRoutableContext.Reroute(string service, string? subset)
    {
        _service = service;
        _subset = subset;
    }

    /// <summary>Runs the chain's response filters when the response head is about to go out.</summary>
    public void RunResponseFiltersOnStart(FilterChain chain)
    {
        _responseChain = chain;
        _context.Response.OnStarting(static state => ((HttpRequestContext)state).RunResponseFiltersAsync(), this);
    }

    private async Task RunResponseFiltersAsync()
    {
        if (!await _responseChain!.RunResponseAsync(this, _context.RequestAborted).ConfigureAwait(false))
        {
            // A response filter that must not be skipped failed: nothing of this response goes out.
            _context.Abort();
        }
    }

    IRequestContext IResponseContext.Request => this;

    int IResponseContext.StatusCode => _context.Response.StatusCode;

    IEnumerable<KeyValuePair<string, string>> IResponseContext.Headers => Pairs(_context.Response.Headers);

    string? IResponseContext.GetHeader(string name)
    {
        var values = _context.Response.Headers[name];
        return values.Count == 0 ? null : values[0];
    }

    void IResponseContext.SetHeader(string name, string value) => _context.Response.Headers[name] = value;

    void IResponseContext.RemoveHeader(string name) => _context.Response.Headers.Remove(name);

    private static IEnumerable<KeyValuePair<string, string>> Pairs(IHeaderDictionary headers)
    {
        foreach (var (name, values) in headers)
        {
            foreach (var value in values)
            {
                yield return new KeyValuePair<string, string>(name, value ?? "");
            }
        }
    }
}
