// Stage 7 of the data path: picks one endpoint of a service for a request (L7) or a connection (L4).
using Mesh.Sidecar.Configuration;
using Mesh.Sidecar.Endpoints;

namespace Mesh.Sidecar.LoadBalancing;

/// <summary>
/// A load-balancing policy bound to one immutable endpoint set. Built once per endpoint change,
/// so per-pick work is only arithmetic on precomputed tables.
/// </summary>
internal abstract class LoadBalancer
{
    protected LoadBalancer(EndpointState[] endpoints) => Endpoints = endpoints;

    public EndpointState[] Endpoints { get; }

    /// <summary>True when <see cref="Pick"/> uses the request's hash key.</summary>
    public virtual bool UsesHash => false;

    /// <summary>Picks an endpoint, or null when the service has none. <paramref name="hash"/> is null when there is no key.</summary>
    public abstract EndpointState? Pick(ulong? hash);

    public static LoadBalancer Create(string policy, EndpointState[] endpoints) => policy switch
    {
        LoadBalancingPolicies.RoundRobin => new RoundRobinBalancer(endpoints),
        LoadBalancingPolicies.LeastRequests or LoadBalancingPolicies.LeastConnections => new LeastRequestsBalancer(endpoints),
        LoadBalancingPolicies.PowerOfTwoChoices => new PowerOfTwoChoicesBalancer(endpoints),
        LoadBalancingPolicies.Random => new RandomBalancer(endpoints),
        LoadBalancingPolicies.ConsistentHash => new ConsistentHashBalancer(endpoints),
        _ => throw new ArgumentOutOfRangeException(nameof(policy), policy, "unknown load-balancing policy"),
    };

    /// <summary>a is less loaded than b when inFlight(a)/weight(a) &lt; inFlight(b)/weight(b).</summary>
    protected static bool LessLoaded(EndpointState a, EndpointState b) =>
        (long)a.InFlight * b.Weight < (long)b.InFlight * a.Weight;
}

/// <summary>Weighted random; also the fallback when a hash policy gets no key.</summary>
internal sealed class RandomBalancer : LoadBalancer
{
    private readonly WeightedPicker _picker;

    public RandomBalancer(EndpointState[] endpoints)
        : base(endpoints) => _picker = new WeightedPicker(endpoints);

    public override EndpointState? Pick(ulong? hash) => _picker.PickRandom();
}

/// <summary>
/// Smooth weighted round robin (nginx's algorithm) unrolled into a schedule once, so a pick is an
/// atomic increment and an array read. Equal weights degrade to plain rotation.
/// </summary>
internal sealed class RoundRobinBalancer : LoadBalancer
{
    private const int MaxSchedule = 1 << 16;
    private readonly int[] _schedule;
    private int _next = -1;

    public RoundRobinBalancer(EndpointState[] endpoints)
        : base(endpoints) => _schedule = BuildSchedule(endpoints);

    public override EndpointState? Pick(ulong? hash)
    {
        var endpoints = Endpoints;
        if (endpoints.Length == 0)
        {
            return null;
        }

        var n = (uint)Interlocked.Increment(ref _next);
        return _schedule.Length == 0 ? endpoints[n % (uint)endpoints.Length] : endpoints[_schedule[n % (uint)_schedule.Length]];
    }

    private static int[] BuildSchedule(EndpointState[] endpoints)
    {
        if (endpoints.Length == 0 || LoadBalancerWeights.Equal(endpoints))
        {
            return [];
        }

        var weights = new long[endpoints.Length];
        long total = 0;
        var divisor = 0L;
        for (var i = 0; i < endpoints.Length; i++)
        {
            weights[i] = endpoints[i].Weight;
            divisor = Gcd(divisor, weights[i]);
        }

        for (var i = 0; i < weights.Length; i++)
        {
            weights[i] /= divisor;
            total += weights[i];
        }

        if (total > MaxSchedule)
        {
            // Scale down very large weights; every endpoint keeps at least one slot.
            var scale = (double)MaxSchedule / total;
            total = 0;
            for (var i = 0; i < weights.Length; i++)
            {
                weights[i] = Math.Max(1, (long)(weights[i] * scale));
                total += weights[i];
            }
        }

        var schedule = new int[total];
        var current = new long[weights.Length];
        for (var slot = 0; slot < schedule.Length; slot++)
        {
            var best = 0;
            for (var i = 0; i < weights.Length; i++)
            {
                current[i] += weights[i];
                if (current[i] > current[best])
                {
                    best = i;
                }
            }

            current[best] -= total;
            schedule[slot] = best;
        }

        return schedule;
    }

    private static long Gcd(long a, long b) => b == 0 ? a : Gcd(b, a % b);
}

/// <summary>Fewest in-flight requests relative to weight; ties rotate so one endpoint does not take every idle pick.</summary>
internal sealed class LeastRequestsBalancer(EndpointState[] endpoints) : LoadBalancer(endpoints)
{
    private int _offset = -1;

    public override EndpointState? Pick(ulong? hash)
    {
        var endpoints = Endpoints;
        if (endpoints.Length == 0)
        {
            return null;
        }

        var start = (int)((uint)Interlocked.Increment(ref _offset) % (uint)endpoints.Length);
        var best = endpoints[start];
        for (var i = 1; i < endpoints.Length; i++)
        {
            var candidate = endpoints[(start + i) % endpoints.Length];
            if (LessLoaded(candidate, best))
            {
                best = candidate;
            }
        }

        return best;
    }
}

/// <summary>Two weighted-random candidates, the less loaded one wins (Envoy's default least-request).</summary>
internal sealed class PowerOfTwoChoicesBalancer : LoadBalancer
{
    private readonly WeightedPicker _picker;

    public PowerOfTwoChoicesBalancer(EndpointState[] endpoints)
        : base(endpoints) => _picker = new WeightedPicker(endpoints);

    public override EndpointState? Pick(ulong? hash)
    {
        var endpoints = Endpoints;
        if (endpoints.Length <= 1)
        {
            return endpoints.Length == 0 ? null : endpoints[0];
        }

        var first = _picker.PickRandom()!;
        var second = _picker.PickRandom()!;
        if (ReferenceEquals(first, second))
        {
            // Distinct candidates: take the neighbour so the comparison means something.
            second = endpoints[(Array.IndexOf(endpoints, first) + 1) % endpoints.Length];
        }

        return LessLoaded(second, first) ? second : first;
    }
}

/// <summary>Weighted random selection by binary search over cumulative weights.</summary>
internal sealed class WeightedPicker
{
    private readonly EndpointState[] _endpoints;
    private readonly long[] _cumulative;
    private readonly bool _uniform;

    public WeightedPicker(EndpointState[] endpoints)
    {
        _endpoints = endpoints;
        _uniform = LoadBalancerWeights.Equal(endpoints);
        _cumulative = new long[endpoints.Length];
        long sum = 0;
        for (var i = 0; i < endpoints.Length; i++)
        {
            sum += endpoints[i].Weight;
            _cumulative[i] = sum;
        }
    }

    public EndpointState? PickRandom()
    {
        if (_endpoints.Length == 0)
        {
            return null;
        }

        if (_uniform)
        {
            return _endpoints[System.Random.Shared.Next(_endpoints.Length)];
        }

        var ticket = System.Random.Shared.NextInt64(_cumulative[^1]);
        var index = Array.BinarySearch(_cumulative, ticket + 1);
        return _endpoints[index >= 0 ? index : ~index];
    }
}

/// <summary>Weight helpers shared by pickers.</summary>
internal static class LoadBalancerWeights
{
    public static bool Equal(EndpointState[] endpoints)
    {
        for (var i = 1; i < endpoints.Length; i++)
        {
            if (endpoints[i].Weight != endpoints[0].Weight)
            {
                return false;
            }
        }

        return true;
    }
}
