using System.Net;
using Mesh.Sidecar.LoadBalancing;

namespace Mesh.Sidecar.Tests.LoadBalancing;

public class StableHashTests
{
    // Pinned values (FNV-1a 64 over the UTF-16LE code units, then the MurmurHash3 fmix64 finaliser),
    // checked against an independent implementation. If these change, sidecars of different
    // versions stop agreeing on consistent-hash placement.
    [Fact]
    public void Of_KnownString_HasPinnedValue()
    {
        Assert.Equal(1591821359134778881UL, StableHash.Of("user-42"));
    }

    [Fact]
    public void Of_EmptyString_IsFinalisedOffsetBasis()
    {
        Assert.Equal(17280346270528514342UL, StableHash.Of(""));
        Assert.Equal(StableHash.Mix(14695981039346656037UL), StableHash.Of(""));
    }

    [Fact]
    public void Of_KnownBytes_HasPinnedValue()
    {
        Assert.Equal(11787383432861261453UL, StableHash.Of("user-42"u8));
    }

    [Fact]
    public void Of_TextAndItsAsciiBytes_Differ()
    {
        // Text hashes both bytes of every UTF-16 code unit.
        Assert.NotEqual(StableHash.Of("user-42"), StableHash.Of("user-42"u8));
    }

    [Fact]
    public void Of_SameInput_SameOutputOnEveryCall()
    {
        var first = StableHash.Of("session-abc");

        for (var i = 0; i < 100; i++)
        {
            Assert.Equal(first, StableHash.Of(new string("session-abc".AsSpan())));
        }
    }

    [Fact]
    public void Of_SimilarInputs_DifferentOutputs()
    {
        var hashes = Enumerable.Range(0, 1000).Select(i => StableHash.Of($"key-{i}")).ToHashSet();

        Assert.Equal(1000, hashes.Count);
    }

    [Fact]
    public void Of_NonAsciiText_UsesHighByteToo()
    {
        // 'Ā' (U+0100) and '\u0001' share the low byte but not the high one.
        Assert.NotEqual(StableHash.Of("\u0100"), StableHash.Of("\u0001"));
    }

    [Fact]
    public void Of_NonAsciiKey_HasPinnedValue()
    {
        Assert.Equal(8362268574186129028UL, StableHash.Of("Zo\u00eb-\u65e5\u672c"));
    }

    [Fact]
    public void Of_KeysDifferingOnlyInACharactersHighByte_Differ()
    {
        // Cyrillic 'а' (U+0430) has the low byte of '0' (U+0030): two users must not share a hash.
        Assert.Equal(9137367099168301367UL, StableHash.Of("user-\u0430"));
        Assert.Equal(8973738094509514022UL, StableHash.Of("user-0"));
    }

    [Fact]
    public void Of_Ipv4Address_HashesItsFourBytes()
    {
        Assert.Equal(16337050439785505162UL, StableHash.Of(IPAddress.Parse("127.0.0.1")));
        Assert.Equal(StableHash.Of(new byte[] { 127, 0, 0, 1 }), StableHash.Of(IPAddress.Loopback));
    }

    [Fact]
    public void Of_Ipv4MappedIpv6Address_EqualsIpv4()
    {
        Assert.Equal(StableHash.Of(IPAddress.Parse("127.0.0.1")), StableHash.Of(IPAddress.Parse("::ffff:127.0.0.1")));
    }

    [Fact]
    public void Of_Ipv6Address_HashesSixteenBytes()
    {
        Assert.Equal(StableHash.Of(IPAddress.IPv6Loopback.GetAddressBytes()), StableHash.Of(IPAddress.IPv6Loopback));
        Assert.NotEqual(StableHash.Of(IPAddress.Loopback), StableHash.Of(IPAddress.IPv6Loopback));
    }

    [Fact]
    public void Mix_KnownValues_ArePinned()
    {
        Assert.Equal(0UL, StableHash.Mix(0));
        Assert.Equal(12994781566227106604UL, StableHash.Mix(1));
    }
}
