using Mesh.Sidecar.LoadBalancing;
using static Mesh.Sidecar.Tests.LoadBalancing.TestEndpoints;

namespace Mesh.Sidecar.Tests.LoadBalancing;

public class LoadBalancerTests
{
    [Theory]
    [InlineData("round-robin", typeof(RoundRobinBalancer), false)]
    [InlineData("least-requests", typeof(LeastRequestsBalancer), false)]
    [InlineData("power-of-two-choices", typeof(PowerOfTwoChoicesBalancer), false)]
    [InlineData("random", typeof(RandomBalancer), false)]
    [InlineData("consistent-hash", typeof(ConsistentHashBalancer), true)]
    public void Create_KnownPolicy_BuildsMatchingBalancer(string policy, Type expected, bool usesHash)
    {
        var endpoints = Many(2);

        var balancer = LoadBalancer.Create(policy, endpoints);

        Assert.IsType(expected, balancer);
        Assert.Same(endpoints, balancer.Endpoints);
        Assert.Equal(usesHash, balancer.UsesHash);
    }

    [Theory]
    [InlineData("fastest")]
    [InlineData("Round-Robin")]
    [InlineData("")]
    public void Create_UnknownPolicy_Throws(string policy)
    {
        var error = Assert.Throws<ArgumentOutOfRangeException>(() => LoadBalancer.Create(policy, Many(1)));

        Assert.Equal("policy", error.ParamName);
    }

    [Fact]
    public void WeightedPicker_UniformWeights_PicksEveryEndpoint()
    {
        var endpoints = Many(3);
        var picker = new WeightedPicker(endpoints);

        var counts = Count(endpoints, Enumerable.Range(0, 600).Select(_ => picker.PickRandom()));

        Assert.All(counts, count => Assert.True(count > 0));
    }

    [Fact]
    public void WeightedPicker_NoEndpoints_ReturnsNull()
    {
        Assert.Null(new WeightedPicker([]).PickRandom());
    }

    [Fact]
    public void LoadBalancerWeights_Equal_TellsEqualFromUnequal()
    {
        Assert.True(LoadBalancerWeights.Equal([]));
        Assert.True(LoadBalancerWeights.Equal(WithWeights(2, 2, 2)));
        Assert.False(LoadBalancerWeights.Equal(WithWeights(2, 2, 3)));
    }
}
