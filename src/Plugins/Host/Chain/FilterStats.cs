// Per-filter counters (calls, errors, timeouts, time spent) kept across swaps for the admin API and metrics.
using System.Diagnostics;
using System.Diagnostics.Metrics;

namespace Mesh.Plugins;

/// <summary>
/// Counters of one filter entry (a filter name on a route or listener). Lock-free; recording a call
/// costs two interlocked adds and a histogram record, and allocates nothing.
/// </summary>
public sealed class FilterStats
{
    private long _calls;
    private long _errors;
    private long _timeouts;
    private long _elapsedTicks;
    private readonly KeyValuePair<string, object?> _scopeTag;
    private readonly KeyValuePair<string, object?> _filterTag;

    /// <summary>Creates counters for <paramref name="filter"/> in <paramref name="scope"/> (a route or listener name).</summary>
    public FilterStats(string scope, string filter, Histogram<double>? duration = null, string scopeKind = "route")
    {
        ArgumentNullException.ThrowIfNull(scope);
        ArgumentNullException.ThrowIfNull(filter);
        Scope = scope;
        Filter = filter;
        ScopeKind = scopeKind;
        Duration = duration;
        _scopeTag = new(scopeKind, scope);
        _filterTag = new("filter", filter);
    }

    /// <summary>The route (request filters) or listener (connection filters) name.</summary>
    public string Scope { get; }

    /// <summary><c>route</c> or <c>listener</c>.</summary>
    public string ScopeKind { get; }

    /// <summary>The filter's name.</summary>
    public string Filter { get; }

    /// <summary>Where call durations go, in seconds; null records none.</summary>
    public Histogram<double>? Duration { get; }

    /// <summary>Calls made (including those that failed or timed out).</summary>
    public long Calls => Interlocked.Read(ref _calls);

    /// <summary>Calls that threw.</summary>
    public long Errors => Interlocked.Read(ref _errors);

    /// <summary>Calls that ran past their timeout.</summary>
    public long Timeouts => Interlocked.Read(ref _timeouts);

    /// <summary>Total time in the filter.</summary>
    public TimeSpan Elapsed => Stopwatch.GetElapsedTime(0, Interlocked.Read(ref _elapsedTicks));

    /// <summary>Records one call that started at <paramref name="started"/> (a <see cref="Stopwatch"/> timestamp).</summary>
    public void Called(long started)
    {
        var elapsed = Stopwatch.GetTimestamp() - started;
        Interlocked.Increment(ref _calls);
        Interlocked.Add(ref _elapsedTicks, elapsed);
        if (Duration is { Enabled: true } duration)
        {
            duration.Record((double)elapsed / Stopwatch.Frequency, _scopeTag, _filterTag);
        }
    }

    /// <summary>Records that a call threw.</summary>
    public void Failed() => Interlocked.Increment(ref _errors);

    /// <summary>Records that a call timed out.</summary>
    public void TimedOut() => Interlocked.Increment(ref _timeouts);
}
