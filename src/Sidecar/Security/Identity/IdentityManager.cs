// Holds the sidecar's current identity: starts the configured certificate source, follows its rotations, swaps snapshots.
using Mesh.Sidecar.Configuration;

namespace Mesh.Sidecar.Security.Identity;

/// <summary>
/// The one owner of the current <see cref="IdentitySnapshot"/>. Handshakes read it with one volatile
/// read; a rotation replaces it whole, so new handshakes take the new leaf at once while open
/// connections keep theirs. A config whose identity section is unchanged keeps the running source.
/// </summary>
internal sealed partial class IdentityManager : IAsyncDisposable
{
    private readonly Dictionary<string, ICertificateSourceFactory> _factories;
    private readonly TimeProvider _time;
    private readonly SecurityMetrics _metrics;
    private readonly ILoggerFactory _loggerFactory;
    private readonly ILogger<IdentityManager> _logger;
    private readonly Lock _lock = new();
    private IdentitySnapshot? _current;
    private Running? _running;
    private long _rotations;

    public IdentityManager(IEnumerable<ICertificateSourceFactory> factories, IdentityClock clock, SecurityMetrics metrics, ILoggerFactory loggerFactory)
    {
        _factories = new Dictionary<string, ICertificateSourceFactory>(StringComparer.Ordinal);
        foreach (var factory in factories)
        {
            _factories[factory.Name] = factory;
        }

        _time = clock.Time;
        _metrics = metrics;
        _loggerFactory = loggerFactory;
        _logger = loggerFactory.CreateLogger<IdentityManager>();
    }

    /// <summary>The identity new handshakes use; null when no source is configured.</summary>
    public IdentitySnapshot? Current => Volatile.Read(ref _current);

    /// <summary>The clock identities are issued and checked with.</summary>
    public TimeProvider Time => _time;

    /// <summary>Identities swapped in since start (the first included).</summary>
    public long Rotations => Interlocked.Read(ref _rotations);

    /// <summary>Source names <c>identity.source</c> accepts in this process.</summary>
    public IReadOnlyCollection<string> SourceNames => _factories.Keys;

    /// <summary>
    /// Loads what <paramref name="options"/> asks for without applying it. The plan is then committed
    /// (when the rest of the config applies too) or abandoned.
    /// </summary>
    public async Task<IdentityPlan> PrepareAsync(MeshOptions options, CancellationToken cancellationToken)
    {
        var key = new SourceKey(options.Identity, options.Service.Name);
        if (_running is { } running && Equals(running.Key, key))
        {
            return IdentityPlan.Unchanged;
        }

        if (options.Identity.Source is null)
        {
            return new IdentityPlan(key, null, null, []);
        }

        if (!_factories.TryGetValue(options.Identity.Source, out var factory))
        {
            return IdentityPlan.Failed(new ConfigError("identity.source", $"no certificate source '{options.Identity.Source}' in this sidecar (available: {string.Join(", ", _factories.Keys.Order(StringComparer.Ordinal))})"));
        }

        var source = factory.Create(options, new CertificateSourceContext(_time, _loggerFactory, (reason, message) => Failed(factory.Name, reason, message)));
        try
        {
            var snapshot = await source.LoadAsync(cancellationToken).ConfigureAwait(false);
            return new IdentityPlan(key, source, snapshot, []);
        }
        catch (CertificateSourceException ex)
        {
            await source.DisposeAsync().ConfigureAwait(false);
            return IdentityPlan.Failed(new ConfigError(ex.Path, ex.Message));
        }
    }

    /// <summary>Makes a prepared plan current and starts following its source.</summary>
    public void Commit(IdentityPlan plan)
    {
        if (ReferenceEquals(plan, IdentityPlan.Unchanged) || plan.Errors.Count > 0)
        {
            return;
        }

        Running? previous;
        lock (_lock)
        {
            previous = _running;
            _running = new Running(plan.Key!, plan.Source);
            Swap(plan.Snapshot);
            if (plan.Source is not null)
            {
                _running.Watch = FollowAsync(_running);
            }
        }

        if (previous is not null)
        {
            _ = previous.StopAsync();
        }
    }

    /// <summary>Releases what a plan loaded when its config was not applied.</summary>
    public ValueTask AbandonAsync(IdentityPlan plan) =>
        plan.Source is not null && !ReferenceEquals(plan, IdentityPlan.Unchanged) ? plan.Source.DisposeAsync() : ValueTask.CompletedTask;

    private async Task FollowAsync(Running running)
    {
        try
        {
            await foreach (var snapshot in running.Source!.WatchAsync(running.Stopping.Token).ConfigureAwait(false))
            {
                lock (_lock)
                {
                    if (!ReferenceEquals(_running, running))
                    {
                        return;
                    }

                    Swap(snapshot);
                }
            }
        }
        catch (OperationCanceledException)
        {
        }
        catch (Exception ex)
        {
            // A source that throws stops rotating; the last identity stays until it expires or the config changes.
            Failed(running.Source!.Name, "source-failed", ex.Message);
        }
    }

    private void Swap(IdentitySnapshot? snapshot)
    {
        Volatile.Write(ref _current, snapshot);
        if (snapshot is not null)
        {
            Interlocked.Increment(ref _rotations);
            _metrics.Rotated(snapshot.Source);
            Log.IdentityLoaded(_logger, snapshot.Id.Value, snapshot.Source, snapshot.SerialNumber, snapshot.NotAfter);
        }
    }

    private void Failed(string source, string reason, string message)
    {
        _metrics.RefreshFailed(source, reason);
        Log.RefreshFailed(_logger, source, reason, message);
    }

    public async ValueTask DisposeAsync()
    {
        Running? running;
        lock (_lock)
        {
            running = _running;
            _running = null;
        }

        if (running is not null)
        {
            await running.StopAsync().ConfigureAwait(false);
        }
    }

    private sealed record SourceKey(IdentityOptions Identity, string Service);

    private sealed class Running(object key, ICertificateSource? source)
    {
        public object Key { get; } = key;

        public ICertificateSource? Source { get; } = source;

        public CancellationTokenSource Stopping { get; } = new();

        public Task Watch { get; set; } = Task.CompletedTask;

        public async Task StopAsync()
        {
            await Stopping.CancelAsync().ConfigureAwait(false);
            try
            {
                await Watch.ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
            }

            if (Source is not null)
            {
                await Source.DisposeAsync().ConfigureAwait(false);
            }

            Stopping.Dispose();
        }
    }

    private static partial class Log
    {
        [LoggerMessage(6001, LogLevel.Information, "Identity {SpiffeId} from source {Source}: leaf serial {Serial}, valid until {NotAfter:u}")]
        public static partial void IdentityLoaded(ILogger logger, string spiffeId, string source, string serial, DateTimeOffset notAfter);

        [LoggerMessage(6002, LogLevel.Warning, "Identity source {Source}: refresh failed ({Reason}), keeping the current identity: {Message}")]
        public static partial void RefreshFailed(ILogger logger, string source, string reason, string message);
    }
}

/// <summary>
/// The clock identities are issued, renewed and checked with. Its own type rather than the container's
/// <see cref="TimeProvider"/>, so a test can drive renewal with a fake clock without stopping Kestrel's.
/// </summary>
internal sealed class IdentityClock(TimeProvider time)
{
    public TimeProvider Time { get; } = time;
}

/// <summary>A loaded but not yet applied identity change.</summary>
internal sealed class IdentityPlan(object? key, ICertificateSource? source, IdentitySnapshot? snapshot, IReadOnlyList<ConfigError> errors)
{
    /// <summary>Nothing to change: the identity config is the running one.</summary>
    public static IdentityPlan Unchanged { get; } = new(null, null, null, []);

    public object? Key { get; } = key;

    public ICertificateSource? Source { get; } = source;

    public IdentitySnapshot? Snapshot { get; } = snapshot;

    public IReadOnlyList<ConfigError> Errors { get; } = errors;

    public static IdentityPlan Failed(ConfigError error) => new(null, null, null, [error]);
}
