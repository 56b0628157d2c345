using Mesh.Sidecar.LoadBalancing;
using static Mesh.Sidecar.Tests.LoadBalancing.TestEndpoints;

namespace Mesh.Sidecar.Tests.LoadBalancing;

public class RandomBalancerTests
{
    [Fact]
    public void Pick_EqualWeights_PicksEveryEndpointOver3000Picks()
    {
        var endpoints = Many(5);
        var balancer = new RandomBalancer(endpoints);

        var counts = Count(endpoints, Enumerable.Range(0, 3000).Select(_ => balancer.Pick(null)));

        Assert.All(counts, count => Assert.True(count > 0));
        Assert.Equal(3000, counts.Sum());
    }

    [Fact]
    public void Pick_Weights3To1_SplitsRoughly3To1()
    {
        var endpoints = WithWeights(3, 1);
        var balancer = new RandomBalancer(endpoints);
        const int picks = 10_000;

        var counts = Count(endpoints, Enumerable.Range(0, picks).Select(_ => balancer.Pick(null)));

        // Expected share 75%; allow 10% of it either way (about 9 standard deviations).
        var share = (double)counts[0] / picks;
        Assert.InRange(share, 0.75 * 0.9, 0.75 * 1.1);
    }

    [Fact]
    public void Pick_UnequalWeights_NeverPicksOutsideTheSet()
    {
        var endpoints = WithWeights(1, 2, 7);
        var balancer = new RandomBalancer(endpoints);

        var counts = Count(endpoints, Enumerable.Range(0, 3000).Select(_ => balancer.Pick(null)));

        Assert.All(counts, count => Assert.True(count > 0));
        Assert.True(counts[2] > counts[0]);
    }

    [Fact]
    public void Pick_SingleEndpoint_AlwaysReturnsIt()
    {
        var endpoints = WithWeights(4);
        var balancer = new RandomBalancer(endpoints);

        Assert.All(Enumerable.Range(0, 20), _ => Assert.Same(endpoints[0], balancer.Pick(null)));
    }

    [Fact]
    public void Pick_NoEndpoints_ReturnsNull()
    {
        var balancer = new RandomBalancer([]);

        Assert.Null(balancer.Pick(null));
        Assert.False(balancer.UsesHash);
    }
}
