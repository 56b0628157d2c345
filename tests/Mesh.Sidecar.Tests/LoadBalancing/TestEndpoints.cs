// Builds endpoint sets on loopback addresses for balancer tests.
using Mesh.Discovery;
using Mesh.Sidecar.Endpoints;

namespace Mesh.Sidecar.Tests.LoadBalancing;

internal static class TestEndpoints
{
    /// <summary>127.0.0.1:9001, 127.0.0.1:9002, ... with the given weights (weight 1 each when none are given).</summary>
    public static EndpointState[] WithWeights(params int[] weights) =>
        [.. weights.Select((weight, i) => Create(9001 + i, weight))];

    /// <summary><paramref name="count"/> endpoints of weight 1 on ports 9001 upwards.</summary>
    public static EndpointState[] Many(int count) =>
        [.. Enumerable.Range(0, count).Select(i => Create(9001 + i, 1))];

    public static EndpointState Create(int port, int weight = 1, string address = "127.0.0.1") =>
        new(new ServiceEndpoint(address, port, weight, [], new Dictionary<string, string>()), "http");

    /// <summary>How often each endpoint was picked, in endpoint order.</summary>
    public static int[] Count(EndpointState[] endpoints, IEnumerable<EndpointState?> picks)
    {
        var counts = new int[endpoints.Length];
        foreach (var pick in picks)
        {
            Assert.NotNull(pick);
            var index = Array.IndexOf(endpoints, pick);
            Assert.True(index >= 0, $"picked {pick.Authority}, which is not in the set");
            counts[index]++;
        }

        return counts;
    }

    public static void Enter(EndpointState endpoint, int times)
    {
        for (var i = 0; i < times; i++)
        {
            endpoint.Enter();
        }
    }
}
