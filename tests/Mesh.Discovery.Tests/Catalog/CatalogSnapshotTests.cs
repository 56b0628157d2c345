namespace Mesh.Discovery.Tests.Catalog;

public class CatalogSnapshotTests
{
    [Fact]
    public void Empty_HasProviderVersionZeroAndNoServices()
    {
        var snapshot = CatalogSnapshot.Empty("static");

        Assert.Equal("static", snapshot.Provider);
        Assert.Equal(0, snapshot.Version);
        Assert.Empty(snapshot.Services);
    }

    [Fact]
    public void EndpointsOf_KnownService_ReturnsItsEndpoints()
    {
        IReadOnlyList<ServiceEndpoint> endpoints = [new("127.0.0.1", 9001), new("127.0.0.1", 9002)];
        var snapshot = new CatalogSnapshot("static", 1, new Dictionary<string, IReadOnlyList<ServiceEndpoint>> { ["api"] = endpoints });

        Assert.Same(endpoints, snapshot.EndpointsOf("api"));
    }

    [Fact]
    public void EndpointsOf_UnknownService_IsEmpty()
    {
        var snapshot = new CatalogSnapshot("static", 1, new Dictionary<string, IReadOnlyList<ServiceEndpoint>>(StringComparer.Ordinal)
        {
            ["api"] = [new("127.0.0.1", 9001)],
        });

        Assert.Empty(snapshot.EndpointsOf("web"));
        Assert.Empty(snapshot.EndpointsOf("API"));
        Assert.Empty(CatalogSnapshot.Empty("static").EndpointsOf("api"));
    }

    [Fact]
    public void EndpointsOf_Null_Throws()
    {
        Assert.Throws<ArgumentNullException>(() => CatalogSnapshot.Empty("static").EndpointsOf(null!));
    }
}
