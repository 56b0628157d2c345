// ctx.rateLimit's token buckets: kept by the host, shared by every engine, keyed by filter file and key.
using System.Collections.Concurrent;
using System.Diagnostics;

namespace Mesh.Plugins.JavaScript;

/// <summary>
/// Token buckets for <c>ctx.rateLimit(key, { rate, burst })</c>. A bucket belongs to a filter name
/// (the file) and a key, so every engine, route and version of the file shares it, and editing the
/// file does not reset anyone's budget. A bucket holds up to <c>burst</c> tokens and gains
/// <c>rate</c> per second; each allowed call takes one. Buckets left alone long enough to be full
/// again are dropped (they would answer exactly as a new one), so idle keys cost nothing.
/// </summary>
internal sealed class JsRateLimiter
{
    /// <summary>Most buckets kept; past it, new keys of a filter share one bucket (so a flood of keys cannot grow memory).</summary>
    public const int MaxBuckets = 200_000;

    private const string OverflowKey = "\0overflow";
    private readonly ConcurrentDictionary<(string Filter, string Key), Bucket> _buckets = new();
    private long _lastSweep = Stopwatch.GetTimestamp();

    /// <summary>Buckets held now.</summary>
    public int Count => _buckets.Count;

    /// <summary>Takes a token from the bucket of (<paramref name="filter"/>, <paramref name="key"/>); false when it is empty.</summary>
    public bool TryTake(string filter, string key, double rate, double burst)
    {
        var now = Stopwatch.GetTimestamp();
        if (!_buckets.TryGetValue((filter, key), out var bucket))
        {
            SweepIfDue(now);
            if (_buckets.Count >= MaxBuckets)
            {
                key = OverflowKey;
            }

            bucket = _buckets.GetOrAdd((filter, key), static (_, burst) => new Bucket(burst), burst);
        }

        return bucket.TryTake(now, rate, burst);
    }

    // At most once a second, drop buckets that have refilled completely.
    private void SweepIfDue(long now)
    {
        var last = Volatile.Read(ref _lastSweep);
        if (now - last < Stopwatch.Frequency || Interlocked.CompareExchange(ref _lastSweep, now, last) != last)
        {
            return;
        }

        foreach (var (key, bucket) in _buckets)
        {
            if (bucket.IsFull(now))
            {
                _buckets.TryRemove(new KeyValuePair<(string, string), Bucket>(key, bucket));
            }
        }
    }

    private sealed class Bucket(double burst)
    {
        private readonly object _gate = new();
        private double _tokens = burst;
        private double _rate = 1;
        private double _burst = burst;
        private long _updated = Stopwatch.GetTimestamp();

        public bool TryTake(long now, double rate, double burst)
        {
            lock (_gate)
            {
                Refill(now);
                // The script's current numbers apply from now on (a reload may change them).
                _rate = rate;
                _burst = burst;
                _tokens = Math.Min(_tokens, burst);
                if (_tokens < 1)
                {
                    return false;
                }

                _tokens -= 1;
                return true;
            }
        }

        public bool IsFull(long now)
        {
            lock (_gate)
            {
                Refill(now);
                return _tokens >= _burst;
            }
        }

        private void Refill(long now)
        {
            // Another thread may have refilled with a later timestamp than this call read.
            if (now <= _updated)
            {
                return;
            }

            var elapsed = (double)(now - _updated) / Stopwatch.Frequency;
            _updated = now;
            _tokens = Math.Min(_burst, _tokens + (elapsed * _rate));
        }
    }
}

/// <summary><c>ctx.hash(text)</c>: 32-bit FNV-1a of the text's UTF-8 bytes, top bit cleared, so every process and language can compute the same number.</summary>
internal static class JsHash
{
    public static int Fnv1a(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        const uint Offset = 2166136261;
        const uint Prime = 16777619;
        var hash = Offset;
        Span<byte> buffer = stackalloc byte[4];
        foreach (var rune in text.EnumerateRunes())
        {
            var length = rune.EncodeToUtf8(buffer);
            for (var i = 0; i < length; i++)
            {
                hash = (hash ^ buffer[i]) * Prime;
            }
        }

        return (int)(hash & 0x7FFFFFFF);
    }
}
