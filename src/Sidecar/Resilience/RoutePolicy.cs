// A route's traffic policy compiled once: timeout, rate limit, weighted split, mirror and fault injection.
using System.Threading.RateLimiting;
using Mesh.Sidecar.Configuration;
using RouteOptions = Mesh.Sidecar.Configuration.RouteOptions;
using Mesh.Sidecar.LoadBalancing;
using Mesh.Sidecar.Security;

namespace Mesh.Sidecar.Resilience;

/// <summary>
/// Null on routes without any of <c>timeoutMs</c>, <c>rateLimit</c>, <c>split</c>, <c>mirror</c> and
/// <c>fault</c>, so such routes pay one null check. Percentages draw from <see cref="PolicyRandom"/>,
/// seeded by the route name: the share of a long run is reproducible, not only its expectation.
/// </summary>
internal sealed class RoutePolicy
{
    public RoutePolicy(RouteOptions route, PartitionedRateLimiter<HttpContext>? limiter)
    {
        Name = route.Name;
        Options = route;
        TimeoutMs = route.TimeoutMs;
        Limiter = limiter;
        Random = new PolicyRandom(StableHash.Of(route.Name));
        if (route.Split is { Count: > 0 } split)
        {
            Split = new SplitPicker(split);
        }

        Mirror = route.Mirror is { Percent: > 0 } mirror ? mirror : null;
        if (route.Fault is { } fault && (fault.AbortPercent > 0 || fault.DelayPercent > 0))
        {
            Fault = fault;
        }
    }

    public string Name { get; }

    /// <summary>The settings this was built from.</summary>
    public RouteOptions Options { get; }

    public int TimeoutMs { get; }

    public PartitionedRateLimiter<HttpContext>? Limiter { get; }

    public SplitPicker? Split { get; }

    public MirrorOptions? Mirror { get; }

    public FaultOptions? Fault { get; }

    public PolicyRandom Random { get; }

    /// <summary>True when requests go through the resilience stage (a timeout or a mirror).</summary>
    public bool OnRequestPath => TimeoutMs > 0 || Mirror is not null;

    /// <summary>True when the admission stage has work (rate limit or fault).</summary>
    public bool Admits => Limiter is not null || Fault is not null;

    public static bool Needed(RouteOptions route) =>
        route.TimeoutMs > 0 || route.RateLimit is not null || route.Split is { Count: > 0 } || route.Mirror is { Percent: > 0 }
        || route.Fault is { } fault && (fault.AbortPercent > 0 || fault.DelayPercent > 0);

    /// <summary>The partitioned token buckets for <paramref name="options"/>, keyed as configured.</summary>
    public static PartitionedRateLimiter<HttpContext> CreateLimiter(RateLimitOptions options, ResilienceClock clock)
    {
        var (rate, burst, period) = (options.Rate, options.Burst, options.PeriodMs);
        Func<object, RateLimiter> factory = _ => new TokenBucketLimiter(rate, burst, period, clock);
        if (options.Key.StartsWith("header:", StringComparison.Ordinal))
        {
            var header = options.Key["header:".Length..];
            return PartitionedRateLimiter.Create<HttpContext, object>(context =>
            {
                var value = context.Request.Headers[header];
                return RateLimitPartition.Get<object>(value.Count == 0 ? "" : value.ToString(), factory);
            });
        }

        if (options.Key == "peer")
        {
            return PartitionedRateLimiter.Create<HttpContext, object>(context =>
                RateLimitPartition.Get<object>(context.Features.Get<IPeerIdentityFeature>()?.PeerId.Value ?? "", factory));
        }

        // IPAddress compares by value; a missing address (a test server) shares one bucket.
        return PartitionedRateLimiter.Create<HttpContext, object>(context =>
            RateLimitPartition.Get<object>((object?)context.Connection.RemoteIpAddress ?? "", factory));
    }
}

/// <summary>Picks a split target by weight.</summary>
internal sealed class SplitPicker
{
    private readonly SplitOptions[] _targets;
    private readonly long[] _cumulative;

    public SplitPicker(IReadOnlyList<SplitOptions> targets)
    {
        _targets = [.. targets];
        _cumulative = new long[_targets.Length];
        long total = 0;
        for (var i = 0; i < _targets.Length; i++)
        {
            total += _targets[i].Weight;
            _cumulative[i] = total;
        }
    }

    public IReadOnlyList<SplitOptions> Targets => _targets;

    /// <summary>The target whose share of the weights <paramref name="draw"/> (0 ≤ draw &lt; 1) falls in.</summary>
    public SplitOptions Pick(double draw)
    {
        var ticket = (long)(draw * _cumulative[^1]);
        for (var i = 0; i < _cumulative.Length; i++)
        {
            if (ticket < _cumulative[i])
            {
                return _targets[i];
            }
        }

        return _targets[^1];
    }
}

/// <summary>
/// SplitMix64 over an atomic counter: thread-safe without locks, allocation-free, and the first N draws
/// of a route are always the same N numbers (in whatever order concurrent requests take them).
/// </summary>
internal sealed class PolicyRandom(ulong seed)
{
    private long _counter;

    /// <summary>A number in [0, 1).</summary>
    public double Next()
    {
        var z = seed + ((ulong)Interlocked.Increment(ref _counter) * 0x9E3779B97F4A7C15UL);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        z ^= z >> 31;
        return (z >> 11) * (1.0 / (1UL << 53));
    }

    /// <summary>True with probability <paramref name="percent"/>/100.</summary>
    public bool Chance(double percent) => percent >= 100 || (percent > 0 && Next() * 100 < percent);
}
