namespace Mesh.Discovery.Tests.Catalog;

public class ServiceEndpointTests
{
    [Fact]
    public void Constructor_AddressAndPort_DefaultsWeightOneAndNoLabels()
    {
        var endpoint = new ServiceEndpoint("127.0.0.1", 9001);

        Assert.Equal(1, endpoint.Weight);
        Assert.Empty(endpoint.Tags);
        Assert.Empty(endpoint.Metadata);
    }

    [Theory]
    [InlineData("127.0.0.1", 9001, "127.0.0.1:9001")]
    [InlineData("api.internal", 80, "api.internal:80")]
    [InlineData("::1", 80, "[::1]:80")]
    [InlineData("fe80::1", 8443, "[fe80::1]:8443")]
    public void Authority_BracketsIpv6Only(string address, int port, string expected)
    {
        Assert.Equal(expected, new ServiceEndpoint(address, port).Authority);
    }

    [Fact]
    public void SameInstanceAs_SameAddressAndPortOtherAttributes_IsTrue()
    {
        var plain = new ServiceEndpoint("127.0.0.1", 9001);
        var labelled = new ServiceEndpoint("127.0.0.1", 9001, 5, ["canary"], new Dictionary<string, string> { ["zone"] = "a" });

        Assert.True(plain.SameInstanceAs(labelled));
        Assert.True(labelled.SameInstanceAs(plain));
        Assert.NotEqual(plain, labelled);
    }

    [Fact]
    public void SameInstanceAs_HostNameInOtherCase_IsTrue()
    {
        Assert.True(new ServiceEndpoint("API.internal", 80).SameInstanceAs(new ServiceEndpoint("api.INTERNAL", 80)));
    }

    [Theory]
    [InlineData("127.0.0.1", 9002)]
    [InlineData("127.0.0.2", 9001)]
    public void SameInstanceAs_OtherAddressOrPort_IsFalse(string address, int port)
    {
        Assert.False(new ServiceEndpoint("127.0.0.1", 9001).SameInstanceAs(new ServiceEndpoint(address, port)));
    }

    [Fact]
    public void SameInstanceAs_Null_Throws()
    {
        Assert.Throws<ArgumentNullException>(() => new ServiceEndpoint("127.0.0.1", 9001).SameInstanceAs(null!));
    }
}
