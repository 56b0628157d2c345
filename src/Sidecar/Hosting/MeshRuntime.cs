// Applies configurations and discovery changes: bind listeners, publish static endpoints, translate, swap.
using Mesh.Discovery;
using Mesh.Discovery.Static;
using Mesh.Sidecar.Configuration;
using Mesh.Sidecar.Filters;
using Mesh.Sidecar.Listeners;
using Mesh.Sidecar.Metrics;
using Mesh.Sidecar.Security;
using Mesh.Sidecar.Translation;

namespace Mesh.Sidecar.Hosting;

/// <summary>
/// The one writer of <see cref="MeshStateStore"/>. A config is applied whole or not at all: if a
/// listener cannot bind, nothing changes and the last good config keeps serving.
/// </summary>
internal sealed partial class MeshRuntime : IAsyncDisposable
{
    private readonly MeshStateStore _store;
    private readonly StateTranslator _translator;
    private readonly StaticServiceCatalog _static;
    private readonly Dictionary<string, IServiceCatalog> _catalogs;
    private readonly IReadOnlyList<IDiscoveryConfigurator> _configurators;
    private readonly ListenerManager _listeners;
    private readonly SecurityRuntime _security;
    private readonly FilterRuntime _filters;
    private readonly MeshMetrics _metrics;
    private readonly ILogger<MeshRuntime> _logger;
    private readonly SemaphoreSlim _gate = new(1, 1);
    private readonly CancellationTokenSource _stopping = new();
    private readonly List<Task> _background = [];
    private long _version;
    private int _disposed;

    public MeshRuntime(
        MeshStateStore store,
        StateTranslator translator,
        StaticServiceCatalog staticCatalog,
        IEnumerable<IServiceCatalog> catalogs,
        ListenerManager listeners,
        SecurityRuntime security,
        MeshMetrics metrics,
        ILogger<MeshRuntime> logger,
        FilterRuntime filters,
        IEnumerable<IDiscoveryConfigurator>? configurators = null)
    {
        _configurators = [.. configurators ?? []];
        _store = store;
        _translator = translator;
        _static = staticCatalog;
        _catalogs = catalogs.ToDictionary(c => c.Name, StringComparer.Ordinal);
        _catalogs[_static.Name] = _static;
        _listeners = listeners;
        _security = security;
        _filters = filters;
        _metrics = metrics;
        _logger = logger;
    }

    /// <summary>Applies <paramref name="options"/>; returns the problems that stopped it, or none.</summary>
    public async Task<IReadOnlyList<ConfigError>> ApplyAsync(MeshOptions options, CancellationToken cancellationToken)
    {
        await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            // Providers check what they need first (a Consul certificate that does not load rejects the config).
            foreach (var configurator in _configurators)
            {
                if (configurator.Prepare(options) is { Count: > 0 } problems)
                {
                    Abandon();
                    return problems;
                }
            }

            // Identity, certificates and upstream TLS load first: a bad file rejects the config before any socket changes.
            var security = await _security.PrepareAsync(options, cancellationToken).ConfigureAwait(false);
            if (security.Errors.Count > 0)
            {
                Abandon();
                return security.Errors;
            }

            // Then every filter chain is built (factories validate their config), still before anything changes.
            var previous = _store.HasState ? _store.Current : null;
            var filterErrors = new List<ConfigError>();
            if (_filters.Prepare(options, previous?.Filters, filterErrors) is not { } filters)
            {
                Abandon();
                await _security.AbandonAsync(security).ConfigureAwait(false);
                return filterErrors;
            }

            var errors = await _listeners.ApplyAsync(options, cancellationToken).ConfigureAwait(false);
            if (errors.Count > 0)
            {
                FilterRuntime.Discard(filters, previous?.Filters);
                Abandon();
                await _security.AbandonAsync(security).ConfigureAwait(false);
                return errors;
            }

            foreach (var configurator in _configurators)
            {
                configurator.Commit();
            }

            _security.Commit(security);

            _static.Update(StaticEndpoints(options));
            _store.Swap(_translator.Build(options, _catalogs, previous, Interlocked.Increment(ref _version), filters));
            _filters.Committed(filters, previous?.Filters);
            return [];
        }
        finally
        {
            _gate.Release();
        }
    }

    private void Abandon()
    {
        foreach (var configurator in _configurators)
        {
            configurator.Abandon();
        }
    }

    /// <summary>Starts the config-file watcher and the discovery watchers.</summary>
    public void StartWatching(string configPath, byte[] appliedContent, Func<ConfigLoadResult> reload, TimeSpan interval)
    {
        var watcher = new ConfigWatcher(configPath, interval, ct => ReloadAsync(reload, ct), ex => Rejected(configPath, ex));
        watcher.Seen(appliedContent);
        _background.Add(watcher.RunAsync(_stopping.Token));
        _background.Add(_filters.WatchAsync(_stopping.Token));
        _background.Add(ApplyFilterChangesAsync(_stopping.Token));
        foreach (var catalog in _catalogs.Values)
        {
            if (!ReferenceEquals(catalog, _static))
            {
                _background.Add(WatchCatalogAsync(catalog, _stopping.Token));
            }
        }
    }

    private async Task ReloadAsync(Func<ConfigLoadResult> reload, CancellationToken cancellationToken)
    {
        var result = reload();
        IReadOnlyList<ConfigError> errors = result.Errors;
        if (result.IsValid)
        {
            errors = await ApplyAsync(result.Options!, cancellationToken).ConfigureAwait(false);
        }

        Reloaded(errors);
    }

    // Whatever a reload throws (a loader bug, an apply that failed half-way) is a rejected config
    // like any other: logged, counted, and the watcher carries on with the next edit.
    private void Rejected(string configPath, Exception exception)
    {
        Log.ReloadFailed(_logger, exception);
        Reloaded([new ConfigError(configPath, $"{exception.GetType().Name}: {exception.Message}")]);
    }

    // Logged before it is counted: whoever sees the reload in /metrics finds its lines in the log.
    private void Reloaded(IReadOnlyList<ConfigError> errors)
    {
        if (errors.Count == 0)
        {
            Log.ConfigApplied(_logger, _store.Current.Version);
        }
        else
        {
            foreach (var error in errors)
            {
                Log.ConfigRejected(_logger, error.Path, error.Message);
            }

            if (_store.HasState)
            {
                Log.KeptLastGood(_logger, _store.Current.Version);
            }
        }

        _metrics.ConfigReloaded(errors.Count == 0);
    }

    // Later providers (Consul) publish on their own schedule; each snapshot re-translates the current config.
    private async Task WatchCatalogAsync(IServiceCatalog catalog, CancellationToken cancellationToken)
    {
        await foreach (var snapshot in catalog.WatchAsync(cancellationToken).ConfigureAwait(false))
        {
            await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
            try
            {
                var current = _store.Current;
                _store.Swap(_translator.Build(current.Options, _catalogs, current, Interlocked.Increment(ref _version)));
                if (snapshot.Version == 0)
                {
                    // A provider's empty start (Consul without a consul block): nothing an operator needs to see.
                    Log.DiscoveryEmpty(_logger, catalog.Name);
                }
                else
                {
                    Log.DiscoveryApplied(_logger, catalog.Name, snapshot.Version);
                }
            }
            finally
            {
                _gate.Release();
            }
        }
    }

    // Plugins added, replaced, refused or removed: each change is tried against the current config and,
    // when its chains build, swapped in with the routing state; in-flight requests keep their old chains.
    private async Task ApplyFilterChangesAsync(CancellationToken cancellationToken)
    {
        try
        {
            await foreach (var change in _filters.Changes.ReadAllAsync(cancellationToken).ConfigureAwait(false))
            {
                await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
                try
                {
                    var current = _store.Current;
                    if (_filters.Propose(change, current.Options, current.Filters) is { } plan)
                    {
                        _store.Swap(_translator.Build(current.Options, _catalogs, current, Interlocked.Increment(ref _version), plan));
                        _filters.Committed(plan, current.Filters, change);
                    }
                }
                finally
                {
                    _gate.Release();
                }
            }
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
        }
    }

    private static Dictionary<string, IReadOnlyList<ServiceEndpoint>> StaticEndpoints(MeshOptions options)
    {
        var services = new Dictionary<string, IReadOnlyList<ServiceEndpoint>>(StringComparer.Ordinal);
        foreach (var (name, service) in options.Services)
        {
            if (service.Discovery == StaticServiceCatalog.ProviderName)
            {
                services[name] = [.. service.Endpoints.Select(e => new ServiceEndpoint(e.Address, e.Port, e.Weight, e.Tags, e.Metadata))];
            }
        }

        return services;
    }

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        await _stopping.CancelAsync().ConfigureAwait(false);
        await Task.WhenAll(_background).ConfigureAwait(false);
    }

    private static partial class Log
    {
        [LoggerMessage(2001, LogLevel.Information, "Configuration applied (state version {Version})")]
        public static partial void ConfigApplied(ILogger logger, long version);

        [LoggerMessage(2002, LogLevel.Error, "Configuration rejected: {Path}: {Message}")]
        public static partial void ConfigRejected(ILogger logger, string path, string message);

        [LoggerMessage(2003, LogLevel.Warning, "Keeping the last good configuration (state version {Version})")]
        public static partial void KeptLastGood(ILogger logger, long version);

        [LoggerMessage(2005, LogLevel.Debug, "The configuration reload failed with an exception")]
        public static partial void ReloadFailed(ILogger logger, Exception exception);

        [LoggerMessage(2004, LogLevel.Information, "Discovery provider {Provider} published snapshot {SnapshotVersion}")]
        public static partial void DiscoveryApplied(ILogger logger, string provider, long snapshotVersion);

        [LoggerMessage(2006, LogLevel.Debug, "Discovery provider {Provider} published its empty first snapshot")]
        public static partial void DiscoveryEmpty(ILogger logger, string provider);
    }
}
