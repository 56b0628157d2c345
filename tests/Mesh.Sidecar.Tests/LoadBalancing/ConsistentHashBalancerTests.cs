using Mesh.Sidecar.Endpoints;
using Mesh.Sidecar.LoadBalancing;
using static Mesh.Sidecar.Tests.LoadBalancing.TestEndpoints;

namespace Mesh.Sidecar.Tests.LoadBalancing;

public class ConsistentHashBalancerTests
{
    private const int KeyCount = 10_000;

    private static readonly ulong[] Keys = [.. Enumerable.Range(0, KeyCount).Select(i => StableHash.Of($"user-{i}"))];

    [Fact]
    public void Pick_SameKey_AlwaysSameEndpoint()
    {
        var balancer = new ConsistentHashBalancer(Many(5));

        foreach (var key in Keys.Take(1000))
        {
            var first = balancer.Pick(key);
            Assert.NotNull(first);
            Assert.Same(first, balancer.Pick(key));
            Assert.Same(first, balancer.Pick(key));
        }
    }

    [Fact]
    public void Pick_RebuiltFromEqualEndpoints_PlacesKeysIdentically()
    {
        // Placement depends only on the endpoint set, so separate sidecars agree.
        var first = Owners(new ConsistentHashBalancer(Many(5)));
        var second = Owners(new ConsistentHashBalancer(Many(5)));

        Assert.Equal(first, second);
    }

    [Fact]
    public void Pick_10000KeysOver5Endpoints_EachGetsBetween10And30Percent()
    {
        var endpoints = Many(5);
        var balancer = new ConsistentHashBalancer(endpoints);

        var counts = Count(endpoints, Keys.Select(k => balancer.Pick(k)));

        Assert.All(counts, count => Assert.InRange(count, KeyCount / 10, KeyCount * 3 / 10));
    }

    [Fact]
    public void Pick_AddingSixthEndpoint_MovesAboutASixthOfKeysAllToTheNewEndpoint()
    {
        var five = Many(5);
        var six = Many(6);
        var before = Owners(new ConsistentHashBalancer(five));
        var after = Owners(new ConsistentHashBalancer(six));

        var moved = 0;
        for (var i = 0; i < KeyCount; i++)
        {
            if (before[i] != after[i])
            {
                moved++;
                Assert.Equal(six[5].Authority, after[i]);
            }
        }

        Assert.InRange(moved, KeyCount / 10, KeyCount / 4);
    }

    [Fact]
    public void Pick_RemovingAnEndpoint_MovesOnlyTheKeysItOwned()
    {
        var five = Many(5);
        var removed = five[2];
        EndpointState[] four = [five[0], five[1], five[3], five[4]];
        var before = Owners(new ConsistentHashBalancer(five));
        var after = Owners(new ConsistentHashBalancer(four));

        var moved = 0;
        for (var i = 0; i < KeyCount; i++)
        {
            if (before[i] == removed.Authority)
            {
                Assert.NotEqual(removed.Authority, after[i]);
                moved++;
            }
            else
            {
                Assert.Equal(before[i], after[i]);
            }
        }

        Assert.True(moved > 0);
    }

    [Fact]
    public void Pick_EndpointOrder_DoesNotChangePlacement()
    {
        var endpoints = Many(5);
        EndpointState[] shuffled = [endpoints[3], endpoints[0], endpoints[4], endpoints[2], endpoints[1]];

        var inOrder = Owners(new ConsistentHashBalancer(endpoints));
        var reversed = Owners(new ConsistentHashBalancer([.. endpoints.Reverse()]));
        var mixed = Owners(new ConsistentHashBalancer(shuffled));

        Assert.Equal(inOrder, reversed);
        Assert.Equal(inOrder, mixed);
    }

    [Fact]
    public void Pick_HeavierEndpoint_OwnsMoreKeys()
    {
        var endpoints = WithWeights(3, 1);
        var balancer = new ConsistentHashBalancer(endpoints);

        var counts = Count(endpoints, Keys.Select(k => balancer.Pick(k)));

        Assert.InRange((double)counts[0] / KeyCount, 0.6, 0.9);
    }

    [Fact]
    public void Pick_NullHash_SpreadsRequestsOverEveryEndpoint()
    {
        // A request without a key gets a random endpoint (as Envoy does), not a fixed one: 600 picks
        // over 3 endpoints give each about 200; below 100 is odds of far less than one in a billion.
        var endpoints = Many(3);
        var balancer = new ConsistentHashBalancer(endpoints);

        var counts = Count(endpoints, Enumerable.Range(0, 600).Select(_ => balancer.Pick(null)));

        Assert.All(counts, count => Assert.InRange(count, 100, 300));
    }

    [Fact]
    public void Pick_NullHashWithWeights_FollowsTheWeights()
    {
        var endpoints = WithWeights(3, 1);
        var balancer = new ConsistentHashBalancer(endpoints);

        var counts = Count(endpoints, Enumerable.Range(0, 800).Select(_ => balancer.Pick(null)));

        Assert.InRange(counts[0], 500, 700);
    }

    [Fact]
    public void Pick_ExtremeHashValues_WrapAroundTheRing()
    {
        var endpoints = Many(3);
        var balancer = new ConsistentHashBalancer(endpoints);

        Assert.Contains(balancer.Pick(ulong.MaxValue), endpoints);
        Assert.Contains(balancer.Pick(0), endpoints);
        Assert.Same(balancer.Pick(0), balancer.Pick(ulong.MaxValue));
    }

    [Fact]
    public void Pick_SingleEndpoint_OwnsEveryKey()
    {
        var endpoints = Many(1);
        var balancer = new ConsistentHashBalancer(endpoints);

        Assert.All(Keys.Take(100), key => Assert.Same(endpoints[0], balancer.Pick(key)));
    }

    [Fact]
    public void Pick_NoEndpoints_ReturnsNull()
    {
        var balancer = new ConsistentHashBalancer([]);

        Assert.True(balancer.UsesHash);
        Assert.Null(balancer.Pick(Keys[0]));
        Assert.Null(balancer.Pick(null));
    }

    // The ring is a contract between sidecars: every sidecar, of any version, must send a key to
    // the same endpoint. These placements were computed by an independent implementation (FNV-1a 64
    // over UTF-16LE, fmix64, 160 points per weight labelled "authority#replica", at most 2^20
    // points scaled by weight, a key owned by the first point at or after it, wrapping).
    [Fact]
    public void Pick_10000KeysOver3Endpoints_PlacesExactlyAsEveryOtherSidecar()
    {
        var endpoints = Many(3);
        var balancer = new ConsistentHashBalancer(endpoints);

        var counts = Count(endpoints, Keys.Select(k => balancer.Pick(k)));

        Assert.Equal([3325, 3208, 3467], counts);
    }

    [Fact]
    public void Pick_WeightsAboveTheRingSize_ScaleDownAndPlaceExactlyAsEveryOtherSidecar()
    {
        // 13,000 weight units would be 2,080,000 points; the ring keeps 2^20 in proportion.
        var endpoints = WithWeights(10_000, 3_000);
        var balancer = new ConsistentHashBalancer(endpoints);

        var counts = Count(endpoints, Keys.Select(k => balancer.Pick(k)));

        Assert.Equal([7714, 2286], counts);
        // Key by key, not only in total: a ring scaled the wrong way (4M points) happens to give
        // the same totals for these keys, but places them differently.
        var firstOwners = string.Concat(Keys.Take(64).Select(k => balancer.Pick(k) == endpoints[0] ? '0' : '1'));
        Assert.Equal("0000001001001110001100001100000000000010100001011000100000000101", firstOwners);
    }

    [Fact]
    public void Pick_EndpointWithLongHostName_GetsItsShareAndPlacesExactly()
    {
        // A 135-character DNS name (authority 140 characters) is hashed like any other.
        var host = new string('a', 60) + "." + new string('b', 60) + ".mesh.internal";
        EndpointState[] endpoints = [Create(9001), Create(9001, address: host)];
        var balancer = new ConsistentHashBalancer(endpoints);

        var counts = Count(endpoints, Keys.Select(k => balancer.Pick(k)));

        Assert.Equal([4683, 5317], counts);
    }

    [Fact]
    public void Pick_KeyOnTheRingsFirstPoint_GoesToThatPointsOwner()
    {
        // The lowest point of this ring is 127.0.0.1:9002#n at 146555014923818391; the next one
        // (176384720632798137) is 127.0.0.1:9001's.
        var endpoints = Many(3);
        var balancer = new ConsistentHashBalancer(endpoints);

        Assert.Same(endpoints[1], balancer.Pick(146555014923818391UL));
        Assert.Same(endpoints[1], balancer.Pick(146555014923818390UL));
        Assert.Same(endpoints[0], balancer.Pick(146555014923818392UL));
        Assert.Same(endpoints[1], balancer.Pick(ulong.MaxValue));
    }

    private static string[] Owners(ConsistentHashBalancer balancer) =>
        [.. Keys.Select(k => balancer.Pick(k)!.Authority)];
}
