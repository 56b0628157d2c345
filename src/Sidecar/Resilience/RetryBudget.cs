// The retry budget: retries allowed as a share of the service's recent requests, so a failing upstream is not flooded.
namespace Mesh.Sidecar.Resilience;

/// <summary>
/// Counts requests and retries in ten one-second buckets (Linkerd's budget has the same 10 s memory).
/// A retry is allowed while the window's retries stay under <c>budgetPercent</c> of its requests, or
/// under <see cref="MinRetries"/> (10 a second, Linkerd's <c>minRetriesPerSecond</c> default) so a quiet
/// service can still retry. Recording is two interlocked adds; a bucket is reset under a lock only when
/// its second comes round again.
/// </summary>
internal sealed class RetryBudget
{
    /// <summary>Retries always allowed per 10 s window, whatever the traffic: 10 a second.</summary>
    public const int MinRetries = 100;

    private const int Buckets = 10;
    private readonly Bucket[] _buckets = new Bucket[Buckets];
    private readonly int _percent;
    private readonly ResilienceClock _clock;
    private readonly Lock _lock = new();

    public RetryBudget(int percent, ResilienceClock clock)
    {
        _percent = percent;
        _clock = clock;
        for (var i = 0; i < Buckets; i++)
        {
            _buckets[i] = new Bucket { Second = long.MinValue };
        }
    }

    public void RecordRequest() => Interlocked.Increment(ref Current().Requests);

    /// <summary>Takes one retry from the budget; false when it is spent.</summary>
    public bool TryRetry()
    {
        var bucket = Current();
        if (_percent > 0)
        {
            var (requests, retries) = Totals(bucket.Second);
            if (retries >= Math.Max(MinRetries, requests * _percent / 100))
            {
                return false;
            }
        }

        Interlocked.Increment(ref bucket.Retries);
        return true;
    }

    private Bucket Current()
    {
        var second = _clock.NowMs / 1000;
        var bucket = _buckets[(int)(((second % Buckets) + Buckets) % Buckets)];
        if (Volatile.Read(ref bucket.Second) != second)
        {
            lock (_lock)
            {
                if (bucket.Second != second)
                {
                    Volatile.Write(ref bucket.Requests, 0);
                    Volatile.Write(ref bucket.Retries, 0);
                    Volatile.Write(ref bucket.Second, second);
                }
            }
        }

        return bucket;
    }

    private (long Requests, long Retries) Totals(long second)
    {
        long requests = 0;
        long retries = 0;
        foreach (var bucket in _buckets)
        {
            if (second - Volatile.Read(ref bucket.Second) < Buckets)
            {
                requests += Volatile.Read(ref bucket.Requests);
                retries += Volatile.Read(ref bucket.Retries);
            }
        }

        return (requests, retries);
    }

    private sealed class Bucket
    {
        public long Second;
        public long Requests;
        public long Retries;
    }
}
