namespace Mesh.Plugins.Tests.Chain;

public sealed class ConnectionFilterChainTests
{
    private static readonly AcceptedConnection Connection = new("tcp", "tcp", "127.0.0.7", 40000, null, []);

    private static FilterEntry Entry(IConnectionFilter filter, FilterErrorPolicy onError = FilterErrorPolicy.Reject, TimeSpan? timeout = null) =>
        new("c", new FilterInstance(filter, null, "c"), onError, timeout ?? TimeSpan.FromSeconds(30), new FilterStats("tcp", "c", scopeKind: "listener"));

    [Fact]
    public async Task AllowAsync_FirstDenyWins()
    {
        var last = Entry(new Fixed(true));
        var chain = new ConnectionFilterChain([Entry(new Fixed(true)), Entry(new Fixed(false)), last], "tcp");

        Assert.False(await chain.AllowAsync(Connection, CancellationToken.None));
        Assert.Equal(0, last.Stats.Calls);
    }

    [Fact]
    public async Task AllowAsync_ThrowsUnderReject_Denies_UnderContinue_Skips()
    {
        Assert.False(await new ConnectionFilterChain([Entry(new Throwing())], "tcp").AllowAsync(Connection, CancellationToken.None));
        Assert.True(await new ConnectionFilterChain([Entry(new Throwing(), FilterErrorPolicy.Continue)], "tcp").AllowAsync(Connection, CancellationToken.None));
    }

    [Fact]
    public async Task AllowAsync_TimesOut_CountedAndPolicyApplied()
    {
        var never = new TaskCompletionSource<bool>();
        var rejecting = Entry(new Pending(never.Task), timeout: TimeSpan.FromMilliseconds(30));
        var continuing = Entry(new Pending(never.Task), FilterErrorPolicy.Continue, TimeSpan.FromMilliseconds(30));

        Assert.False(await new ConnectionFilterChain([rejecting], "tcp").AllowAsync(Connection, CancellationToken.None));
        Assert.True(await new ConnectionFilterChain([continuing], "tcp").AllowAsync(Connection, CancellationToken.None));
        Assert.Equal(1, rejecting.Stats.Timeouts);
        Assert.Equal(1, continuing.Stats.Timeouts);
    }

    [Fact]
    public async Task AllowAsync_MissingFilter_DeniesEvenUnderContinue()
    {
        var chain = new ConnectionFilterChain([FilterEntry.Missing("allowlist", "not loaded", new FilterStats("tcp", "allowlist"))], "tcp");

        Assert.False(await chain.AllowAsync(Connection, CancellationToken.None));
    }

    private sealed class Fixed(bool allow) : IConnectionFilter
    {
        public ValueTask<bool> AllowAsync(AcceptedConnection connection, CancellationToken cancellationToken) => new(allow);
    }

    private sealed class Throwing : IConnectionFilter
    {
        public ValueTask<bool> AllowAsync(AcceptedConnection connection, CancellationToken cancellationToken) => throw new InvalidOperationException("boom");
    }

    private sealed class Pending(Task<bool> result) : IConnectionFilter
    {
        public ValueTask<bool> AllowAsync(AcceptedConnection connection, CancellationToken cancellationToken) => new(result);
    }
}
