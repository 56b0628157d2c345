// The Consul client against the Consul-compatible test server: every call, blocking, filters, token, datacenter, TLS, retries.
using System.Diagnostics;
using System.Net;
using Mesh.Discovery.Consul;
using Mesh.Tests.Consul;

namespace Mesh.Discovery.Tests.Consul;

public sealed class ConsulClientTests : IAsyncLifetime
{
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(20);
    private ConsulTestServer _server = null!;

    public async Task InitializeAsync() => _server = await ConsulTestServer.StartAsync();

    public async Task DisposeAsync() => await _server.DisposeAsync();

    private ConsulClient Client(Func<ConsulClientOptions, ConsulClientOptions>? change = null)
    {
        var options = new ConsulClientOptions { Address = _server.Address, RetryDelay = TimeSpan.FromMilliseconds(10), MaxRetryDelay = TimeSpan.FromMilliseconds(50) };
        return new ConsulClient(change?.Invoke(options) ?? options);
    }

    [Fact]
    public async Task RegisterServiceAsync_WithTtlCheck_ServiceIsCriticalUntilPassed()
    {
        using var client = Client();

        await client.RegisterServiceAsync(new AgentServiceRegistration
        {
            Id = "web-1",
            Name = "web",
            Address = "127.0.0.1",
            Port = 8080,
            Tags = ["v1"],
            Meta = new Dictionary<string, string> { ["version"] = "1" },
            Check = new AgentServiceCheck { CheckId = "service:web-1", Ttl = "15s", DeregisterCriticalServiceAfter = "1m" },
            Weights = new ServiceWeights { Passing = 3, Warning = 1 },
        });
        var before = await client.HealthServiceAsync("web", passingOnly: true, tag: null, QueryOptions.NonBlocking);
        var all = await client.HealthServiceAsync("web", passingOnly: false, tag: null, QueryOptions.NonBlocking);
        await client.PassTtlAsync("service:web-1", "ok");
        var after = await client.HealthServiceAsync("web", passingOnly: true, tag: null, QueryOptions.NonBlocking);

        Assert.Empty(before.Value);
        var entry = Assert.Single(all.Value);
        Assert.Equal(HealthStatus.Critical, entry.AggregatedStatus());
        var passing = Assert.Single(after.Value);
        Assert.Equal(("web-1", "127.0.0.1", 8080), (passing.Service.Id, passing.Service.Address, passing.Service.Port));
        Assert.Equal(["v1"], passing.Service.Tags!);
        Assert.Equal("1", passing.Service.Meta!["version"]);
        Assert.Equal(3, passing.Service.Weights!.Passing);
        Assert.Contains(passing.Checks, c => c.CheckId == "service:web-1" && c.Output == "ok");
        Assert.True(after.Index > before.Index);
    }

    [Fact]
    public async Task DeregisterServiceAsync_KnownAndUnknownId_ServiceGoneAndNoError()
    {
        using var client = Client();
        _server.AddInstance("api", 9001, id: "api-1");

        await client.DeregisterServiceAsync("api-1");
        await client.DeregisterServiceAsync("never-registered");

        Assert.Null(_server.State.Service("api-1"));
        Assert.Null(await client.GetAgentServiceAsync("api-1"));
    }

    [Fact]
    public async Task GetAgentServicesAsync_Registered_ReturnsByIdWithDefinition()
    {
        using var client = Client();
        await client.RegisterServiceAsync(new AgentServiceRegistration { Id = "db-1", Name = "db", Port = 5432, Tags = ["primary"] });

        var services = await client.GetAgentServicesAsync();
        var one = await client.GetAgentServiceAsync("db-1");

        Assert.Equal("db", services["db-1"].Service);
        Assert.Equal(5432, one!.Port);
        Assert.Equal(["primary"], one.Tags!);
        Assert.False(string.IsNullOrEmpty(one.ContentHash));
    }

    [Fact]
    public async Task UpdateTtlAsync_WarnThenFail_StatusFollowsAndUnknownCheckThrows404()
    {
        using var client = Client();
        await client.RegisterServiceAsync(new AgentServiceRegistration { Id = "w", Name = "w", Port = 1, Check = new AgentServiceCheck { Ttl = "30s" } });

        await client.UpdateTtlAsync("service:w", HealthStatus.Warning, "slow");
        var warning = _server.State.Check("service:w")!;
        await client.FailTtlAsync("service:w", "down");
        var critical = _server.State.Check("service:w")!;
        var unknown = await Assert.ThrowsAsync<ConsulException>(() => client.PassTtlAsync("service:nope"));

        Assert.Equal((HealthStatus.Warning, "slow"), (warning.Status, warning.Output));
        Assert.Equal((HealthStatus.Critical, "down"), (critical.Status, critical.Output));
        Assert.Equal(HttpStatusCode.NotFound, unknown.StatusCode);
        Assert.False(unknown.IsTransient);
    }

    [Fact]
    public async Task RegisterCheckAsync_HttpCheckOnService_RunsAndPasses()
    {
        using var client = Client();
        await client.RegisterServiceAsync(new AgentServiceRegistration { Id = "h", Name = "h", Port = 1 });

        await client.RegisterCheckAsync(new AgentCheckRegistration { Id = "h-http", Name = "leader", ServiceId = "h", Http = new Uri(_server.Address, "/v1/status/leader").ToString(), Interval = "10s", Timeout = "2s" });
        await _server.WaitUntilAsync(s => s.Check("h-http")?.Status == HealthStatus.Passing, Deadline, "the HTTP check passes");
        await client.DeregisterCheckAsync("h-http");

        Assert.Null(_server.State.Check("h-http"));
    }

    [Fact]
    public async Task HealthServiceAsync_PassingAndTag_FilterInstances()
    {
        using var client = Client();
        _server.AddInstance("api", 9001, tags: ["v1"]);
        _server.AddInstance("api", 9002, tags: ["v2"]);
        _server.AddInstance("api", 9003, tags: ["v2"], status: HealthStatus.Critical);

        var passing = await client.HealthServiceAsync("api", passingOnly: true, tag: null, QueryOptions.NonBlocking);
        var all = await client.HealthServiceAsync("api", passingOnly: false, tag: null, QueryOptions.NonBlocking);
        var v2 = await client.HealthServiceAsync("api", passingOnly: true, tag: "v2", QueryOptions.NonBlocking);

        Assert.Equal([9001, 9002], passing.Value.Select(e => e.Service.Port));
        Assert.Equal([9001, 9002, 9003], all.Value.Select(e => e.Service.Port));
        Assert.Equal([9002], v2.Value.Select(e => e.Service.Port));
    }

    [Fact]
    public async Task HealthServiceAsync_WithIndex_HeldUntilTheServiceChanges()
    {
        using var client = Client();
        _server.AddInstance("api", 9001);
        var first = await client.HealthServiceAsync("api", true, null, QueryOptions.NonBlocking);

        var blocked = client.HealthServiceAsync("api", true, null, new QueryOptions(first.Index, TimeSpan.FromMinutes(5)));
        await _server.WaitForHeldQueriesAsync(1, Deadline);
        Assert.False(blocked.IsCompleted);
        _server.AddInstance("api", 9002);
        var second = await blocked.WaitAsync(Deadline);

        Assert.True(second.Index > first.Index);
        Assert.Equal([9001, 9002], second.Value.Select(e => e.Service.Port));
        var sent = _server.Requests.Last(r => r.Path == "/v1/health/service/api");
        Assert.Equal(first.Index, sent.QueryIndex);
        Assert.Equal("5m", sent.Query["wait"].ToString());
    }

    [Fact]
    public async Task HealthServiceAsync_NoChange_ReturnsAfterWaitWithSameIndex()
    {
        using var client = Client();
        _server.AddInstance("api", 9001);
        var first = await client.HealthServiceAsync("api", true, null, QueryOptions.NonBlocking);
        _server.AddInstance("other", 7000);

        var clock = Stopwatch.StartNew();
        var second = await client.HealthServiceAsync("api", true, null, new QueryOptions(first.Index, TimeSpan.FromMilliseconds(300)));

        Assert.True(clock.Elapsed >= TimeSpan.FromMilliseconds(290), $"returned after {clock.Elapsed}");
        Assert.Equal(first.Index, second.Index);
        Assert.Equal("300ms", _server.Requests.Last().Query["wait"].ToString());
    }

    [Fact]
    public async Task CatalogServicesAsync_Registered_NamesWithTags()
    {
        using var client = Client();
        _server.AddInstance("api", 9001, tags: ["v1"]);
        _server.AddInstance("api", 9002, tags: ["v2"]);

        var services = await client.CatalogServicesAsync(QueryOptions.NonBlocking);
        var instances = await client.CatalogServiceAsync("api", QueryOptions.NonBlocking);

        Assert.Equal(["v1", "v2"], services.Value["api"]);
        Assert.Contains("consul", services.Value.Keys);
        Assert.True(services.Index >= 1);
        Assert.Equal([9001, 9002], instances.Value.Select(i => i.ServicePort));
    }

    [Fact]
    public async Task Token_FromConfig_SentAsHeaderAndMissingTokenIsDenied()
    {
        _server.RequiredToken = "s3cret";
        using var withToken = Client(o => o with { Token = "s3cret" });
        using var without = Client(o => o with { MaxRetryAttempts = 0 });

        await withToken.CatalogServicesAsync(QueryOptions.NonBlocking);
        var denied = await Assert.ThrowsAsync<ConsulException>(() => without.CatalogServicesAsync(QueryOptions.NonBlocking));

        Assert.Equal("s3cret", _server.Requests[0].Token);
        Assert.Equal(HttpStatusCode.Forbidden, denied.StatusCode);
        Assert.Contains("403", denied.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task TokenFile_Rotated_NextCallSendsNewToken()
    {
        var file = Path.GetTempFileName();
        try
        {
            await File.WriteAllTextAsync(file, "first-token\n");
            using var client = Client(o => o with { TokenFile = file });
            await client.CatalogServicesAsync(QueryOptions.NonBlocking);
            await File.WriteAllTextAsync(file, "second-token\n");
            File.SetLastWriteTimeUtc(file, DateTime.UtcNow.AddSeconds(5));
            await client.CatalogServicesAsync(QueryOptions.NonBlocking);

            Assert.Equal(["first-token", "second-token"], _server.Requests.Select(r => r.Token));
        }
        finally
        {
            File.Delete(file);
        }
    }

    [Fact]
    public async Task Datacenter_Set_SentAsDcAndUnknownOneFails()
    {
        using var client = Client(o => o with { Datacenter = "dc1" });
        using var elsewhere = Client(o => o with { Datacenter = "dc9", MaxRetryAttempts = 0 });

        await client.HealthServiceAsync("api", true, null, QueryOptions.NonBlocking);
        var error = await Assert.ThrowsAsync<ConsulException>(() => elsewhere.HealthServiceAsync("api", true, null, QueryOptions.NonBlocking));

        Assert.Equal("dc1", _server.Requests[0].Query["dc"].ToString());
        Assert.Contains("No path to datacenter", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Retry_TransientFailures_RetriedAfterGrowingJitteredDelaysThenSucceeds()
    {
        using var client = Client(o => o with { MaxRetryAttempts = 3, RetryDelay = TimeSpan.FromMilliseconds(40), MaxRetryDelay = TimeSpan.FromMilliseconds(400) });
        var delays = new List<TimeSpan>();
        client.Retrying += (_, delay) => delays.Add(delay);
        _server.InjectFaults(1, 503, "No cluster leader");
        _server.InjectFaults(1, 429, "rate limited");
        _server.InjectFaults(1, 500, "rpc error");

        var result = await client.CatalogServicesAsync(QueryOptions.NonBlocking);

        Assert.NotNull(result.Value);
        var requests = _server.Requests;
        Assert.Equal([503, 429, 500, 200], requests.Select(r => r.Status));
        Assert.Equal(3, delays.Count);
        // Never a tight loop: each retry waits a positive, capped delay, and the attempts are spread by it.
        Assert.All(delays, d => Assert.InRange(d, TimeSpan.FromTicks(1), TimeSpan.FromMilliseconds(400)));
        Assert.True(requests[^1].Received - requests[0].Received >= delays.Aggregate(TimeSpan.Zero, (a, b) => a + b) - TimeSpan.FromMilliseconds(15));
    }

    [Fact]
    public async Task Retry_DelayGrowsWithAttempts_OnAverage()
    {
        using var client = Client(o => o with { MaxRetryAttempts = 4, RetryDelay = TimeSpan.FromMilliseconds(5), MaxRetryDelay = TimeSpan.FromSeconds(10) });
        var byAttempt = new Dictionary<int, List<double>>();
        client.Retrying += (attempt, delay) =>
        {
            lock (byAttempt)
            {
                (byAttempt.TryGetValue(attempt, out var list) ? list : byAttempt[attempt] = []).Add(delay.TotalMilliseconds);
            }
        };

        for (var i = 0; i < 10; i++)
        {
            _server.InjectFaults(4, 503);
            await client.CatalogServicesAsync(QueryOptions.NonBlocking);
        }

        // Exponential with jitter: single delays vary, but later attempts wait longer on average.
        Assert.True(byAttempt[4].Average() > byAttempt[1].Average(), $"attempt 1 {byAttempt[1].Average():0.0} ms, attempt 4 {byAttempt[4].Average():0.0} ms");
        Assert.True(byAttempt[1].Distinct().Count() > 1, "the delays have jitter");
    }

    [Fact]
    public async Task Retry_TransientFailuresBeyondLimit_ThrowsTransientAfterEveryAttempt()
    {
        using var client = Client(o => o with { MaxRetryAttempts = 2 });
        _server.InjectFaults(5, 500, "rpc error");

        var error = await Assert.ThrowsAsync<ConsulException>(() => client.RegisterServiceAsync(new AgentServiceRegistration { Name = "x", Port = 1 }));

        Assert.True(error.IsTransient);
        Assert.Equal(HttpStatusCode.InternalServerError, error.StatusCode);
        Assert.Equal(3, _server.Requests.Count);
    }

    [Fact]
    public async Task Retry_BadRequest_NotRetried()
    {
        using var client = Client();

        var error = await Assert.ThrowsAsync<ConsulException>(() => client.RegisterServiceAsync(new AgentServiceRegistration { Name = "", Port = 1 }));

        Assert.False(error.IsTransient);
        Assert.Contains("Missing service name", error.Message, StringComparison.Ordinal);
        Assert.Single(_server.Requests);
    }

    [Fact]
    public async Task MalformedAnswer_ClearErrorNamingThePath()
    {
        using var client = Client(o => o with { MaxRetryAttempts = 0 });
        _server.InjectFaults(1, 200, "[{\"Node\": ");

        var error = await Assert.ThrowsAsync<ConsulException>(() => client.HealthServiceAsync("api", true, null, QueryOptions.NonBlocking));

        Assert.Contains("GET /v1/health/service/api?passing=true: malformed answer from the agent", error.Message, StringComparison.Ordinal);
        Assert.False(error.IsTransient);
    }

    [Fact]
    public async Task AgentDown_CallFailsTransientNamingTheAgent()
    {
        using var client = Client(o => o with { MaxRetryAttempts = 1 });
        await _server.StopAsync();

        var error = await Assert.ThrowsAsync<ConsulException>(() => client.CatalogServicesAsync(QueryOptions.NonBlocking));

        Assert.True(error.IsTransient);
        Assert.Contains($"127.0.0.1:{_server.Port}", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task ConnectCaRootsAsync_Rotation_WakesBlockedQueryWithBothRoots()
    {
        using var client = Client();
        var first = await client.ConnectCaRootsAsync(QueryOptions.NonBlocking);

        var blocked = client.ConnectCaRootsAsync(new QueryOptions(first.Index));
        await _server.WaitForHeldQueriesAsync(1, Deadline);
        _server.Ca.Rotate();
        var second = await blocked.WaitAsync(Deadline);

        Assert.Single(first.Value.Roots);
        Assert.Equal(_server.Ca.TrustDomain, first.Value.TrustDomain);
        Assert.Equal(2, second.Value.Roots.Count);
        Assert.Equal(second.Value.ActiveRootId, Assert.Single(second.Value.Roots, r => r.Active).Id);
        Assert.NotEqual(first.Value.ActiveRootId, second.Value.ActiveRootId);
    }

    [Fact]
    public async Task ConnectLeafAsync_LeafChainsToActiveRootAndRotationBlocksUntilReissued()
    {
        using var client = Client();
        var roots = await client.ConnectCaRootsAsync(QueryOptions.NonBlocking);
        var leaf = await client.ConnectLeafAsync("web", QueryOptions.NonBlocking);

        using var certificate = System.Security.Cryptography.X509Certificates.X509Certificate2.CreateFromPem(leaf.Value.CertPem, leaf.Value.PrivateKeyPem);
        using var root = System.Security.Cryptography.X509Certificates.X509Certificate2.CreateFromPem(roots.Value.Roots[0].RootCert);
        using var chain = new System.Security.Cryptography.X509Certificates.X509Chain();
        chain.ChainPolicy.TrustMode = System.Security.Cryptography.X509Certificates.X509ChainTrustMode.CustomRootTrust;
        chain.ChainPolicy.CustomTrustStore.Add(root);
        chain.ChainPolicy.RevocationMode = System.Security.Cryptography.X509Certificates.X509RevocationMode.NoCheck;
        Assert.True(chain.Build(certificate));
        Assert.Equal(_server.Ca.SpiffeId("web"), leaf.Value.ServiceUri);

        var blocked = client.ConnectLeafAsync("web", new QueryOptions(leaf.Index));
        await _server.WaitForHeldQueriesAsync(1, Deadline);
        _server.Ca.Rotate();
        var renewed = await blocked.WaitAsync(Deadline);

        Assert.NotEqual(leaf.Value.SerialNumber, renewed.Value.SerialNumber);
        Assert.True(renewed.Index > leaf.Index);
    }

    [Fact]
    public async Task AuthorizeAsync_Intentions_AllowDenyAndDefault()
    {
        using var client = Client();
        _server.Ca.AddIntention("web", "db", allow: true);
        _server.Ca.AddIntention("*", "db", allow: false);
        _server.Ca.DefaultAllow = false;

        var web = await client.AuthorizeAsync(new AuthorizeRequest { Target = "db", ClientCertUri = _server.Ca.SpiffeId("web"), ClientCertSerial = "01" });
        var batch = await client.AuthorizeAsync(new AuthorizeRequest { Target = "db", ClientCertUri = _server.Ca.SpiffeId("batch"), ClientCertSerial = "02" });
        var other = await client.AuthorizeAsync(new AuthorizeRequest { Target = "cache", ClientCertUri = _server.Ca.SpiffeId("web"), ClientCertSerial = "03" });
        var foreign = await client.AuthorizeAsync(new AuthorizeRequest { Target = "db", ClientCertUri = "spiffe://other.consul/ns/default/dc/dc1/svc/web", ClientCertSerial = "04" });

        Assert.Equal((true, "Matched intention: web => db (allow)"), (web.Authorized, web.Reason));
        Assert.Equal((false, "Matched intention: * => db (deny)"), (batch.Authorized, batch.Reason));
        Assert.False(other.Authorized);
        Assert.False(foreign.Authorized);
    }

    [Fact]
    public async Task Tls_CaFileAndClientCertificate_ConnectsAndUntrustedServerFails()
    {
        using var pki = new TestPki();
        var (_, certificateFile, keyFile) = pki.Client();
        await using var server = await ConsulTestServer.StartAsync(new ConsulTestServerOptions { ServerCertificate = pki.Server(), ClientCertificateAuthority = pki.Ca });
        using var trusted = new ConsulClient(new ConsulClientOptions { Address = server.Address, CaFile = pki.CaFile, CertificateFile = certificateFile, KeyFile = keyFile });
        using var noCa = new ConsulClient(new ConsulClientOptions { Address = server.Address, CertificateFile = certificateFile, KeyFile = keyFile, MaxRetryAttempts = 0 });
        using var noCertificate = new ConsulClient(new ConsulClientOptions { Address = server.Address, CaFile = pki.CaFile, MaxRetryAttempts = 0 });

        var services = await trusted.CatalogServicesAsync(QueryOptions.NonBlocking);
        var untrusted = await Assert.ThrowsAsync<ConsulException>(() => noCa.CatalogServicesAsync(QueryOptions.NonBlocking));
        await Assert.ThrowsAsync<ConsulException>(() => noCertificate.CatalogServicesAsync(QueryOptions.NonBlocking));

        Assert.StartsWith("https://", server.Address.ToString(), StringComparison.Ordinal);
        Assert.Contains("consul", services.Value.Keys);
        Assert.True(untrusted.IsTransient);
        Assert.Single(server.Requests);
    }

    [Fact]
    public void Constructor_MissingCaFile_ThrowsNamingTheProblem()
    {
        var error = Assert.Throws<ConsulException>(() => new ConsulClient(new ConsulClientOptions { CaFile = "/nonexistent/ca.pem" }));

        Assert.Contains("cannot load the TLS files", error.Message, StringComparison.Ordinal);
    }
}
