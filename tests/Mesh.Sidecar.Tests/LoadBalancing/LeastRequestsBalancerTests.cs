using Mesh.Sidecar.LoadBalancing;
using static Mesh.Sidecar.Tests.LoadBalancing.TestEndpoints;

namespace Mesh.Sidecar.Tests.LoadBalancing;

public class LeastRequestsBalancerTests
{
    [Fact]
    public void Pick_OneEndpointIdle_AlwaysPicksTheIdleOne()
    {
        var endpoints = Many(3);
        Enter(endpoints[0], 2);
        Enter(endpoints[1], 1);
        var balancer = new LeastRequestsBalancer(endpoints);

        Assert.All(Enumerable.Range(0, 9), _ => Assert.Same(endpoints[2], balancer.Pick(null)));
    }

    [Fact]
    public void Pick_FewestInFlight_FollowsLiveCounts()
    {
        var endpoints = Many(3);
        Enter(endpoints[0], 3);
        Enter(endpoints[1], 1);
        Enter(endpoints[2], 2);
        var balancer = new LeastRequestsBalancer(endpoints);
        Assert.Same(endpoints[1], balancer.Pick(null));

        endpoints[0].Leave(failed: false);
        endpoints[0].Leave(failed: false);
        endpoints[0].Leave(failed: true);

        Assert.Same(endpoints[0], balancer.Pick(null));
        Assert.Equal(0, endpoints[0].InFlight);
        Assert.Equal(1, endpoints[0].Failures);
    }

    [Fact]
    public void Pick_Weighted_ComparesInFlightPerWeight()
    {
        // 2 in flight on weight 3 (0.67 each) is less loaded than 1 in flight on weight 1.
        var endpoints = WithWeights(3, 1);
        Enter(endpoints[0], 2);
        Enter(endpoints[1], 1);
        var balancer = new LeastRequestsBalancer(endpoints);

        Assert.All(Enumerable.Range(0, 4), _ => Assert.Same(endpoints[0], balancer.Pick(null)));

        // 4 in flight on weight 3 (1.33 each) is more loaded than 1 on weight 1.
        Enter(endpoints[0], 2);
        Assert.All(Enumerable.Range(0, 4), _ => Assert.Same(endpoints[1], balancer.Pick(null)));
    }

    [Fact]
    public void Pick_AllIdle_RotatesSoEveryEndpointGetsPicks()
    {
        var endpoints = Many(3);
        var balancer = new LeastRequestsBalancer(endpoints);

        var counts = Count(endpoints, Enumerable.Range(0, 9).Select(_ => balancer.Pick(null)));

        Assert.Equal([3, 3, 3], counts);
    }

    [Fact]
    public void Pick_TieBetweenTwoLeastLoaded_SharesBetweenThem()
    {
        var endpoints = Many(3);
        Enter(endpoints[1], 5);
        var balancer = new LeastRequestsBalancer(endpoints);

        var counts = Count(endpoints, Enumerable.Range(0, 30).Select(_ => balancer.Pick(null)));

        Assert.Equal(0, counts[1]);
        Assert.True(counts[0] > 0 && counts[2] > 0, $"picks were {string.Join(", ", counts)}");
    }

    [Fact]
    public void Pick_NoEndpoints_ReturnsNull()
    {
        Assert.Null(new LeastRequestsBalancer([]).Pick(null));
    }
}
