namespace Mesh.Discovery.Tests.Catalog;

public class SnapshotPublisherTests
{
    private static readonly TimeSpan Generous = TimeSpan.FromSeconds(30);

    [Fact]
    public void Current_BeforeAnyPublish_IsEmptyVersionZero()
    {
        var publisher = new SnapshotPublisher("static");

        Assert.Equal("static", publisher.Current.Provider);
        Assert.Equal(0, publisher.Current.Version);
        Assert.Empty(publisher.Current.Services);
    }

    [Fact]
    public void Publish_EachCall_GrowsVersionByOneAndReplacesServices()
    {
        var publisher = new SnapshotPublisher("static");

        var first = publisher.Publish(Services(("api", 9001)));
        var second = publisher.Publish(Services(("web", 9002)));

        Assert.Equal(1, first.Version);
        Assert.Equal(2, second.Version);
        Assert.Same(second, publisher.Current);
        Assert.Equal("static", second.Provider);
        Assert.Empty(second.EndpointsOf("api"));
        Assert.Equal(9002, Assert.Single(second.EndpointsOf("web")).Port);
    }

    [Fact]
    public void Publish_Null_Throws()
    {
        Assert.Throws<ArgumentNullException>(() => new SnapshotPublisher("static").Publish(null!));
    }

    [Fact]
    public void Constructor_NullProvider_Throws()
    {
        Assert.Throws<ArgumentNullException>(() => new SnapshotPublisher(null!));
    }

    [Fact]
    public async Task WatchAsync_FirstItem_IsCurrentSnapshotAtOnce()
    {
        var publisher = new SnapshotPublisher("static");
        var published = publisher.Publish(Services(("api", 9001)));
        using var cancellation = new CancellationTokenSource();
        await using var watch = publisher.WatchAsync(cancellation.Token).GetAsyncEnumerator(cancellation.Token);

        var next = watch.MoveNextAsync();

        Assert.True(next.IsCompleted, "the current snapshot was not yielded at once");
        Assert.True(await next);
        Assert.Same(published, watch.Current);
    }

    [Fact]
    public async Task WatchAsync_LaterPublishes_AreYieldedWithGrowingVersions()
    {
        var publisher = new SnapshotPublisher("static");
        using var cancellation = new CancellationTokenSource();
        await using var watch = publisher.WatchAsync(cancellation.Token).GetAsyncEnumerator(cancellation.Token);
        Assert.True(await watch.MoveNextAsync().AsTask().WaitAsync(Generous));
        Assert.Equal(0, watch.Current.Version);

        var versions = new List<long>();
        for (var i = 1; i <= 3; i++)
        {
            var next = watch.MoveNextAsync().AsTask();
            Assert.False(next.IsCompleted, "the watch yielded without a publish");
            var published = publisher.Publish(Services(("api", 9000 + i)));

            Assert.True(await next.WaitAsync(Generous));
            Assert.Same(published, watch.Current);
            versions.Add(watch.Current.Version);
        }

        Assert.Equal([1, 2, 3], versions);
    }

    [Fact]
    public async Task WatchAsync_SlowReader_SkipsToNewestSnapshot()
    {
        var publisher = new SnapshotPublisher("static");
        using var cancellation = new CancellationTokenSource();
        await using var watch = publisher.WatchAsync(cancellation.Token).GetAsyncEnumerator(cancellation.Token);
        Assert.True(await watch.MoveNextAsync().AsTask().WaitAsync(Generous));

        publisher.Publish(Services(("api", 9001)));
        publisher.Publish(Services(("api", 9002)));
        var newest = publisher.Publish(Services(("api", 9003)));

        Assert.True(await watch.MoveNextAsync().AsTask().WaitAsync(Generous));
        Assert.Same(newest, watch.Current);
        Assert.Equal(3, watch.Current.Version);
    }

    [Fact]
    public async Task WatchAsync_SeveralWatchers_EachSeesThePublish()
    {
        var publisher = new SnapshotPublisher("static");
        using var cancellation = new CancellationTokenSource();
        await using var first = publisher.WatchAsync(cancellation.Token).GetAsyncEnumerator(cancellation.Token);
        await using var second = publisher.WatchAsync(cancellation.Token).GetAsyncEnumerator(cancellation.Token);
        Assert.True(await first.MoveNextAsync().AsTask().WaitAsync(Generous));
        Assert.True(await second.MoveNextAsync().AsTask().WaitAsync(Generous));

        var firstNext = first.MoveNextAsync().AsTask();
        var secondNext = second.MoveNextAsync().AsTask();
        var published = publisher.Publish(Services(("api", 9001)));

        Assert.True(await firstNext.WaitAsync(Generous));
        Assert.True(await secondNext.WaitAsync(Generous));
        Assert.Same(published, first.Current);
        Assert.Same(published, second.Current);
    }

    [Fact]
    public async Task WatchAsync_CancelledWhileWaiting_EndsTheStream()
    {
        var publisher = new SnapshotPublisher("static");
        using var cancellation = new CancellationTokenSource();
        await using var watch = publisher.WatchAsync(cancellation.Token).GetAsyncEnumerator(cancellation.Token);
        Assert.True(await watch.MoveNextAsync().AsTask().WaitAsync(Generous));
        var next = watch.MoveNextAsync().AsTask();

        await cancellation.CancelAsync();

        Assert.False(await next.WaitAsync(Generous));
    }

    [Fact]
    public async Task WatchAsync_CancelledBeforeStart_YieldsNothing()
    {
        var publisher = new SnapshotPublisher("static");
        publisher.Publish(Services(("api", 9001)));
        using var cancellation = new CancellationTokenSource();
        await cancellation.CancelAsync();

        var seen = new List<CatalogSnapshot>();
        await foreach (var snapshot in publisher.WatchAsync(cancellation.Token))
        {
            seen.Add(snapshot);
        }

        Assert.Empty(seen);
    }

    [Fact]
    public async Task WatchAsync_ConcurrentPublishes_LastOneIsAlwaysSeen()
    {
        var publisher = new SnapshotPublisher("static");
        using var cancellation = new CancellationTokenSource();
        var seen = new List<long>();
        var reader = Task.Run(async () =>
        {
            await foreach (var snapshot in publisher.WatchAsync(cancellation.Token))
            {
                seen.Add(snapshot.Version);
                if (snapshot.Version == 200)
                {
                    return;
                }
            }
        });

        await Task.WhenAll(Enumerable.Range(0, 4).Select(_ => Task.Run(() =>
        {
            for (var i = 0; i < 50; i++)
            {
                publisher.Publish(Services(("api", 9001)));
            }
        })));

        await reader.WaitAsync(Generous);
        Assert.Equal(200, publisher.Current.Version);
        Assert.Equal(200, seen[^1]);
        Assert.Equal(seen.Order(), seen);
        Assert.Equal(seen.Count, seen.Distinct().Count());
    }

    internal static Dictionary<string, IReadOnlyList<ServiceEndpoint>> Services(params (string Name, int Port)[] services) =>
        services.ToDictionary(s => s.Name, s => (IReadOnlyList<ServiceEndpoint>)[new ServiceEndpoint("127.0.0.1", s.Port)], StringComparer.Ordinal);
}
