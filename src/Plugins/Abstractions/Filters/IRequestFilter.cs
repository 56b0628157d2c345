// The one filter contract shared by built-in filters, C# plugin DLLs and JavaScript filters.
namespace Mesh.Plugins;

/// <summary>
/// A request filter in a route's ordered chain. A factory parses the filter's configuration once;
/// the filter then sees every request of the route and steers the flow by what it returns.
/// Implementations must be safe to call concurrently.
/// </summary>
public interface IRequestFilter
{
    /// <summary>Inspects (and may change) the request before it is routed to an endpoint.</summary>
    ValueTask<FilterResult> OnRequestAsync(IRequestContext context, CancellationToken cancellationToken);
}

/// <summary>Creates <see cref="IRequestFilter"/> instances from configuration; found by <see cref="Name"/>.</summary>
public interface IRequestFilterFactory
{
    /// <summary>The name routes use to ask for this filter.</summary>
    string Name { get; }

    /// <summary>Parses <paramref name="settings"/> once and returns the filter; throws <see cref="FormatException"/> on bad settings.</summary>
    IRequestFilter Create(IReadOnlyDictionary<string, string> settings);
}
