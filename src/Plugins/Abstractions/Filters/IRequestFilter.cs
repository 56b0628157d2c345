// The one filter contract shared by built-in filters, C# plugin DLLs and JavaScript filters.
namespace Mesh.Plugins;

/// <summary>
/// A request filter in a route's ordered chain. A factory parses the filter's configuration once;
/// the filter then sees every request of the route and steers the flow by what it returns.
/// Implementations must be safe to call concurrently (HTTP/2 runs many requests of one connection
/// at once) and must not block: return a pending <see cref="ValueTask{TResult}"/> instead. A filter
/// that also implements <see cref="IResponseFilter"/> sees the response; one that implements
/// <see cref="IDisposable"/> or <see cref="IAsyncDisposable"/> is disposed after the last request that uses it.
/// </summary>
public interface IRequestFilter
{
    /// <summary>Inspects (and may change) the request before it is routed to an endpoint.</summary>
    ValueTask<FilterResult> OnRequestAsync(IRequestContext context, CancellationToken cancellationToken);
}

/// <summary>Creates <see cref="IRequestFilter"/> instances from configuration; found by <see cref="Name"/>.</summary>
/// <remarks>
/// Implement <see cref="Create(FilterSettings)"/>, which gets the route's <c>config</c> object as
/// JSON. Factories written against contract 1.0 implement only the string-pair overload; the
/// sidecar then hands them the <c>config</c> flattened to <c>key:sub:0</c> pairs.
/// A factory needs a public parameterless constructor.
/// </remarks>
public interface IRequestFilterFactory
{
    /// <summary>The name routes use to ask for this filter.</summary>
    string Name { get; }

    /// <summary>Parses <paramref name="settings"/> once and returns the filter; throws <see cref="FormatException"/> on bad settings.</summary>
    IRequestFilter Create(IReadOnlyDictionary<string, string> settings) =>
        throw new NotSupportedException($"filter factory '{Name}' implements neither Create(FilterSettings) nor Create(IReadOnlyDictionary<string, string>)");

    /// <summary>
    /// Validates the route's <c>config</c> once and returns the filter. Throw
    /// <see cref="FilterConfigException"/> (or <see cref="FormatException"/>) for a bad setting: the
    /// sidecar reports it as a config error at the setting's JSON path.
    /// </summary>
    IRequestFilter Create(FilterSettings settings)
    {
        ArgumentNullException.ThrowIfNull(settings);
        return Create(settings.ToDictionary());
    }
}
