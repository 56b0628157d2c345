// Runs a route's filters in order and stops at the first one that does not continue.
namespace Mesh.Plugins;

/// <summary>An immutable, ordered list of filters for one route.</summary>
public sealed class FilterChain
{
    private readonly IRequestFilter[] _filters;

    /// <summary>A chain with no filters; running it always continues.</summary>
    public static FilterChain Empty { get; } = new([]);

    /// <summary>Creates a chain that runs <paramref name="filters"/> in the given order.</summary>
    public FilterChain(IReadOnlyList<IRequestFilter> filters)
    {
        ArgumentNullException.ThrowIfNull(filters);
        _filters = [.. filters];
    }

    /// <summary>True when there is nothing to run (the data path skips the chain).</summary>
    public bool IsEmpty => _filters.Length == 0;

    /// <summary>Number of filters.</summary>
    public int Count => _filters.Length;

    /// <summary>Runs each filter in order; returns the first result that is not <see cref="FilterAction.Continue"/>.</summary>
    public async ValueTask<FilterResult> RunAsync(IRequestContext context, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(context);
        foreach (var filter in _filters)
        {
            var result = await filter.OnRequestAsync(context, cancellationToken).ConfigureAwait(false);
            if (result.Action != FilterAction.Continue)
            {
                return result;
            }
        }

        return FilterResult.Continue;
    }
}
