using Mesh.Sidecar.LoadBalancing;
using static Mesh.Sidecar.Tests.LoadBalancing.TestEndpoints;

namespace Mesh.Sidecar.Tests.LoadBalancing;

public class PowerOfTwoChoicesBalancerTests
{
    [Fact]
    public void Pick_ThreeEndpointsOneHeavilyLoaded_RarelyPicksTheLoadedOne()
    {
        var endpoints = Many(3);
        Enter(endpoints[0], 100);
        var balancer = new PowerOfTwoChoicesBalancer(endpoints);

        var counts = Count(endpoints, Enumerable.Range(0, 1000).Select(_ => balancer.Pick(null)));

        Assert.True(counts[0] < 50, $"the endpoint with 100 in flight took {counts[0]} of 1000 picks");
        Assert.True(counts[1] > 0 && counts[2] > 0, $"picks were {string.Join(", ", counts)}");
    }

    [Fact]
    public void Pick_TwoEndpointsOneLoaded_AlwaysPicksTheIdleOne()
    {
        // The two candidates are always distinct, so the loaded endpoint always loses the comparison.
        var endpoints = Many(2);
        Enter(endpoints[1], 1);
        var balancer = new PowerOfTwoChoicesBalancer(endpoints);

        Assert.All(Enumerable.Range(0, 500), _ => Assert.Same(endpoints[0], balancer.Pick(null)));
    }

    [Fact]
    public void Pick_AllIdle_SpreadsOverEveryEndpoint()
    {
        var endpoints = Many(4);
        var balancer = new PowerOfTwoChoicesBalancer(endpoints);

        var counts = Count(endpoints, Enumerable.Range(0, 2000).Select(_ => balancer.Pick(null)));

        Assert.All(counts, count => Assert.True(count > 0));
    }

    [Fact]
    public void Pick_Weighted_ComparesInFlightPerWeight()
    {
        // 3 in flight on weight 4 is less loaded than 1 in flight on weight 1.
        var endpoints = WithWeights(4, 1);
        Enter(endpoints[0], 3);
        Enter(endpoints[1], 1);
        var balancer = new PowerOfTwoChoicesBalancer(endpoints);

        Assert.All(Enumerable.Range(0, 200), _ => Assert.Same(endpoints[0], balancer.Pick(null)));
    }

    [Fact]
    public void Pick_SingleEndpoint_ReturnsItEvenWhenLoaded()
    {
        var endpoints = Many(1);
        Enter(endpoints[0], 10);
        var balancer = new PowerOfTwoChoicesBalancer(endpoints);

        Assert.Same(endpoints[0], balancer.Pick(null));
    }

    [Fact]
    public void Pick_NoEndpoints_ReturnsNull()
    {
        Assert.Null(new PowerOfTwoChoicesBalancer([]).Pick(null));
    }
}
