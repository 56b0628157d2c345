// A token bucket on the resilience clock, as a System.Threading.RateLimiting limiter.
using System.Threading.RateLimiting;

namespace Mesh.Sidecar.Resilience;

/// <summary>
/// Holds <c>burst</c> tokens and adds <c>rate</c> every <c>periodMs</c>, in whole periods (Envoy's local
/// rate limit refills the same way), so "N requests per period" is exact. The runtime's own
/// <see cref="TokenBucketRateLimiter"/> refills on real time only; this one reads the resilience clock
/// lazily on each acquire, so it needs no timer and a test can drive it on a fake clock.
/// </summary>
internal sealed class TokenBucketLimiter : RateLimiter
{
    private static readonly RateLimitLease Admitted = new Lease(true, null);

    private readonly Lock _lock = new();
    private readonly int _rate;
    private readonly int _burst;
    private readonly long _periodMs;
    private readonly ResilienceClock _clock;
    private long _tokens;
    private long _refilledAtMs;
    private long? _fullSinceMs;

    public TokenBucketLimiter(int rate, int burst, int periodMs, ResilienceClock clock)
    {
        _rate = rate;
        _burst = burst;
        _periodMs = periodMs;
        _clock = clock;
        _tokens = burst;
        _refilledAtMs = clock.NowMs;
        _fullSinceMs = _refilledAtMs;
    }

    /// <summary>How long the bucket has been full; the partitioned limiter drops buckets idle long enough.</summary>
    public override TimeSpan? IdleDuration
    {
        get
        {
            lock (_lock)
            {
                Refill(_clock.NowMs);
                return _fullSinceMs is { } since ? TimeSpan.FromMilliseconds(_clock.NowMs - since) : null;
            }
        }
    }

    public override RateLimiterStatistics? GetStatistics()
    {
        lock (_lock)
        {
            Refill(_clock.NowMs);
            return new RateLimiterStatistics { CurrentAvailablePermits = _tokens };
        }
    }

    protected override RateLimitLease AttemptAcquireCore(int permitCount)
    {
        var now = _clock.NowMs;
        lock (_lock)
        {
            Refill(now);
            if (_tokens >= permitCount)
            {
                _tokens -= permitCount;
                if (_tokens < _burst)
                {
                    _fullSinceMs = null;
                }

                return Admitted;
            }

            // Whole seconds until the next refill, at least one (Retry-After has a one-second grain).
            var wait = _refilledAtMs + _periodMs - now;
            return new Lease(false, TimeSpan.FromSeconds(Math.Max(1, (wait + 999) / 1000)));
        }
    }

    protected override ValueTask<RateLimitLease> AcquireAsyncCore(int permitCount, CancellationToken cancellationToken) =>
        ValueTask.FromResult(AttemptAcquireCore(permitCount));

    private void Refill(long now)
    {
        var periods = (now - _refilledAtMs) / _periodMs;
        if (periods <= 0)
        {
            return;
        }

        _refilledAtMs += periods * _periodMs;
        _tokens = Math.Min(_burst, _tokens + (periods * _rate));
        if (_tokens >= _burst && _fullSinceMs is null)
        {
            _fullSinceMs = _refilledAtMs;
        }
    }

    private sealed class Lease(bool acquired, TimeSpan? retryAfter) : RateLimitLease
    {
        public override bool IsAcquired => acquired;

        public override IEnumerable<string> MetadataNames => retryAfter is null ? [] : [MetadataName.RetryAfter.Name];

        public override bool TryGetMetadata(string metadataName, out object? metadata)
        {
            if (retryAfter is { } value && metadataName == MetadataName.RetryAfter.Name)
            {
                metadata = value;
                return true;
            }

            metadata = null;
            return false;
        }
    }
}
