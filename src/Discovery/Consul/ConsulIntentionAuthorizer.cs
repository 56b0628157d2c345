// Asks the agent whether a caller may connect (intentions), caching answers briefly and failing closed.
using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Mesh.Discovery.Consul;

/// <summary>An intentions answer: allowed or not, and why.</summary>
public readonly record struct IntentionDecision(bool Authorized, string Reason);

/// <summary>
/// <c>POST /v1/agent/connect/authorize</c> for each new caller identity. Answers are cached for
/// <see cref="CacheTime"/> per (target, caller URI), and concurrent askers for the same caller
/// share one call. A call that fails denies (fail closed) and is remembered only for
/// <see cref="FailureCacheTime"/>, so the agent is asked again soon without being hammered.
/// Verify the caller's certificate against the Connect roots before asking.
/// </summary>
public sealed partial class ConsulIntentionAuthorizer(ConsulClient client, ILogger? logger = null, TimeProvider? timeProvider = null)
{
    private readonly ConcurrentDictionary<(string Target, string Uri), Entry> _cache = new();
    private readonly ILogger _logger = logger ?? NullLogger.Instance;
    private readonly TimeProvider _time = timeProvider ?? TimeProvider.System;

    /// <summary>How long an answer from the agent is reused.</summary>
    public TimeSpan CacheTime { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>How long a failed call keeps denying before the agent is asked again.</summary>
    public TimeSpan FailureCacheTime { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>Entries kept before the expired ones are swept.</summary>
    public int MaxEntries { get; init; } = 10_000;

    /// <summary>The answer (or the call under way) for this caller when one is cached; no allocation, for the request path.</summary>
    public bool TryGetCached(string target, string clientCertUri, out Task<IntentionDecision> decision)
    {
        if (_cache.TryGetValue((target, clientCertUri), out var cached) && !cached.ExpiredAt(_time.GetTimestamp()))
        {
            decision = cached.Decision;
            return true;
        }

        decision = null!;
        return false;
    }

    /// <summary>May the caller with <paramref name="clientCertUri"/> connect to <paramref name="target"/>?</summary>
    public Task<IntentionDecision> AuthorizeAsync(string target, string clientCertUri, string clientCertSerial, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(target);
        ArgumentException.ThrowIfNullOrEmpty(clientCertUri);
        var key = (target, clientCertUri);
        var now = _time.GetTimestamp();
        if (_cache.TryGetValue(key, out var cached) && !cached.ExpiredAt(now))
        {
            return cached.Decision;
        }

        var fresh = new Entry();
        if (cached is null ? !_cache.TryAdd(key, fresh) : !_cache.TryUpdate(key, fresh, cached))
        {
            // Another caller started the call for this identity: share its answer.
            return _cache.TryGetValue(key, out var winner) ? winner.Decision : AuthorizeAsync(target, clientCertUri, clientCertSerial, cancellationToken);
        }

        if (_cache.Count > MaxEntries)
        {
            Sweep(now);
        }

        _ = AskAsync(fresh, target, clientCertUri, clientCertSerial);
        return fresh.Decision;
    }

    private async Task AskAsync(Entry entry, string target, string uri, string serial)
    {
        // Anything short of an answer denies: security decisions fail closed.
        var decision = new IntentionDecision(false, "intentions unavailable");
        var keepFor = FailureCacheTime;
        try
        {
            // Not an asker's token: a shared answer must not fail because one asker gave up.
            var answer = await client.AuthorizeAsync(new AuthorizeRequest { Target = target, ClientCertUri = uri, ClientCertSerial = serial }, CancellationToken.None).ConfigureAwait(false);
            decision = new IntentionDecision(answer.Authorized, answer.Reason ?? "");
            keepFor = CacheTime;
            Log.Decided(_logger, uri, target, decision.Authorized, decision.Reason);
        }
        catch (ConsulException ex)
        {
            decision = new IntentionDecision(false, "intentions unavailable: " + ex.Message);
            Log.Failed(_logger, uri, target, ex.Message);
        }
        finally
        {
            entry.Complete(decision, _time.GetTimestamp() + (long)(keepFor.TotalSeconds * _time.TimestampFrequency));
        }
    }

    private void Sweep(long now)
    {
        foreach (var (key, entry) in _cache)
        {
            if (entry.ExpiredAt(now))
            {
                _cache.TryRemove(new KeyValuePair<(string, string), Entry>(key, entry));
            }
        }
    }

    private sealed class Entry
    {
        private readonly TaskCompletionSource<IntentionDecision> _decision = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private long _expires = long.MaxValue;

        public Task<IntentionDecision> Decision => _decision.Task;

        // An entry still being asked never expires: later askers share its call.
        public bool ExpiredAt(long now) => now >= Volatile.Read(ref _expires);

        public void Complete(IntentionDecision decision, long expires)
        {
            Volatile.Write(ref _expires, expires);
            _decision.TrySetResult(decision);
        }
    }

    private static partial class Log
    {
        [LoggerMessage(5311, LogLevel.Debug, "Consul intentions: {Uri} to {Target}: {Authorized} ({Reason})")]
        public static partial void Decided(ILogger logger, string uri, string target, bool authorized, string reason);

        [LoggerMessage(5312, LogLevel.Warning, "Consul intentions: cannot ask the agent whether {Uri} may call {Target}, denying: {Reason}")]
        public static partial void Failed(ILogger logger, string uri, string target, string reason);
    }
}
