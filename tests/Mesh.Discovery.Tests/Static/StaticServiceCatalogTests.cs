using Mesh.Discovery.Static;
using Mesh.Discovery.Tests.Catalog;

namespace Mesh.Discovery.Tests.Static;

public class StaticServiceCatalogTests
{
    private static readonly TimeSpan Generous = TimeSpan.FromSeconds(30);

    [Fact]
    public void Name_IsStatic()
    {
        IServiceCatalog catalog = new StaticServiceCatalog();

        Assert.Equal("static", catalog.Name);
        Assert.Equal(StaticServiceCatalog.ProviderName, catalog.Name);
    }

    [Fact]
    public void Current_BeforeUpdate_IsEmptyVersionZero()
    {
        var catalog = new StaticServiceCatalog();

        Assert.Equal(0, catalog.Current.Version);
        Assert.Equal("static", catalog.Current.Provider);
        Assert.Empty(catalog.Current.EndpointsOf("api"));
    }

    [Fact]
    public void Update_ReplacesEveryService()
    {
        var catalog = new StaticServiceCatalog();

        catalog.Update(SnapshotPublisherTests.Services(("api", 9001), ("web", 9002)));
        var second = catalog.Update(SnapshotPublisherTests.Services(("api", 9003)));

        Assert.Same(second, catalog.Current);
        Assert.Equal(2, second.Version);
        Assert.Equal(9003, Assert.Single(second.EndpointsOf("api")).Port);
        Assert.Empty(second.EndpointsOf("web"));
    }

    [Fact]
    public void EndpointsOf_UnknownService_IsEmpty()
    {
        var catalog = new StaticServiceCatalog();
        catalog.Update(SnapshotPublisherTests.Services(("api", 9001)));

        Assert.Empty(catalog.Current.EndpointsOf("nope"));
    }

    [Fact]
    public void Update_Null_Throws()
    {
        Assert.Throws<ArgumentNullException>(() => new StaticServiceCatalog().Update(null!));
    }

    [Fact]
    public async Task WatchAsync_YieldsCurrentThenEachUpdate()
    {
        var catalog = new StaticServiceCatalog();
        var initial = catalog.Update(SnapshotPublisherTests.Services(("api", 9001)));
        using var cancellation = new CancellationTokenSource();
        await using var watch = catalog.WatchAsync(cancellation.Token).GetAsyncEnumerator(cancellation.Token);

        Assert.True(await watch.MoveNextAsync().AsTask().WaitAsync(Generous));
        Assert.Same(initial, watch.Current);

        var next = watch.MoveNextAsync().AsTask();
        var updated = catalog.Update(SnapshotPublisherTests.Services(("api", 9002)));
        Assert.True(await next.WaitAsync(Generous));
        Assert.Same(updated, watch.Current);
        Assert.True(watch.Current.Version > initial.Version);

        var last = watch.MoveNextAsync().AsTask();
        await cancellation.CancelAsync();
        Assert.False(await last.WaitAsync(Generous));
    }
}
