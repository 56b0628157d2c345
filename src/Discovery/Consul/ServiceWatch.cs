// One blocking-query loop on /v1/health/service/<name>, with Consul's index rules, a token bucket and Polly backoff.
using Microsoft.Extensions.Logging;
using Polly;
using Polly.Retry;

namespace Mesh.Discovery.Consul;

public sealed partial class ConsulServiceCatalog
{
    /// <summary>
    /// Reads one Consul service for as long as it is in use: sends back each <c>X-Consul-Index</c>,
    /// resets it to 0 when it goes backwards and after a failure (so the next read is a full one),
    /// keeps it at least 1, asks for <c>wait</c>, and is rate-limited by a token bucket. Failures are
    /// retried forever with jittered exponential backoff; the last answer stays in use meanwhile.
    /// </summary>
    private sealed class ServiceWatch
    {
        private readonly ConsulServiceCatalog _owner;
        private readonly ConsulClient _client;
        private readonly CancellationTokenSource _stop = new();
        private readonly TaskCompletionSource _first = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private readonly DateTimeOffset _started;
        private ulong _index;
        private bool _synced;
        private DateTimeOffset? _lastSync;
        private string? _lastError;
        private DateTimeOffset? _failingSince;

        public ServiceWatch(ConsulServiceCatalog owner, ConsulClient client, string consulService, bool passingOnly)
        {
            _owner = owner;
            _client = client;
            ConsulService = consulService;
            PassingOnly = passingOnly;
            _started = owner._time.GetUtcNow();
        }

        public string ConsulService { get; }

        public bool PassingOnly { get; }

        /// <summary>The last answer; null before the first.</summary>
        public IReadOnlyList<ServiceEntry>? Entries { get; private set; }

        public Task FirstOutcome => _first.Task;

        public Task Completion { get; private set; } = Task.CompletedTask;

        public void Start() => Completion = Task.Run(() => RunAsync(_stop.Token));

        public void Stop() => _stop.Cancel();

        public ServiceSyncStatus Status(DateTimeOffset now)
        {
            // Read under the owner's lock, written under it too.
            var staleness = _synced ? TimeSpan.Zero : now - (_lastSync ?? _started);
            return new ServiceSyncStatus(ProviderName, ConsulService, _synced, _lastSync, staleness, _synced ? null : _lastError, _index);
        }

        private async Task RunAsync(CancellationToken cancellationToken)
        {
            var options = _owner._watchOptions;
            var bucket = new TokenBucket(options.Burst, options.RefillInterval, _owner._time);
            var pipeline = new ResiliencePipelineBuilder { TimeProvider = _owner._time }
                .AddRetry(new RetryStrategyOptions
                {
                    ShouldHandle = new PredicateBuilder().Handle<ConsulException>(),
                    MaxRetryAttempts = int.MaxValue,
                    BackoffType = DelayBackoffType.Exponential,
                    UseJitter = true,
                    Delay = options.RetryDelay,
                    MaxDelay = options.MaxRetryDelay,
                    OnRetry = args =>
                    {
                        Failed(args.Outcome.Exception?.Message ?? "unknown error");
                        Log.Retrying(_owner._logger, ConsulService, args.AttemptNumber + 1, args.RetryDelay.TotalMilliseconds, args.Outcome.Exception?.Message ?? "");
                        return default;
                    },
                })
                .Build();
            try
            {
                while (!cancellationToken.IsCancellationRequested)
                {
                    await bucket.TakeAsync(cancellationToken).ConfigureAwait(false);
                    ulong sent = 0;
                    var result = await pipeline.ExecuteAsync(
                        async ct =>
                        {
                            sent = Volatile.Read(ref _index);
                            return await _client.HealthServiceAsync(ConsulService, PassingOnly, tag: null, new QueryOptions(sent), ct).ConfigureAwait(false);
                        },
                        cancellationToken).ConfigureAwait(false);
                    Answered(sent, result);
                }
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
            }
        }

        private void Answered(ulong sent, QueryResult<List<ServiceEntry>> result)
        {
            var next = BlockingIndex.Next(sent, result.Index);
            if (next == 0)
            {
                Log.IndexReset(_owner._logger, ConsulService, sent, result.Index);
            }

            var now = _owner._time.GetUtcNow();
            lock (_owner._lock)
            {
                if (_failingSince is { } since)
                {
                    Log.Recovered(_owner._logger, ConsulService, (now - since).TotalSeconds);
                    _failingSince = null;
                }

                Volatile.Write(ref _index, next);
                _synced = true;
                _lastSync = now;
                _lastError = null;
                Entries = result.Value;
            }

            _owner.OnEntries(this);
            _first.TrySetResult();
        }

        private void Failed(string reason)
        {
            lock (_owner._lock)
            {
                if (_failingSince is null)
                {
                    Log.Unreachable(_owner._logger, ConsulService, reason);
                    _failingSince = _owner._time.GetUtcNow();
                }

                // A full read next: the agent may have restarted with other indexes.
                Volatile.Write(ref _index, 0);
                _synced = false;
                _lastError = reason;
            }

            _first.TrySetResult();
        }
    }
}
