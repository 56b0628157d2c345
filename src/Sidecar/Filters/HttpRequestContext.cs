// Stage 4 of the data path: adapts an ASP.NET request to the plugin-facing IRequestContext.
using Mesh.Plugins;
using Mesh.Sidecar.Routing;

namespace Mesh.Sidecar.Filters;

/// <summary>The filter chain's view of one request; created only for routes that have filters.</summary>
internal sealed class HttpRequestContext(HttpContext context, CompiledRoute route) : IRequestContext
{
    public string Method => context.Request.Method;

    public string Host => context.Request.Host.Host;

    public string Path => context.Request.Path.Value ?? "/";

    public string Route => route.Name;

    public string Service => route.ServiceName;

    public string ClientAddress => context.Connection.RemoteIpAddress?.ToString() ?? "";

    public string? GetHeader(string name)
    {
        var values = context.Request.Headers[name];
        return values.Count == 0 ? null : values[0];
    }

    public void SetHeader(string name, string value) => context.Request.Headers[name] = value;

    public void RemoveHeader(string name) => context.Request.Headers.Remove(name);
}
