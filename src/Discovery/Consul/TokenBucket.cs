// A token bucket for the blocking-query loop: a burst of requests, then one per refill interval.
namespace Mesh.Discovery.Consul;

/// <summary>
/// Rate-limits a loop as Consul's blocking-query docs advise (a small burst, then a steady rate)
/// instead of sleeping on every pass: quiet services pay no delay, churning ones cannot hammer
/// the agent. Used by one loop at a time; not thread-safe.
/// </summary>
internal sealed class TokenBucket(int burst, TimeSpan refillInterval, TimeProvider time)
{
    private double _tokens = burst;
    private long _last = time.GetTimestamp();

    public async ValueTask TakeAsync(CancellationToken cancellationToken)
    {
        while (true)
        {
            var now = time.GetTimestamp();
            _tokens = Math.Min(burst, _tokens + (time.GetElapsedTime(_last, now) / refillInterval));
            _last = now;
            if (_tokens >= 1)
            {
                _tokens -= 1;
                return;
            }

            await Task.Delay(refillInterval * (1 - _tokens), time, cancellationToken).ConfigureAwait(false);
        }
    }
}
