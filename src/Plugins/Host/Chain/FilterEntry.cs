// One configured filter of a chain: the filter, what to do when it fails, how long it may take, its counters.
namespace Mesh.Plugins;

/// <summary>What a chain does when a filter throws or runs past its timeout.</summary>
public enum FilterErrorPolicy
{
    /// <summary>Fail closed: answer 500 (threw) or 504 (timed out) naming the filter; a connection filter denies.</summary>
    Reject,

    /// <summary>Skip the filter and go on with the next.</summary>
    Continue,
}

/// <summary>A filter in a chain, with its error policy, timeout and counters.</summary>
public sealed class FilterEntry
{
    /// <summary>Creates an entry for a filter made by a factory.</summary>
    public FilterEntry(string name, FilterInstance instance, FilterErrorPolicy onError, TimeSpan timeout, FilterStats stats)
    {
        ArgumentNullException.ThrowIfNull(name);
        ArgumentNullException.ThrowIfNull(instance);
        ArgumentNullException.ThrowIfNull(stats);
        Name = name;
        Instance = instance;
        OnError = onError;
        Timeout = timeout;
        Stats = stats;
        RequestFilter = instance.Filter as IRequestFilter;
        ResponseFilter = instance.Filter as IResponseFilter;
        ConnectionFilter = instance.Filter as IConnectionFilter;
    }

    // Entries of chains built from bare filters (no config): exceptions propagate, no timeout.
    internal FilterEntry(IRequestFilter filter)
    {
        Name = filter.GetType().Name;
        OnError = null;
        Timeout = System.Threading.Timeout.InfiniteTimeSpan;
        Stats = new FilterStats("", Name);
        RequestFilter = filter;
        ResponseFilter = filter as IResponseFilter;
    }

    // An entry for a filter that is not loaded: it always fails closed.
    private FilterEntry(string name, string missingReason, FilterStats stats)
    {
        Name = name;
        MissingReason = missingReason;
        Stats = stats;
        Timeout = System.Threading.Timeout.InfiniteTimeSpan;
        RequestFilter = new MissingRequestFilter(missingReason);
        ConnectionFilter = MissingConnectionFilter.Instance;
    }

    /// <summary>An entry for a filter the registry does not have: requests get 503 naming it, connections are denied.</summary>
    public static FilterEntry Missing(string name, string reason, FilterStats stats)
    {
        ArgumentNullException.ThrowIfNull(name);
        ArgumentNullException.ThrowIfNull(reason);
        ArgumentNullException.ThrowIfNull(stats);
        return new FilterEntry(name, reason, stats);
    }

    /// <summary>The name the config asked for.</summary>
    public string Name { get; }

    /// <summary>The created filter; null for missing filters and bare chains.</summary>
    public FilterInstance? Instance { get; }

    /// <summary>What happens when the filter throws or times out; null lets exceptions propagate (chains built from bare filters).</summary>
    public FilterErrorPolicy? OnError { get; }

    /// <summary>Longest wait for the filter.</summary>
    public TimeSpan Timeout { get; }

    /// <summary>Its counters.</summary>
    public FilterStats Stats { get; }

    /// <summary>Why the filter is missing (the data path answers 503 with it); null when it is loaded.</summary>
    public string? MissingReason { get; }

    /// <summary>The request side, when the filter is a request filter.</summary>
    public IRequestFilter? RequestFilter { get; }

    /// <summary>The response side, when the filter also implements <see cref="IResponseFilter"/>.</summary>
    public IResponseFilter? ResponseFilter { get; }

    /// <summary>The connection side, when the filter is a connection filter.</summary>
    public IConnectionFilter? ConnectionFilter { get; }

    private sealed class MissingRequestFilter(string reason) : IRequestFilter
    {
        private readonly FilterResult _result = FilterResult.Respond(503, reason + "\n");

        public ValueTask<FilterResult> OnRequestAsync(IRequestContext context, CancellationToken cancellationToken) => new(_result);
    }

    private sealed class MissingConnectionFilter : IConnectionFilter
    {
        public static readonly MissingConnectionFilter Instance = new();

        public ValueTask<bool> AllowAsync(AcceptedConnection connection, CancellationToken cancellationToken) => new(false);
    }
}
