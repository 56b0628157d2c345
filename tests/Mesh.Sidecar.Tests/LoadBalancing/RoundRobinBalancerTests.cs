using Mesh.Sidecar.Endpoints;
using Mesh.Sidecar.LoadBalancing;
using static Mesh.Sidecar.Tests.LoadBalancing.TestEndpoints;

namespace Mesh.Sidecar.Tests.LoadBalancing;

public class RoundRobinBalancerTests
{
    [Fact]
    public void Pick_EqualWeights_RotatesExactly()
    {
        var endpoints = Many(3);
        var balancer = new RoundRobinBalancer(endpoints);

        var picks = Enumerable.Range(0, 9).Select(_ => Array.IndexOf(endpoints, balancer.Pick(null))).ToArray();

        Assert.Equal([0, 1, 2, 0, 1, 2, 0, 1, 2], picks);
    }

    [Fact]
    public void Pick_EqualWeightsAboveOne_RotatesExactly()
    {
        var endpoints = WithWeights(5, 5);
        var balancer = new RoundRobinBalancer(endpoints);

        var picks = Enumerable.Range(0, 4).Select(_ => Array.IndexOf(endpoints, balancer.Pick(null))).ToArray();

        Assert.Equal([0, 1, 0, 1], picks);
    }

    [Fact]
    public void Pick_Weights3To1_GivesExactly3To1Over400Picks()
    {
        var endpoints = WithWeights(3, 1);
        var balancer = new RoundRobinBalancer(endpoints);

        var counts = Count(endpoints, Enumerable.Range(0, 400).Select(_ => balancer.Pick(null)));

        Assert.Equal([300, 100], counts);
    }

    [Fact]
    public void Pick_Weights3To1_IsInterleavedNotBursty()
    {
        var endpoints = WithWeights(3, 1);
        var balancer = new RoundRobinBalancer(endpoints);

        var picks = Enumerable.Range(0, 400).Select(_ => balancer.Pick(null)).ToArray();

        var longestRun = 1;
        var run = 1;
        for (var i = 1; i < picks.Length; i++)
        {
            run = ReferenceEquals(picks[i], picks[i - 1]) ? run + 1 : 1;
            longestRun = Math.Max(longestRun, run);
        }

        Assert.True(longestRun <= 3, $"the heavy endpoint was picked {longestRun} times in a row");
        for (var start = 0; start + 4 <= picks.Length; start += 4)
        {
            Assert.Contains(endpoints[1], picks[start..(start + 4)]);
        }
    }

    [Fact]
    public void Pick_Weights5And1And1_FollowsSmoothWeightedOrder()
    {
        // The sequence nginx documents for smooth weighted round robin with weights {5, 1, 1}.
        var endpoints = WithWeights(5, 1, 1);
        var balancer = new RoundRobinBalancer(endpoints);

        var picks = Enumerable.Range(0, 14).Select(_ => Array.IndexOf(endpoints, balancer.Pick(null))).ToArray();

        Assert.Equal([0, 0, 1, 0, 2, 0, 0, 0, 0, 1, 0, 2, 0, 0], picks);
    }

    [Fact]
    public void Pick_WeightsWithCommonDivisor_UsesReducedSchedule()
    {
        var endpoints = WithWeights(400, 200);
        var balancer = new RoundRobinBalancer(endpoints);

        var picks = Enumerable.Range(0, 6).Select(_ => Array.IndexOf(endpoints, balancer.Pick(null))).ToArray();

        Assert.Equal([0, 1, 0, 0, 1, 0], picks);
    }

    [Fact]
    public void Pick_ThousandHeavyEndpointsAndOneLight_SchedulesInProportionAndKeepsTheLightOne()
    {
        // 1,000 endpoints of weight 10,000 and one of weight 1: ten million slots scaled to at
        // most 65,536, where every endpoint keeps at least one slot.
        var endpoints = WithWeights([.. Enumerable.Repeat(10_000, 1000), 1]);
        var balancer = new RoundRobinBalancer(endpoints);
        var counts = new Dictionary<EndpointState, int>(ReferenceEqualityComparer.Instance);

        for (var i = 0; i < 2 * 65_536; i++)
        {
            var pick = balancer.Pick(null)!;
            counts[pick] = counts.GetValueOrDefault(pick) + 1;
        }

        Assert.InRange(counts.GetValueOrDefault(endpoints[^1]), 1, 3);
        Assert.All(endpoints[..^1], endpoint => Assert.InRange(counts.GetValueOrDefault(endpoint), 120, 140));
    }

    [Fact]
    public void Pick_ConcurrentCallers_KeepExactShares()
    {
        var endpoints = WithWeights(3, 1);
        var balancer = new RoundRobinBalancer(endpoints);
        var counts = new int[2];

        Parallel.For(0, 4000, _ =>
        {
            var pick = balancer.Pick(null);
            Interlocked.Increment(ref counts[Array.IndexOf(endpoints, pick)]);
        });

        Assert.Equal([3000, 1000], counts);
    }

    [Fact]
    public void Pick_IgnoresHash_AndDoesNotUseIt()
    {
        var endpoints = Many(2);
        var balancer = new RoundRobinBalancer(endpoints);

        Assert.False(balancer.UsesHash);
        Assert.Same(endpoints[0], balancer.Pick(42));
        Assert.Same(endpoints[1], balancer.Pick(42));
    }

    [Fact]
    public void Pick_SingleEndpoint_AlwaysReturnsIt()
    {
        var endpoints = Many(1);
        var balancer = new RoundRobinBalancer(endpoints);

        Assert.All(Enumerable.Range(0, 5), _ => Assert.Same(endpoints[0], balancer.Pick(null)));
    }

    [Fact]
    public void Pick_NoEndpoints_ReturnsNull()
    {
        Assert.Null(new RoundRobinBalancer([]).Pick(null));
    }
}
