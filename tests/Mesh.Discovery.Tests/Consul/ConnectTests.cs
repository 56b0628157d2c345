// Connect from the agent: the identity watcher (leaf and roots with blocking queries) and the intentions authorizer.
using System.Security.Cryptography.X509Certificates;
using Mesh.Discovery.Consul;
using Mesh.Tests.Consul;
using Microsoft.Extensions.Time.Testing;

namespace Mesh.Discovery.Tests.Consul;

public sealed class ConnectTests : IAsyncLifetime
{
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(20);
    private ConsulTestServer _server = null!;
    private ConsulClient _client = null!;

    public async Task InitializeAsync()
    {
        _server = await ConsulTestServer.StartAsync();
        _client = new ConsulClient(new ConsulClientOptions { Address = _server.Address, MaxRetryAttempts = 1, RetryDelay = TimeSpan.FromMilliseconds(10), MaxRetryDelay = TimeSpan.FromMilliseconds(50) });
    }

    public async Task DisposeAsync()
    {
        _client.Dispose();
        await _server.DisposeAsync();
    }

    [Fact]
    public async Task Watch_FirstIdentity_LeafWithKeyChainsToTheRootsWithItsSpiffeId()
    {
        using var stop = new CancellationTokenSource(Deadline);
        await using var identities = Watcher().WatchAsync(stop.Token).GetAsyncEnumerator(stop.Token);

        Assert.True(await identities.MoveNextAsync());
        var identity = identities.Current;

        using var leaf = identity.CreateCertificate();
        Assert.True(leaf.HasPrivateKey);
        Assert.True(Chains(leaf, identity.CreateTrustBundle()));
        Assert.Equal(_server.Ca.SpiffeId("web"), identity.Leaf.ServiceUri);
        Assert.Contains(_server.Ca.SpiffeId("web"), leaf.Extensions.OfType<X509SubjectAlternativeNameExtension>().Single().Format(false), StringComparison.Ordinal);
        Assert.Empty(identity.CreateIntermediates());
    }

    [Fact]
    public async Task Watch_CaRotation_NewLeafFromTheNewRootAndBothRootsTrusted()
    {
        using var stop = new CancellationTokenSource(Deadline);
        await using var identities = Watcher().WatchAsync(stop.Token).GetAsyncEnumerator(stop.Token);
        Assert.True(await identities.MoveNextAsync());
        var first = identities.Current;
        // The loops run while the next identity is awaited.
        var next = identities.MoveNextAsync().AsTask();
        await _server.WaitForHeldQueriesAsync(2, Deadline);

        _server.Ca.Rotate();
        Assert.True(await next.WaitAsync(Deadline));
        var rotated = identities.Current;
        while (rotated.Roots.Roots.Count < 2 || rotated.Leaf.SerialNumber == first.Leaf.SerialNumber)
        {
            Assert.True(await identities.MoveNextAsync());
            rotated = identities.Current;
        }

        using var leaf = rotated.CreateCertificate();
        using var newRoot = X509Certificate2.CreateFromPem(rotated.Roots.Roots.Single(r => r.Active).RootCert);
        Assert.Equal(newRoot.Subject, leaf.Issuer);
        Assert.True(Chains(leaf, rotated.CreateTrustBundle()));
        using var oldLeaf = first.CreateCertificate();
        Assert.True(Chains(oldLeaf, rotated.CreateTrustBundle()), "peers with a leaf of the old root are still trusted");
    }

    [Fact]
    public async Task Watch_LeafRenewed_YieldsTheNewLeaf()
    {
        using var stop = new CancellationTokenSource(Deadline);
        await using var identities = Watcher().WatchAsync(stop.Token).GetAsyncEnumerator(stop.Token);
        Assert.True(await identities.MoveNextAsync());
        var first = identities.Current.Leaf.SerialNumber;
        var next = identities.MoveNextAsync().AsTask();
        await _server.WaitForHeldQueriesAsync(2, Deadline);

        _server.Ca.RenewLeaf("web");
        Assert.True(await next.WaitAsync(Deadline));

        Assert.NotEqual(first, identities.Current.Leaf.SerialNumber);
    }

    [Fact]
    public async Task Watch_AgentDown_FailureReportedNothingYieldedThenResumes()
    {
        var failed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var watcher = Watcher(onFailure: _ => failed.TrySetResult());
        using var stop = new CancellationTokenSource(Deadline);
        await using var identities = watcher.WatchAsync(stop.Token).GetAsyncEnumerator(stop.Token);
        Assert.True(await identities.MoveNextAsync());
        var first = identities.Current.Leaf.SerialNumber;
        var next = identities.MoveNextAsync().AsTask();
        await _server.WaitForHeldQueriesAsync(2, Deadline);

        await _server.StopAsync();
        await failed.Task.WaitAsync(Deadline);
        Assert.False(next.IsCompleted, "nothing is yielded while the agent is down");

        await _server.RestartAsync(keepState: true);
        _server.Ca.RenewLeaf("web");
        Assert.True(await next.WaitAsync(Deadline));
        Assert.NotEqual(first, identities.Current.Leaf.SerialNumber);
    }

    [Fact]
    public async Task Authorize_Intentions_AllowAndDenyWithReason()
    {
        _server.Ca.AddIntention("web", "db", allow: true);
        _server.Ca.AddIntention("batch", "db", allow: false);
        var authorizer = new ConsulIntentionAuthorizer(_client);

        var web = await authorizer.AuthorizeAsync("db", _server.Ca.SpiffeId("web"), "01");
        var batch = await authorizer.AuthorizeAsync("db", _server.Ca.SpiffeId("batch"), "02");

        Assert.Equal(new IntentionDecision(true, "Matched intention: web => db (allow)"), web);
        Assert.Equal(new IntentionDecision(false, "Matched intention: batch => db (deny)"), batch);
    }

    [Fact]
    public async Task Authorize_SameCallerAgain_AnsweredFromCacheUntilItExpires()
    {
        var time = new FakeTimeProvider();
        var authorizer = new ConsulIntentionAuthorizer(_client, timeProvider: time) { CacheTime = TimeSpan.FromSeconds(10) };
        _server.Ca.AddIntention("web", "db", allow: true);

        await authorizer.AuthorizeAsync("db", _server.Ca.SpiffeId("web"), "01");
        _server.Ca.AddIntention("web", "db", allow: false);
        var cached = await authorizer.AuthorizeAsync("db", _server.Ca.SpiffeId("web"), "01");
        time.Advance(TimeSpan.FromSeconds(10));
        var fresh = await authorizer.AuthorizeAsync("db", _server.Ca.SpiffeId("web"), "01");

        Assert.True(cached.Authorized);
        Assert.False(fresh.Authorized);
        Assert.Equal(2, _server.Requests.Count(r => r.Path == "/v1/agent/connect/authorize"));
    }

    [Fact]
    public async Task Authorize_ManyConcurrentAskers_OneCallToTheAgent()
    {
        var authorizer = new ConsulIntentionAuthorizer(_client);
        using var start = new ManualResetEventSlim();

        var askers = Enumerable.Range(0, 64).Select(_ => Task.Run(() =>
        {
            start.Wait();
            return authorizer.AuthorizeAsync("db", _server.Ca.SpiffeId("web"), "01");
        })).ToList();
        start.Set();
        var decisions = await Task.WhenAll(askers).WaitAsync(Deadline);

        Assert.All(decisions, d => Assert.True(d.Authorized));
        Assert.Single(_server.Requests, r => r.Path == "/v1/agent/connect/authorize");
    }

    [Fact]
    public async Task Authorize_AgentDown_DeniesThenAsksAgainAfterTheFailureTime()
    {
        var time = new FakeTimeProvider();
        var authorizer = new ConsulIntentionAuthorizer(_client, timeProvider: time) { FailureCacheTime = TimeSpan.FromSeconds(1) };
        await _server.StopAsync();

        var down = await authorizer.AuthorizeAsync("db", _server.Ca.SpiffeId("web"), "01");
        await _server.RestartAsync(keepState: true);
        var stillDenied = await authorizer.AuthorizeAsync("db", _server.Ca.SpiffeId("web"), "01");
        time.Advance(TimeSpan.FromSeconds(1));
        var back = await authorizer.AuthorizeAsync("db", _server.Ca.SpiffeId("web"), "01");

        Assert.False(down.Authorized);
        Assert.StartsWith("intentions unavailable: ", down.Reason, StringComparison.Ordinal);
        Assert.False(stillDenied.Authorized);
        Assert.True(back.Authorized);
    }

    [Fact]
    public async Task Authorize_AgentAnswersError_Denies()
    {
        var authorizer = new ConsulIntentionAuthorizer(_client);
        _server.InjectFaults(3, 500, "rpc error: no leader");

        var decision = await authorizer.AuthorizeAsync("db", _server.Ca.SpiffeId("web"), "01");

        Assert.False(decision.Authorized);
        Assert.Contains("500", decision.Reason, StringComparison.Ordinal);
    }

    private ConnectIdentityWatcher Watcher(Action<string>? onFailure = null) =>
        new(_client, "web") { RetryDelay = TimeSpan.FromMilliseconds(20), MaxRetryDelay = TimeSpan.FromMilliseconds(200), OnFailure = onFailure };

    private static bool Chains(X509Certificate2 leaf, X509Certificate2Collection roots)
    {
        using var chain = new X509Chain();
        chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        chain.ChainPolicy.CustomTrustStore.AddRange(roots);
        chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        return chain.Build(leaf);
    }
}
