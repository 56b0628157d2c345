namespace Mesh.Plugins.Tests.Chain;

public class FilterChainTests
{
    [Fact]
    public async Task RunAsync_AllContinue_RunsEveryFilterInOrder()
    {
        var calls = new List<string>();
        var chain = new FilterChain([
            new RecordingFilter("a", calls, FilterResult.Continue),
            new RecordingFilter("b", calls, FilterResult.Continue),
            new RecordingFilter("c", calls, FilterResult.Continue),
        ]);

        var result = await chain.RunAsync(new FakeContext(), CancellationToken.None);

        Assert.Equal(FilterAction.Continue, result.Action);
        Assert.Equal(["a", "b", "c"], calls);
        Assert.Equal(3, chain.Count);
        Assert.False(chain.IsEmpty);
    }

    [Fact]
    public async Task RunAsync_FilterResponds_StopsAndReturnsTheResponse()
    {
        var calls = new List<string>();
        var chain = new FilterChain([
            new RecordingFilter("a", calls, FilterResult.Continue),
            new RecordingFilter("deny", calls, FilterResult.Respond(403, "forbidden")),
            new RecordingFilter("c", calls, FilterResult.Continue),
        ]);

        var result = await chain.RunAsync(new FakeContext(), CancellationToken.None);

        Assert.Equal(FilterResult.Respond(403, "forbidden"), result);
        Assert.Equal(["a", "deny"], calls);
    }

    [Fact]
    public async Task RunAsync_FilterReroutes_LaterFiltersStillRun()
    {
        // A router placed before an auth filter must not skip it: a reroute does not end the chain.
        var calls = new List<string>();
        var chain = new FilterChain([
            new RecordingFilter("canary", calls, FilterResult.Reroute("api-canary")),
            new RecordingFilter("auth", calls, FilterResult.Respond(401)),
        ]);

        var result = await chain.RunAsync(new FakeContext(), CancellationToken.None);

        Assert.Equal(FilterAction.Respond, result.Action);
        Assert.Equal(401, result.StatusCode);
        Assert.Equal(["canary", "auth"], calls);
    }

    [Fact]
    public async Task RunAsync_TwoReroutes_LastOneWins()
    {
        var calls = new List<string>();
        var chain = new FilterChain([
            new RecordingFilter("first", calls, FilterResult.Reroute("api-canary")),
            new RecordingFilter("b", calls, FilterResult.Continue),
            new RecordingFilter("second", calls, FilterResult.Reroute("api", "v2")),
        ]);

        var result = await chain.RunAsync(new FakeContext(), CancellationToken.None);

        Assert.Equal(FilterAction.Reroute, result.Action);
        Assert.Equal(("api", "v2"), (result.Service, result.Subset));
        Assert.Equal(["first", "b", "second"], calls);
    }

    [Fact]
    public async Task RunAsync_EmptyChain_Continues()
    {
        var result = await FilterChain.Empty.RunAsync(new FakeContext(), CancellationToken.None);

        Assert.Equal(FilterResult.Continue, result);
        Assert.True(FilterChain.Empty.IsEmpty);
        Assert.Equal(0, FilterChain.Empty.Count);
    }

    [Fact]
    public async Task RunAsync_ChainBuiltFromEmptyList_Continues()
    {
        var chain = new FilterChain([]);

        Assert.True(chain.IsEmpty);
        Assert.Equal(FilterAction.Continue, (await chain.RunAsync(new FakeContext(), CancellationToken.None)).Action);
    }

    [Fact]
    public async Task RunAsync_FilterChangesRequest_LaterFiltersSeeTheChange()
    {
        var context = new FakeContext();
        var chain = new FilterChain([
            new DelegateFilter((c, _) =>
            {
                c.SetHeader("x-tenant", "blue");
                return ValueTask.FromResult(FilterResult.Continue);
            }),
            new DelegateFilter((c, _) => ValueTask.FromResult(c.GetHeader("x-tenant") == "blue" ? FilterResult.Reroute("blue") : FilterResult.Continue)),
        ]);

        var result = await chain.RunAsync(context, CancellationToken.None);

        Assert.Equal("blue", result.Service);
    }

    [Fact]
    public async Task RunAsync_AsyncFilters_AreAwaitedInOrder()
    {
        var calls = new List<string>();
        var chain = new FilterChain([
            new DelegateFilter(async (_, _) =>
            {
                await Task.Yield();
                calls.Add("first");
                return FilterResult.Continue;
            }),
            new DelegateFilter((_, _) =>
            {
                calls.Add("second");
                return ValueTask.FromResult(FilterResult.Continue);
            }),
        ]);

        await chain.RunAsync(new FakeContext(), CancellationToken.None);

        Assert.Equal(["first", "second"], calls);
    }

    [Fact]
    public async Task RunAsync_PassesTheCancellationTokenToFilters()
    {
        using var cancellation = new CancellationTokenSource();
        CancellationToken seen = default;
        var chain = new FilterChain([new DelegateFilter((_, token) =>
        {
            seen = token;
            return ValueTask.FromResult(FilterResult.Continue);
        })]);

        await chain.RunAsync(new FakeContext(), cancellation.Token);

        Assert.Equal(cancellation.Token, seen);
    }

    [Fact]
    public async Task RunAsync_FilterThrows_ExceptionPropagates()
    {
        var chain = new FilterChain([new DelegateFilter((_, _) => throw new InvalidOperationException("boom"))]);

        var error = await Assert.ThrowsAsync<InvalidOperationException>(() => chain.RunAsync(new FakeContext(), CancellationToken.None).AsTask());

        Assert.Equal("boom", error.Message);
    }

    [Fact]
    public async Task Constructor_SourceListChangedLater_ChainKeepsItsFilters()
    {
        var calls = new List<string>();
        var filters = new List<IRequestFilter> { new RecordingFilter("a", calls, FilterResult.Continue) };
        var chain = new FilterChain(filters);

        filters.Add(new RecordingFilter("b", calls, FilterResult.Respond(500)));
        var result = await chain.RunAsync(new FakeContext(), CancellationToken.None);

        Assert.Equal(1, chain.Count);
        Assert.Equal(FilterAction.Continue, result.Action);
        Assert.Equal(["a"], calls);
    }

    [Fact]
    public void Constructor_NullFilters_Throws()
    {
        Assert.Throws<ArgumentNullException>(() => new FilterChain(null!));
    }

    [Fact]
    public async Task RunAsync_NullContext_Throws()
    {
        await Assert.ThrowsAsync<ArgumentNullException>(() => FilterChain.Empty.RunAsync(null!, CancellationToken.None).AsTask());
    }

    private sealed class RecordingFilter(string name, List<string> calls, FilterResult result) : IRequestFilter
    {
        public ValueTask<FilterResult> OnRequestAsync(IRequestContext context, CancellationToken cancellationToken)
        {
            calls.Add(name);
            return ValueTask.FromResult(result);
        }
    }

    private sealed class DelegateFilter(Func<IRequestContext, CancellationToken, ValueTask<FilterResult>> onRequest) : IRequestFilter
    {
        public ValueTask<FilterResult> OnRequestAsync(IRequestContext context, CancellationToken cancellationToken) => onRequest(context, cancellationToken);
    }

    private sealed class FakeContext : IRequestContext
    {
        private readonly Dictionary<string, string> _headers = new(StringComparer.OrdinalIgnoreCase);

        public string Method => "GET";

        public string Host => "api.example.com";

        public string Path => "/";

        public string Route => "r";

        public string Service => "api";

        public string ClientAddress => "127.0.0.1";

        public string? GetHeader(string name) => _headers.TryGetValue(name, out var value) ? value : null;

        public void SetHeader(string name, string value) => _headers[name] = value;

        public void RemoveHeader(string name) => _headers.Remove(name);
    }
}
