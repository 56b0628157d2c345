// Runs a listener's connection filters at accept: the first deny closes the connection.
using System.Diagnostics;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Mesh.Plugins;

/// <summary>
/// The ordered <c>connectionFilters</c> of one listener. A filter that throws or runs past its timeout
/// denies the connection under <see cref="FilterErrorPolicy.Reject"/> and is skipped under
/// <see cref="FilterErrorPolicy.Continue"/>; a filter that is not loaded always denies (fail closed).
/// </summary>
public sealed partial class ConnectionFilterChain
{
    private readonly FilterEntry[] _entries;
    private readonly FilterInstance[] _instances;
    private readonly ILogger _logger;

    /// <summary>A chain with no filters: every connection is allowed.</summary>
    public static ConnectionFilterChain Empty { get; } = new([], "");

    /// <summary>Creates the chain of <paramref name="listener"/>.</summary>
    public ConnectionFilterChain(IReadOnlyList<FilterEntry> entries, string listener, ILogger? logger = null)
    {
        ArgumentNullException.ThrowIfNull(entries);
        ArgumentNullException.ThrowIfNull(listener);
        _entries = [.. entries];
        _instances = FilterChain.DistinctInstances(_entries);
        Listener = listener;
        _logger = logger ?? NullLogger.Instance;
    }

    /// <summary>The listener it belongs to.</summary>
    public string Listener { get; }

    /// <summary>True when there is nothing to run.</summary>
    public bool IsEmpty => _entries.Length == 0;

    /// <summary>The entries in order.</summary>
    public IReadOnlyList<FilterEntry> Entries => _entries;

    /// <summary>Takes a lease on every filter; false when one was closed (read the current snapshot again).</summary>
    public bool TryEnter()
    {
        for (var i = 0; i < _instances.Length; i++)
        {
            if (!_instances[i].TryEnter())
            {
                for (var j = 0; j < i; j++)
                {
                    _instances[j].Leave();
                }

                return false;
            }
        }

        return true;
    }

    /// <summary>Returns the leases of <see cref="TryEnter"/>.</summary>
    public void Leave()
    {
        foreach (var instance in _instances)
        {
            instance.Leave();
        }
    }

    /// <summary>True when every filter allows the connection.</summary>
    public async ValueTask<bool> AllowAsync(AcceptedConnection connection, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(connection);
        foreach (var entry in _entries)
        {
            var started = Stopwatch.GetTimestamp();
            bool allowed;
            try
            {
                var pending = entry.ConnectionFilter!.AllowAsync(connection, cancellationToken);
                allowed = pending.IsCompletedSuccessfully ? pending.Result : await WaitAsync(pending, entry.Timeout, cancellationToken).ConfigureAwait(false);
            }
            catch (FilterTimeoutException)
            {
                entry.Stats.Called(started);
                entry.Stats.TimedOut();
                Log.TimedOut(_logger, entry.Name, Listener, entry.Timeout.TotalMilliseconds, entry.OnError == FilterErrorPolicy.Continue ? "continue" : "reject");
                if (entry.OnError == FilterErrorPolicy.Continue)
                {
                    continue;
                }

                return false;
            }
            catch (Exception ex) when (!(ex is OperationCanceledException && cancellationToken.IsCancellationRequested))
            {
                entry.Stats.Called(started);
                entry.Stats.Failed();
                Log.Failed(_logger, entry.Name, Listener, entry.OnError == FilterErrorPolicy.Continue ? "continue" : "reject", ex);
                if (entry.OnError == FilterErrorPolicy.Continue)
                {
                    continue;
                }

                return false;
            }

            entry.Stats.Called(started);
            if (!allowed)
            {
                return false;
            }
        }

        return true;
    }

    private static async ValueTask<bool> WaitAsync(ValueTask<bool> pending, TimeSpan timeout, CancellationToken cancellationToken)
    {
        var task = pending.AsTask();
        try
        {
            return await task.WaitAsync(timeout, cancellationToken).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            _ = task.ContinueWith(static t => _ = t.Exception, CancellationToken.None, TaskContinuationOptions.OnlyOnFaulted | TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
            throw new FilterTimeoutException();
        }
    }

    private static partial class Log
    {
        [LoggerMessage(5011, LogLevel.Warning, "Connection filter {Filter} on listener {Listener} threw; onError {Policy}")]
        public static partial void Failed(ILogger logger, string filter, string listener, string policy, Exception exception);

        [LoggerMessage(5012, LogLevel.Warning, "Connection filter {Filter} on listener {Listener} ran past its {TimeoutMs} ms timeout; onError {Policy}")]
        public static partial void TimedOut(ILogger logger, string filter, string listener, double timeoutMs, string policy);
    }
}
