using System.Diagnostics.Metrics;

namespace Mesh.Plugins.Tests.Chain;

/// <summary>Configured chains: onError, timeoutMs, counters, missing filters, response filters, leases.</summary>
public sealed class FilterChainPolicyTests
{
    private static readonly TimeSpan Short = TimeSpan.FromMilliseconds(50);

    private static FilterEntry Entry(IRequestFilter filter, FilterErrorPolicy onError = FilterErrorPolicy.Reject, TimeSpan? timeout = null, string name = "f") =>
        new(name, new FilterInstance(filter, null, name), onError, timeout ?? TimeSpan.FromSeconds(30), new FilterStats("r", name));

    private static FilterChain Chain(params FilterEntry[] entries) => new(entries, "r");

    [Fact]
    public async Task RunAsync_FilterThrowsUnderReject_Answers500NamingTheFilter()
    {
        var entry = Entry(new Throwing(), name: "auth");

        var result = await Chain(entry, Entry(new Fixed(FilterResult.Reroute("x")))).RunAsync(new TestRequestContext(), CancellationToken.None);

        Assert.Equal(FilterAction.Respond, result.Action);
        Assert.Equal(500, result.StatusCode);
        Assert.Contains("'auth'", result.Body);
        Assert.Equal((1, 1, 0), (entry.Stats.Calls, entry.Stats.Errors, entry.Stats.Timeouts));
    }

    [Fact]
    public async Task RunAsync_FilterThrowsAsynchronouslyUnderContinue_SkipsItAndRunsTheNext()
    {
        var failing = Entry(new ThrowingLater(), FilterErrorPolicy.Continue);
        var next = Entry(new Fixed(FilterResult.Respond(204)));

        var result = await Chain(failing, next).RunAsync(new TestRequestContext(), CancellationToken.None);

        Assert.Equal(204, result.StatusCode);
        Assert.Equal(1, failing.Stats.Errors);
        Assert.Equal(1, next.Stats.Calls);
    }

    [Fact]
    public async Task RunAsync_FilterPastTimeoutUnderReject_Answers504()
    {
        var release = new TaskCompletionSource<FilterResult>(TaskCreationOptions.RunContinuationsAsynchronously);
        var slow = Entry(new Pending(release.Task), timeout: Short, name: "slow");

        var result = await Chain(slow).RunAsync(new TestRequestContext(), CancellationToken.None);
        release.SetResult(FilterResult.Continue);

        Assert.Equal(504, result.StatusCode);
        Assert.Contains("'slow' timed out after 50 ms", result.Body);
        Assert.Equal((1, 0, 1), (slow.Stats.Calls, slow.Stats.Errors, slow.Stats.Timeouts));
    }

    [Fact]
    public async Task RunAsync_FilterPastTimeoutUnderContinue_Skipped()
    {
        var release = new TaskCompletionSource<FilterResult>(TaskCreationOptions.RunContinuationsAsynchronously);
        var slow = Entry(new Pending(release.Task), FilterErrorPolicy.Continue, Short);

        var result = await Chain(slow, Entry(new Fixed(FilterResult.Reroute("b")))).RunAsync(new TestRequestContext(), CancellationToken.None);
        // The abandoned filter may still fail later; that is observed, not thrown anywhere.
        release.SetException(new InvalidOperationException("late"));

        Assert.Equal(FilterResult.Reroute("b"), result);
        Assert.Equal(1, slow.Stats.Timeouts);
    }

    [Fact]
    public async Task RunAsync_AsyncFilterWithinTimeout_ItsResultCounts()
    {
        var entry = Entry(new Yielding(FilterResult.Respond(418)), timeout: TimeSpan.FromSeconds(30));

        var result = await Chain(entry).RunAsync(new TestRequestContext(), CancellationToken.None);

        Assert.Equal(418, result.StatusCode);
        Assert.Equal(0, entry.Stats.Timeouts);
    }

    [Fact]
    public async Task RunAsync_MissingFilterEvenUnderContinue_Answers503WithReason()
    {
        var missing = FilterEntry.Missing("api-key", "filter 'api-key' (routes[0].filters[0]) is not loaded", new FilterStats("r", "api-key"));
        var after = Entry(new Fixed(FilterResult.Continue));

        var result = await Chain(missing, after).RunAsync(new TestRequestContext(), CancellationToken.None);

        Assert.Equal(503, result.StatusCode);
        Assert.Equal("filter 'api-key' (routes[0].filters[0]) is not loaded\n", result.Body);
        Assert.Equal(0, after.Stats.Calls);
    }

    [Fact]
    public async Task RunAsync_RecordsDurationsInTheHistogram()
    {
        using var meter = new Meter("test.filters");
        var histogram = meter.CreateHistogram<double>("d");
        var recorded = new List<(double Value, string? Route, string? Filter)>();
        using var listener = new MeterListener();
        listener.InstrumentPublished = (instrument, l) =>
        {
            if (ReferenceEquals(instrument, histogram))
            {
                l.EnableMeasurementEvents(instrument);
            }
        };
        listener.SetMeasurementEventCallback<double>((_, value, tags, _) => recorded.Add((value, tags[0].Value as string, tags[1].Value as string)));
        listener.Start();
        var entry = new FilterEntry("f", new FilterInstance(new Fixed(FilterResult.Continue), null, "f"), FilterErrorPolicy.Reject, Short, new FilterStats("api", "f", histogram));

        await Chain(entry).RunAsync(new TestRequestContext(), CancellationToken.None);

        var one = Assert.Single(recorded);
        Assert.Equal(("api", "f"), (one.Route, one.Filter));
        Assert.InRange(one.Value, 0, 10);
    }

    [Fact]
    public async Task RunResponseAsync_RunsResponseFiltersInReverseOrder()
    {
        var order = new List<string>();
        var chain = Chain(Entry(new ResponseRecorder("first", order)), Entry(new Fixed(FilterResult.Continue)), Entry(new ResponseRecorder("second", order)));

        Assert.True(chain.HasResponseFilters);
        Assert.True(await chain.RunResponseAsync(new TestResponse(), CancellationToken.None));
        Assert.Equal(["second", "first"], order);
    }

    [Fact]
    public async Task RunResponseAsync_ResponseFilterThrows_RejectFailsAndContinueSkips()
    {
        var rejecting = Chain(Entry(new ResponseThrows()));
        var continuing = Chain(Entry(new ResponseThrows(), FilterErrorPolicy.Continue));

        Assert.False(await rejecting.RunResponseAsync(new TestResponse(), CancellationToken.None));
        Assert.True(await continuing.RunResponseAsync(new TestResponse(), CancellationToken.None));
    }

    [Fact]
    public void TryEnter_RetiredAndDrainedFilter_FailsSoTheCallerRereadsTheState()
    {
        var instance = new FilterInstance(new Fixed(FilterResult.Continue), null, "k");
        var chain = new FilterChain([new FilterEntry("f", instance, FilterErrorPolicy.Reject, Short, new FilterStats("r", "f"))], "r");

        Assert.True(chain.TryEnter());
        instance.Retire();
        Assert.False(instance.IsClosed);
        Assert.True(chain.TryEnter());
        chain.Leave();
        chain.Leave();

        Assert.True(instance.IsClosed);
        Assert.False(chain.TryEnter());
    }

    [Fact]
    public void Retire_DisposableFilter_DisposedAfterLastLease()
    {
        var filter = new Disposable();
        var instance = new FilterInstance(filter, null, "k");
        Assert.True(instance.TryEnter());

        instance.Retire();
        Assert.False(filter.Disposed);
        instance.Leave();

        Assert.True(filter.Disposed);
    }

    [Fact]
    public async Task TryEnter_ConcurrentRequestsAndRetire_NoRequestRunsAClosedFilter()
    {
        var filter = new Disposable();
        var instance = new FilterInstance(filter, null, "k");
        var chain = new FilterChain([new FilterEntry("f", instance, FilterErrorPolicy.Reject, Short, new FilterStats("r", "f"))], "r");
        var ranClosed = 0;
        var start = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var workers = Enumerable.Range(0, 4).Select(_ => Task.Run(async () =>
        {
            await start.Task;
            for (var i = 0; i < 20_000; i++)
            {
                if (!chain.TryEnter())
                {
                    return;
                }

                if (filter.Disposed)
                {
                    Interlocked.Increment(ref ranClosed);
                }

                chain.Leave();
            }
        })).ToArray();

        start.SetResult();
        instance.Retire();
        await Task.WhenAll(workers);

        Assert.Equal(0, ranClosed);
        Assert.True(instance.IsClosed);
        Assert.True(filter.Disposed);
    }

    [Fact]
    public void RunAsync_SynchronousFiltersWithCountersAndHistogram_AllocateNothingPerRequest()
    {
        using var meter = new Meter("test.filters.alloc");
        var histogram = meter.CreateHistogram<double>("d");
        using var listener = new MeterListener();
        listener.InstrumentPublished = (instrument, l) => l.EnableMeasurementEvents(instrument);
        listener.SetMeasurementEventCallback<double>(static (_, _, _, _) => { });
        listener.Start();
        FilterEntry Counted(string name) => new(name, new FilterInstance(new Fixed(FilterResult.Continue), null, name), FilterErrorPolicy.Reject, Short, new FilterStats("r", name, histogram));
        var chain = new FilterChain([Counted("a"), Counted("b"), Counted("c")], "r");
        var context = new TestRequestContext();
        RunMany(chain, context, 100);

        var before = GC.GetAllocatedBytesForCurrentThread();
        RunMany(chain, context, 1000);
        var allocated = GC.GetAllocatedBytesForCurrentThread() - before;

        Assert.Equal(0, allocated);
    }

    // What the data path does per request: lease, run, return the lease.
    private static void RunMany(FilterChain chain, IRequestContext context, int count)
    {
        for (var i = 0; i < count; i++)
        {
            Assert.True(chain.TryEnter());
            var pending = chain.RunAsync(context, CancellationToken.None);
            if (!pending.IsCompletedSuccessfully || pending.Result.Action != FilterAction.Continue)
            {
                Assert.Fail("a synchronous chain did not complete synchronously");
            }
            chain.Leave();
        }
    }

    private sealed class Fixed(FilterResult result) : IRequestFilter
    {
        public ValueTask<FilterResult> OnRequestAsync(IRequestContext context, CancellationToken cancellationToken) => new(result);
    }

    private sealed class Throwing : IRequestFilter
    {
        public ValueTask<FilterResult> OnRequestAsync(IRequestContext context, CancellationToken cancellationToken) => throw new InvalidOperationException("boom");
    }

    private sealed class ThrowingLater : IRequestFilter
    {
        public async ValueTask<FilterResult> OnRequestAsync(IRequestContext context, CancellationToken cancellationToken)
        {
            await Task.Yield();
            throw new InvalidOperationException("later");
        }
    }

    private sealed class Pending(Task<FilterResult> result) : IRequestFilter
    {
        public ValueTask<FilterResult> OnRequestAsync(IRequestContext context, CancellationToken cancellationToken) => new(result);
    }

    private sealed class Yielding(FilterResult result) : IRequestFilter
    {
        public async ValueTask<FilterResult> OnRequestAsync(IRequestContext context, CancellationToken cancellationToken)
        {
            await Task.Yield();
            return result;
        }
    }

    private sealed class ResponseRecorder(string name, List<string> order) : IRequestFilter, IResponseFilter
    {
        public ValueTask<FilterResult> OnRequestAsync(IRequestContext context, CancellationToken cancellationToken) => new(FilterResult.Continue);

        public ValueTask OnResponseAsync(IResponseContext context, CancellationToken cancellationToken)
        {
            order.Add(name);
            return ValueTask.CompletedTask;
        }
    }

    private sealed class ResponseThrows : IRequestFilter, IResponseFilter
    {
        public ValueTask<FilterResult> OnRequestAsync(IRequestContext context, CancellationToken cancellationToken) => new(FilterResult.Continue);

        public ValueTask OnResponseAsync(IResponseContext context, CancellationToken cancellationToken) => throw new InvalidOperationException("boom");
    }

    private sealed class Disposable : IRequestFilter, IDisposable
    {
        private int _disposed;

        public bool Disposed => Volatile.Read(ref _disposed) != 0;

        public ValueTask<FilterResult> OnRequestAsync(IRequestContext context, CancellationToken cancellationToken) => new(FilterResult.Continue);

        public void Dispose() => Volatile.Write(ref _disposed, 1);
    }

    private sealed class TestResponse : IResponseContext
    {
        public IRequestContext Request { get; } = new TestRequestContext();

        public int StatusCode => 200;

        public IEnumerable<KeyValuePair<string, string>> Headers => [];

        public string? GetHeader(string name) => null;

        public void SetHeader(string name, string value)
        {
        }

        public void RemoveHeader(string name)
        {
        }
    }
}
