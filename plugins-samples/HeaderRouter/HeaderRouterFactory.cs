// Mesh plugin "header-router": a request with a chosen header value goes to a subset of endpoints (a canary).
using Mesh.Plugins;

namespace Mesh.Samples.HeaderRouter;

/// <summary>
/// Builds the <c>header-router</c> filter. Config: <c>header</c> (default <c>x-canary</c>), <c>value</c>
/// (default <c>1</c>), <c>subset</c> (the endpoint tag, default <c>v2</c>) and <c>service</c> (default:
/// the route's service).
/// </summary>
public sealed class HeaderRouterFactory : IRequestFilterFactory
{
    /// <inheritdoc />
    public string Name => "header-router";

    /// <inheritdoc />
    public IRequestFilter Create(FilterSettings settings)
    {
        ArgumentNullException.ThrowIfNull(settings);
        return new HeaderRouterFilter(
            settings.GetString("header", "x-canary")!,
            settings.GetString("value", "1")!,
            settings.GetString("subset", "v2")!,
            settings.GetString("service"));
    }
}

/// <summary>Reroutes matching requests; every other request continues unchanged.</summary>
internal sealed class HeaderRouterFilter(string header, string value, string subset, string? service) : IRequestFilter
{
    public ValueTask<FilterResult> OnRequestAsync(IRequestContext context, CancellationToken cancellationToken) =>
        ValueTask.FromResult(string.Equals(context.GetHeader(header), value, StringComparison.Ordinal)
            ? FilterResult.Reroute(service ?? context.Service, subset)
            : FilterResult.Continue);
}
