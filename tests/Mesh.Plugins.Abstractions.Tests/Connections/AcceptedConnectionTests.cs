namespace Mesh.Plugins.Abstractions.Tests.Connections;

public class AcceptedConnectionTests
{
    [Fact]
    public void PeerIdentity_NullUnlessSet()
    {
        var plain = new AcceptedConnection("in", "tls", "127.0.0.1", 1234, "a.example.com", []);
        var mutual = plain with { PeerIdentity = "spiffe://mesh.local/ns/default/sa/web" };

        Assert.Null(plain.PeerIdentity);
        Assert.Equal("spiffe://mesh.local/ns/default/sa/web", mutual.PeerIdentity);
        Assert.NotEqual(plain, mutual);
    }
}
