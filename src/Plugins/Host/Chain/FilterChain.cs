// Runs a route's filters in order: a response ends the chain, a reroute is remembered and the chain goes on.
using System.Diagnostics;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Mesh.Plugins;

/// <summary>
/// An immutable, ordered list of filters for one route. Each filter's failure (an exception or a run
/// past its timeout) gets the entry's <see cref="FilterErrorPolicy"/>. A filter that completes
/// synchronously costs no allocation: timers and tasks appear only for filters that go asynchronous.
/// </summary>
public sealed partial class FilterChain
{
    private readonly FilterEntry[] _entries;
    private readonly FilterEntry[] _responseEntries;
    private readonly FilterInstance[] _instances;
    private readonly ILogger _logger;

    /// <summary>A chain with no filters; running it always continues.</summary>
    public static FilterChain Empty { get; } = new([]);

    /// <summary>Creates a chain that runs <paramref name="filters"/> in the given order; their exceptions propagate.</summary>
    public FilterChain(IReadOnlyList<IRequestFilter> filters)
    {
        ArgumentNullException.ThrowIfNull(filters);
        _entries = new FilterEntry[filters.Count];
        for (var i = 0; i < filters.Count; i++)
        {
            _entries[i] = new FilterEntry(filters[i]);
        }

        _responseEntries = ResponseEntries(_entries);
        _instances = [];
        _logger = NullLogger.Instance;
    }

    /// <summary>Creates a chain of configured entries (each with its error policy, timeout and counters).</summary>
    public FilterChain(IReadOnlyList<FilterEntry> entries, string route, ILogger? logger = null)
    {
        ArgumentNullException.ThrowIfNull(entries);
        ArgumentNullException.ThrowIfNull(route);
        _entries = [.. entries];
        _responseEntries = ResponseEntries(_entries);
        _instances = DistinctInstances(_entries);
        Route = route;
        _logger = logger ?? NullLogger.Instance;
    }

    /// <summary>True when there is nothing to run (the data path skips the chain).</summary>
    public bool IsEmpty => _entries.Length == 0;

    /// <summary>Number of filters.</summary>
    public int Count => _entries.Length;

    /// <summary>The route the chain belongs to.</summary>
    public string Route { get; } = "";

    /// <summary>The entries in order.</summary>
    public IReadOnlyList<FilterEntry> Entries => _entries;

    /// <summary>True when a filter of the chain also filters responses.</summary>
    public bool HasResponseFilters => _responseEntries.Length > 0;

    /// <summary>
    /// Takes a lease on every filter of the chain for one request. False when a filter was already
    /// closed (its snapshot was replaced and drained): the caller reads the current snapshot again.
    /// </summary>
    public bool TryEnter()
    {
        var instances = _instances;
        for (var i = 0; i < instances.Length; i++)
        {
            if (!instances[i].TryEnter())
            {
                for (var j = 0; j < i; j++)
                {
                    instances[j].Leave();
                }

                return false;
            }
        }

        return true;
    }

    /// <summary>Returns the leases of <see cref="TryEnter"/> once the request has ended.</summary>
    public void Leave()
    {
        foreach (var instance in _instances)
        {
            instance.Leave();
        }
    }

    /// <summary>
    /// Runs each filter in order. Returns the first <see cref="FilterAction.Respond"/>; otherwise the
    /// last <see cref="FilterAction.Reroute"/> (later filters run after a reroute and see its service
    /// when the context supports it); otherwise <see cref="FilterResult.Continue"/>.
    /// </summary>
    /// <remarks>
    /// Not an async method: while every filter completes synchronously nothing is allocated, not
    /// even a state machine. The first filter that goes asynchronous hands the rest to <see cref="ContinueAsync"/>.
    /// </remarks>
    public ValueTask<FilterResult> RunAsync(IRequestContext context, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(context);
        var decision = FilterResult.Continue;
        for (var i = 0; i < _entries.Length; i++)
        {
            var entry = _entries[i];
            var started = Stopwatch.GetTimestamp();
            ValueTask<FilterResult> pending;
            try
            {
                pending = entry.RequestFilter!.OnRequestAsync(context, cancellationToken);
            }
            catch (FilterTimeoutException) when (entry.OnError is not null)
            {
                // A filter that enforces its own time limit synchronously (JavaScript) ran past it.
                if (TimedOut(entry, started, out var answer))
                {
                    return new ValueTask<FilterResult>(answer);
                }

                continue;
            }
            catch (Exception ex) when (entry.OnError is not null && !(ex is OperationCanceledException && cancellationToken.IsCancellationRequested))
            {
                if (Failed(entry, started, ex, out var answer))
                {
                    return new ValueTask<FilterResult>(answer);
                }

                continue;
            }

            if (!pending.IsCompletedSuccessfully)
            {
                return ContinueAsync(context, i, pending, started, decision, cancellationToken);
            }

            var result = pending.Result;
            entry.Stats.Called(started);
            if (Decide(result, context, ref decision))
            {
                return new ValueTask<FilterResult>(result);
            }
        }

        return new ValueTask<FilterResult>(decision);
    }

    // The chain from the first filter that did not complete synchronously: wait for it (within its
    // timeout), then run the rest awaiting each.
    private async ValueTask<FilterResult> ContinueAsync(IRequestContext context, int index, ValueTask<FilterResult> pending, long started, FilterResult decision, CancellationToken cancellationToken)
    {
        for (var i = index; i < _entries.Length; i++)
        {
            var entry = _entries[i];
            if (i > index)
            {
                started = Stopwatch.GetTimestamp();
            }

            FilterResult result;
            try
            {
                if (i > index)
                {
                    pending = entry.RequestFilter!.OnRequestAsync(context, cancellationToken);
                }

                result = pending.IsCompletedSuccessfully ? pending.Result : await WaitAsync(pending, entry, cancellationToken).ConfigureAwait(false);
            }
            catch (FilterTimeoutException) when (entry.OnError is not null)
            {
                if (TimedOut(entry, started, out var answer))
                {
                    return answer;
                }

                continue;
            }
            catch (Exception ex) when (entry.OnError is not null && !(ex is OperationCanceledException && cancellationToken.IsCancellationRequested))
            {
                if (Failed(entry, started, ex, out var answer))
                {
                    return answer;
                }

                continue;
            }

            entry.Stats.Called(started);
            if (Decide(result, context, ref decision))
            {
                return result;
            }
        }

        return decision;
    }

    // True when the result ends the chain (an answer); a reroute is remembered and told to the view.
    private static bool Decide(FilterResult result, IRequestContext context, ref FilterResult decision)
    {
        if (result.Action == FilterAction.Respond)
        {
            return true;
        }

        if (result.Action == FilterAction.Reroute)
        {
            decision = result;
            (context as IRoutableContext)?.Reroute(result.Service!, result.Subset);
        }

        return false;
    }

    // A filter threw: counted and logged; true (with the 500 answer) under reject, false to skip it under continue.
    private bool Failed(FilterEntry entry, long started, Exception exception, out FilterResult answer)
    {
        entry.Stats.Called(started);
        entry.Stats.Failed();
        Log.FilterFailed(_logger, entry.Name, Route, Policy(entry.OnError!.Value), exception);
        answer = entry.OnError == FilterErrorPolicy.Reject ? FilterResult.Respond(500, $"filter '{entry.Name}' failed\n") : default;
        return entry.OnError == FilterErrorPolicy.Reject;
    }

    // A filter ran past its timeout: counted and logged; true (with the 504 answer) under reject.
    private bool TimedOut(FilterEntry entry, long started, out FilterResult answer)
    {
        entry.Stats.Called(started);
        entry.Stats.TimedOut();
        Log.FilterTimedOut(_logger, entry.Name, Route, entry.Timeout.TotalMilliseconds, Policy(entry.OnError!.Value));
        answer = entry.OnError == FilterErrorPolicy.Reject ? FilterResult.Respond(504, $"filter '{entry.Name}' timed out after {entry.Timeout.TotalMilliseconds} ms\n") : default;
        return entry.OnError == FilterErrorPolicy.Reject;
    }

    /// <summary>
    /// Runs the response filters in reverse order. A failure under <see cref="FilterErrorPolicy.Reject"/>
    /// returns false: the caller must not send the response (it aborts it); under <see cref="FilterErrorPolicy.Continue"/>
    /// the filter is skipped.
    /// </summary>
    public async ValueTask<bool> RunResponseAsync(IResponseContext context, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(context);
        for (var i = _responseEntries.Length - 1; i >= 0; i--)
        {
            var entry = _responseEntries[i];
            try
            {
                var pending = entry.ResponseFilter!.OnResponseAsync(context, cancellationToken);
                if (!pending.IsCompletedSuccessfully)
                {
                    await WaitAsync(pending, entry, cancellationToken).ConfigureAwait(false);
                }
            }
            catch (FilterTimeoutException) when (entry.OnError is not null)
            {
                entry.Stats.TimedOut();
                Log.ResponseFilterTimedOut(_logger, entry.Name, Route, entry.Timeout.TotalMilliseconds, Policy(entry.OnError.Value));
                if (entry.OnError == FilterErrorPolicy.Reject)
                {
                    return false;
                }
            }
            catch (Exception ex) when (entry.OnError is not null && !(ex is OperationCanceledException && cancellationToken.IsCancellationRequested))
            {
                entry.Stats.Failed();
                Log.ResponseFilterFailed(_logger, entry.Name, Route, Policy(entry.OnError.Value), ex);
                if (entry.OnError == FilterErrorPolicy.Reject)
                {
                    return false;
                }
            }
        }

        return true;
    }

    private static async ValueTask<FilterResult> WaitAsync(ValueTask<FilterResult> pending, FilterEntry entry, CancellationToken cancellationToken)
    {
        if (entry.Timeout == System.Threading.Timeout.InfiniteTimeSpan)
        {
            return await pending.ConfigureAwait(false);
        }

        var task = pending.AsTask();
        try
        {
            return await task.WaitAsync(entry.Timeout, cancellationToken).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            Abandon(task);
            throw new FilterTimeoutException();
        }
    }

    private static async ValueTask WaitAsync(ValueTask pending, FilterEntry entry, CancellationToken cancellationToken)
    {
        if (entry.Timeout == System.Threading.Timeout.InfiniteTimeSpan)
        {
            await pending.ConfigureAwait(false);
            return;
        }

        var task = pending.AsTask();
        try
        {
            await task.WaitAsync(entry.Timeout, cancellationToken).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            Abandon(task);
            throw new FilterTimeoutException();
        }
    }

    // The sidecar stops waiting for a filter past its timeout; the filter's own task runs on and its
    // outcome is observed here so a late exception is not reported as unobserved.
    private static void Abandon(Task task) =>
        task.ContinueWith(static t => _ = t.Exception, CancellationToken.None, TaskContinuationOptions.OnlyOnFaulted | TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);

    private static string Policy(FilterErrorPolicy policy) => policy == FilterErrorPolicy.Reject ? "reject" : "continue";

    private static FilterEntry[] ResponseEntries(FilterEntry[] entries)
    {
        var list = new List<FilterEntry>();
        foreach (var entry in entries)
        {
            if (entry.ResponseFilter is not null)
            {
                list.Add(entry);
            }
        }

        return [.. list];
    }

    internal static FilterInstance[] DistinctInstances(FilterEntry[] entries)
    {
        var list = new List<FilterInstance>();
        foreach (var entry in entries)
        {
            if (entry.Instance is { } instance && !list.Contains(instance))
            {
                list.Add(instance);
            }
        }

        return [.. list];
    }


    private static partial class Log
    {
        [LoggerMessage(5001, LogLevel.Warning, "Filter {Filter} on route {Route} threw; onError {Policy}")]
        public static partial void FilterFailed(ILogger logger, string filter, string route, string policy, Exception exception);

        [LoggerMessage(5002, LogLevel.Warning, "Filter {Filter} on route {Route} ran past its {TimeoutMs} ms timeout; onError {Policy}")]
        public static partial void FilterTimedOut(ILogger logger, string filter, string route, double timeoutMs, string policy);

        [LoggerMessage(5003, LogLevel.Warning, "Response filter {Filter} on route {Route} threw; onError {Policy}")]
        public static partial void ResponseFilterFailed(ILogger logger, string filter, string route, string policy, Exception exception);

        [LoggerMessage(5004, LogLevel.Warning, "Response filter {Filter} on route {Route} ran past its {TimeoutMs} ms timeout; onError {Policy}")]
        public static partial void ResponseFilterTimedOut(ILogger logger, string filter, string route, double timeoutMs, string policy);
    }
}

/// <summary>Thrown inside a chain when a filter runs past its timeout (never by a filter itself).</summary>
internal sealed class FilterTimeoutException : Exception;

/// <summary>A request view the chain can tell about reroutes, so later filters see the service chosen so far.</summary>
internal interface IRoutableContext
{
    void Reroute(string service, string? subset);
}
