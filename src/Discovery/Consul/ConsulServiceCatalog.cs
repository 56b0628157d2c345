// The Consul discovery provider: one blocking-query loop per Consul service in use, publishing healthy endpoints as snapshots.
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Mesh.Discovery.Consul;

/// <summary>What a sidecar service reads from Consul.</summary>
/// <param name="Service">The service name in Consul.</param>
/// <param name="Tag">When set, only instances with this tag (a subset such as <c>v2</c>).</param>
/// <param name="PassingOnly">Only instances whose every check passes; otherwise warning instances too, at their warning weight.</param>
public sealed record ConsulServiceQuery(string Service, string Tag = "", bool PassingOnly = true);

/// <summary>Tuning of the watch loops; the defaults suit production.</summary>
public sealed record ConsulWatchOptions
{
    /// <summary>Queries a loop may send back to back (the first read and the first blocking query leave one for the first change).</summary>
    public int Burst { get; init; } = 3;

    /// <summary>After the burst, one query per this interval at most.</summary>
    public TimeSpan RefillInterval { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>First wait after a failed read (the client's own retries included); grows with jitter.</summary>
    public TimeSpan RetryDelay { get; init; } = TimeSpan.FromMilliseconds(250);

    /// <summary>Longest wait between reads while the agent is unreachable.</summary>
    public TimeSpan MaxRetryDelay { get; init; } = TimeSpan.FromSeconds(5);
}

/// <summary>
/// Discovery from Consul's health endpoint. The sidecar says which of its services read which
/// Consul service (<see cref="Configure"/>); the provider runs one blocking-query loop per Consul
/// service, shared by every sidecar service that reads it, and publishes the healthy endpoints
/// under the sidecar's service names. When the agent is unreachable the last known endpoints stay
/// published and <see cref="SyncStatusOf"/> says how stale they are. Knows nothing of the proxy.
/// </summary>
public sealed partial class ConsulServiceCatalog : IServiceCatalog, ICatalogStatus, IAsyncDisposable
{
    /// <summary>The provider name used in configuration.</summary>
    public const string ProviderName = "consul";

    private readonly SnapshotPublisher _publisher = new(ProviderName);
    private readonly Lock _lock = new();
    private readonly Dictionary<string, ServiceWatch> _watches = new(StringComparer.Ordinal);
    private readonly Dictionary<string, IReadOnlyList<ServiceEndpoint>> _endpoints = new(StringComparer.Ordinal);
    private readonly ILogger _logger;
    private readonly TimeProvider _time;
    private readonly ConsulWatchOptions _watchOptions;
    private IReadOnlyDictionary<string, ConsulServiceQuery> _queries = new Dictionary<string, ConsulServiceQuery>();
    private ConsulClient? _client;
    private bool _disposed;

    /// <summary>Creates an idle provider; <see cref="Configure"/> starts it.</summary>
    public ConsulServiceCatalog(ILogger<ConsulServiceCatalog>? logger = null, TimeProvider? timeProvider = null, ConsulWatchOptions? watchOptions = null)
    {
        _logger = (ILogger?)logger ?? NullLogger.Instance;
        _time = timeProvider ?? TimeProvider.System;
        _watchOptions = watchOptions ?? new ConsulWatchOptions();
    }

    /// <inheritdoc />
    public string Name => ProviderName;

    /// <inheritdoc />
    public CatalogSnapshot Current => _publisher.Current;

    /// <summary>The client in use; null while no service reads Consul.</summary>
    public ConsulClient? Client
    {
        get
        {
            lock (_lock)
            {
                return _client;
            }
        }
    }

    /// <inheritdoc />
    public IAsyncEnumerable<CatalogSnapshot> WatchAsync(CancellationToken cancellationToken) => _publisher.WatchAsync(cancellationToken);

    /// <summary>
    /// Sets which sidecar services read which Consul services, through <paramref name="client"/>.
    /// Loops start for new Consul services and stop for ones no longer read; a new client restarts
    /// them all. Known endpoints stay published meanwhile, so a reload never empties a cluster.
    /// The provider does not dispose clients it is given.
    /// </summary>
    public void Configure(ConsulClient? client, IReadOnlyDictionary<string, ConsulServiceQuery> queries)
    {
        ArgumentNullException.ThrowIfNull(queries);
        List<ServiceWatch> stopped = [];
        lock (_lock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (client is null)
            {
                queries = new Dictionary<string, ConsulServiceQuery>();
            }

            var clientChanged = !ReferenceEquals(client, _client);
            _client = client;
            _queries = new Dictionary<string, ConsulServiceQuery>(queries, StringComparer.Ordinal);
            var wanted = new Dictionary<string, bool>(StringComparer.Ordinal);
            foreach (var query in _queries.Values)
            {
                // One loop per Consul service: it reads passing-only instances unless a reader wants warnings too.
                wanted[query.Service] = wanted.TryGetValue(query.Service, out var passing) ? passing && query.PassingOnly : query.PassingOnly;
            }

            foreach (var (name, watch) in _watches.ToList())
            {
                if (clientChanged || !wanted.TryGetValue(name, out var passing) || passing != watch.PassingOnly)
                {
                    _watches.Remove(name);
                    stopped.Add(watch);
                }
            }

            foreach (var (name, passing) in wanted)
            {
                if (!_watches.ContainsKey(name))
                {
                    var watch = new ServiceWatch(this, client!, name, passing);
                    _watches[name] = watch;
                    watch.Start();
                    Log.WatchStarted(_logger, name, passing);
                }
            }

            Recompute();
        }

        foreach (var watch in stopped)
        {
            watch.Stop();
        }
    }

    /// <summary>Waits until every loop has had its first answer or first failure, or until <paramref name="timeout"/>.</summary>
    public async Task WaitForFirstAnswersAsync(TimeSpan timeout, CancellationToken cancellationToken = default)
    {
        Task[] first;
        lock (_lock)
        {
            first = [.. _watches.Values.Select(w => w.FirstOutcome)];
        }

        try
        {
            await Task.WhenAll(first).WaitAsync(timeout, _time, cancellationToken).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
        }
    }

    /// <inheritdoc />
    public ServiceSyncStatus? SyncStatusOf(string service)
    {
        ArgumentNullException.ThrowIfNull(service);
        lock (_lock)
        {
            if (!_queries.TryGetValue(service, out var query) || !_watches.TryGetValue(query.Service, out var watch))
            {
                return null;
            }

            return watch.Status(_time.GetUtcNow());
        }
    }

    /// <summary>Stops every loop.</summary>
    public async ValueTask DisposeAsync()
    {
        List<ServiceWatch> watches;
        lock (_lock)
        {
            if (_disposed)
            {
                return;
            }

            _disposed = true;
            watches = [.. _watches.Values];
            _watches.Clear();
        }

        foreach (var watch in watches)
        {
            watch.Stop();
        }

        await Task.WhenAll(watches.Select(w => w.Completion)).ConfigureAwait(false);
    }

    // A loop's answer: recompute the endpoints of the sidecar services that read it.
    private void OnEntries(ServiceWatch watch)
    {
        lock (_lock)
        {
            if (_watches.TryGetValue(watch.ConsulService, out var current) && ReferenceEquals(current, watch))
            {
                Recompute();
            }
        }
    }

    // Under _lock: endpoints of every configured service from its loop's last answer; publish on change.
    private void Recompute()
    {
        var changed = false;
        foreach (var (name, query) in _queries)
        {
            if (!_watches.TryGetValue(query.Service, out var watch) || watch.Entries is not { } entries)
            {
                // Not answered yet (or restarting on a new client): keep what is known.
                continue;
            }

            var endpoints = ToEndpoints(entries, query);
            if (!_endpoints.TryGetValue(name, out var previous) || !SameEndpoints(previous, endpoints))
            {
                _endpoints[name] = endpoints;
                changed = true;
                Log.EndpointsChanged(_logger, name, query.Service, endpoints.Count);
            }
        }

        foreach (var name in _endpoints.Keys.ToList())
        {
            if (!_queries.ContainsKey(name))
            {
                _endpoints.Remove(name);
                changed = true;
            }
        }

        if (changed)
        {
            _publisher.Publish(new Dictionary<string, IReadOnlyList<ServiceEndpoint>>(_endpoints, StringComparer.Ordinal));
        }
    }

    /// <summary>
    /// The instances a query serves: critical ones never, warning ones only when not passing-only,
    /// each at its Consul weight for its status (a weight of 0 takes it out), the tag filtered as
    /// Consul does (ignoring case), the node address when the service has none.
    /// </summary>
    internal static IReadOnlyList<ServiceEndpoint> ToEndpoints(IReadOnlyList<ServiceEntry> entries, ConsulServiceQuery query)
    {
        var endpoints = new List<ServiceEndpoint>(entries.Count);
        foreach (var entry in entries)
        {
            var status = entry.AggregatedStatus();
            if (status == HealthStatus.Critical || (query.PassingOnly && status != HealthStatus.Passing))
            {
                continue;
            }

            var service = entry.Service;
            var tags = service.Tags ?? [];
            if (query.Tag.Length > 0 && !tags.Contains(query.Tag, StringComparer.OrdinalIgnoreCase))
            {
                continue;
            }

            var weights = service.Weights ?? new ServiceWeights();
            var weight = status == HealthStatus.Passing ? weights.Passing : weights.Warning;
            if (weight <= 0 || service.Port is <= 0 or > 65535)
            {
                continue;
            }

            var address = string.IsNullOrEmpty(service.Address) ? entry.Node.Address : service.Address;
            if (string.IsNullOrEmpty(address))
            {
                continue;
            }

            endpoints.Add(new ServiceEndpoint(address, service.Port, Math.Min(weight, MaxWeight), [.. tags], service.Meta ?? new Dictionary<string, string>()));
        }

        endpoints.Sort(static (a, b) =>
        {
            var byAddress = string.CompareOrdinal(a.Address, b.Address);
            return byAddress != 0 ? byAddress : a.Port.CompareTo(b.Port);
        });
        return endpoints;
    }

    /// <summary>Weights above this are capped, the same bound as static endpoints.</summary>
    internal const int MaxWeight = 10_000;

    private static bool SameEndpoints(IReadOnlyList<ServiceEndpoint> a, IReadOnlyList<ServiceEndpoint> b)
    {
        if (a.Count != b.Count)
        {
            return false;
        }

        for (var i = 0; i < a.Count; i++)
        {
            if (!a[i].SameInstanceAs(b[i]) || a[i].Weight != b[i].Weight || !a[i].Tags.SequenceEqual(b[i].Tags)
                || a[i].Metadata.Count != b[i].Metadata.Count || a[i].Metadata.Any(m => !b[i].Metadata.TryGetValue(m.Key, out var v) || v != m.Value))
            {
                return false;
            }
        }

        return true;
    }

    private static partial class Log
    {
        [LoggerMessage(5101, LogLevel.Information, "Consul: watching service {ConsulService} (passing only: {PassingOnly})")]
        public static partial void WatchStarted(ILogger logger, string consulService, bool passingOnly);

        [LoggerMessage(5102, LogLevel.Information, "Consul: service {Service} (Consul service {ConsulService}) now has {Count} healthy endpoints")]
        public static partial void EndpointsChanged(ILogger logger, string service, string consulService, int count);

        [LoggerMessage(5103, LogLevel.Warning, "Consul: cannot read service {ConsulService}; keeping its last known endpoints and retrying: {Reason}")]
        public static partial void Unreachable(ILogger logger, string consulService, string reason);

        [LoggerMessage(5104, LogLevel.Information, "Consul: reading service {ConsulService} again after {Seconds:0.0} s")]
        public static partial void Recovered(ILogger logger, string consulService, double seconds);

        [LoggerMessage(5105, LogLevel.Information, "Consul: the index of service {ConsulService} went back from {Previous} to {Returned}; starting over with a full read")]
        public static partial void IndexReset(ILogger logger, string consulService, ulong previous, ulong returned);

        [LoggerMessage(5106, LogLevel.Debug, "Consul: read of service {ConsulService} failed, retry {Attempt} in {DelayMs:0} ms: {Reason}")]
        public static partial void Retrying(ILogger logger, string consulService, int attempt, double delayMs, string reason);
    }
}
