// The Consul test server keeps to the documented API: fixtures accepted, TTL expiry, reaper, held queries, restarts.
using System.Diagnostics;
using System.Net;
using System.Text.Json;
using Mesh.Discovery.Consul;
using Mesh.Tests;
using Mesh.Tests.Consul;

namespace Mesh.Discovery.Tests.Consul;

public sealed class ConsulTestServerTests : IAsyncLifetime
{
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(20);
    private readonly HttpClient _http = new(new SocketsHttpHandler { UseProxy = false }) { Timeout = Deadline };
    private ConsulTestServer _server = null!;

    public async Task InitializeAsync() => _server = await ConsulTestServer.StartAsync();

    public async Task DisposeAsync()
    {
        await _server.DisposeAsync();
        _http.Dispose();
    }

    [Fact]
    public async Task Register_DocumentedSample_AcceptedWithScriptCheckCritical()
    {
        using var response = await PutFixtureAsync("/v1/agent/service/register", "agent-service-register.request.json");

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var service = _server.State.Service("redis1")!;
        Assert.Equal(("redis", 8000, 10, 1), (service.Name, service.Port, service.PassingWeight, service.WarningWeight));
        Assert.Equal(["primary", "v1"], service.Tags);
        var check = _server.State.Check("service:redis1")!;
        Assert.Equal(("script", "critical", TimeSpan.FromMinutes(90)), (check.Type, check.Status, check.DeregisterCriticalServiceAfter));
    }

    [Fact]
    public async Task Register_SnakeCaseSidecarSample_RegistersServiceAndItsSidecarProxy()
    {
        using var response = await PutFixtureAsync("/v1/agent/service/register", "agent-service-register.sidecar.request.json");

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(8080, _server.State.Service("web")!.Port);
        Assert.Equal("connect-proxy", _server.State.Service("web-sidecar-proxy")!.Kind);
    }

    [Fact]
    public async Task CheckRegisterAndUpdate_DocumentedSamples_Accepted()
    {
        using var ttl = await _http.PutAsync(new Uri(_server.Address, "/v1/agent/check/register"), new StringContent("{\"Name\":\"mem\",\"TTL\":\"30s\"}"));
        using var update = await PutFixtureAsync("/v1/agent/check/update/mem", "agent-check-update.request.json");

        Assert.Equal(HttpStatusCode.OK, ttl.StatusCode);
        Assert.Equal(HttpStatusCode.OK, update.StatusCode);
        Assert.Equal("passing", _server.State.Check("mem")!.Status);
        Assert.StartsWith("curl reported a failure", _server.State.Check("mem")!.Output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Register_MissingNameOrInterval_400WithConsulsMessage()
    {
        using var noName = await _http.PutAsync(new Uri(_server.Address, "/v1/agent/service/register"), new StringContent("{\"Port\":1}"));
        using var noInterval = await _http.PutAsync(new Uri(_server.Address, "/v1/agent/service/register"), new StringContent("{\"Name\":\"x\",\"Check\":{\"HTTP\":\"http://127.0.0.1:1/\"}}"));

        Assert.Equal(HttpStatusCode.BadRequest, noName.StatusCode);
        Assert.Equal("Missing service name", await noName.Content.ReadAsStringAsync());
        Assert.Equal(HttpStatusCode.BadRequest, noInterval.StatusCode);
    }

    [Fact]
    public async Task TtlCheck_NotUpdated_TurnsCriticalAndReaperDeregisters()
    {
        using var client = new ConsulClient(new ConsulClientOptions { Address = _server.Address });
        // A TTL check starts critical, so the reaper's clock runs from registration: give the pass call
        // seconds, not milliseconds, to arrive on a loaded machine (CI once took over 700 ms).
        await client.RegisterServiceAsync(new AgentServiceRegistration { Id = "t", Name = "t", Port = 1, Check = new AgentServiceCheck { Ttl = "1s", DeregisterCriticalServiceAfter = "3s" } });
        await client.PassTtlAsync("service:t");

        await _server.WaitUntilAsync(s => s.Check("service:t")?.Status == "critical", Deadline, "the TTL expires");
        Assert.Equal("TTL expired", _server.State.Check("service:t")!.Output);
        await _server.WaitUntilAsync(s => s.Service("t") is null, Deadline, "the reaper removes the service");
        Assert.Null(_server.State.Check("service:t"));
    }

    [Fact]
    public async Task HttpCheck_TargetFailsThenPasses_StatusFollows()
    {
        using var client = new ConsulClient(new ConsulClientOptions { Address = _server.Address });
        var url = new Uri(_server.Address, "/v1/no-such-endpoint").ToString();
        await client.RegisterServiceAsync(new AgentServiceRegistration { Id = "h", Name = "h", Port = 1, Check = new AgentServiceCheck { Http = url, Interval = "100ms", Timeout = "1s" } });

        await _server.WaitUntilAsync(s => s.Check("service:h")?.Output.Contains("405", StringComparison.Ordinal) == true, Deadline, "the HTTP check runs");
        Assert.Equal("critical", _server.State.Check("service:h")!.Status);
        await client.RegisterServiceAsync(new AgentServiceRegistration { Id = "h", Name = "h", Port = 1, Check = new AgentServiceCheck { Http = new Uri(_server.Address, "/v1/status/leader").ToString(), Interval = "100ms" } });
        await _server.WaitUntilAsync(s => s.Check("service:h")?.Status == "passing", Deadline, "the HTTP check passes");
    }

    [Fact]
    public async Task BlockingQuery_NoChange_HeldForWaitThenSameIndex()
    {
        _server.AddInstance("api", 1);
        var index = _server.State.ServiceIndex("api");

        var clock = Stopwatch.StartNew();
        using var response = await _http.GetAsync(new Uri(_server.Address, $"/v1/health/service/api?index={index}&wait=400ms"));

        Assert.True(clock.Elapsed >= TimeSpan.FromMilliseconds(390), $"held {clock.Elapsed}");
        Assert.Equal(index.ToString(System.Globalization.CultureInfo.InvariantCulture), response.Headers.GetValues("X-Consul-Index").Single());
    }

    [Fact]
    public async Task BlockingQuery_MaxWait_CapsTheWaitAsked()
    {
        _server.AddInstance("api", 1);
        _server.MaxWait = TimeSpan.FromMilliseconds(200);

        using var response = await _http.GetAsync(new Uri(_server.Address, $"/v1/health/service/api?index={_server.State.ServiceIndex("api")}&wait=10m"));

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
    }

    [Fact]
    public async Task ResetIndex_LowerIndexReturnedAfterTheWait()
    {
        _server.AddInstance("api", 1);
        _server.AddInstance("api", 2);
        var before = _server.State.ServiceIndex("api");
        _server.MaxWait = TimeSpan.FromMilliseconds(100);

        _server.State.ResetIndex(1);
        using var response = await _http.GetAsync(new Uri(_server.Address, $"/v1/health/service/api?index={before}"));

        Assert.True(ulong.Parse(response.Headers.GetValues("X-Consul-Index").Single(), System.Globalization.CultureInfo.InvariantCulture) < before);
    }

    [Fact]
    public async Task Stop_HeldQueryCutAndPortRefuses_RestartEmptyForgetsAndKeepStateRemembers()
    {
        _server.AddInstance("api", 1, id: "api-1");
        var held = _http.GetAsync(new Uri(_server.Address, $"/v1/health/service/api?index={_server.State.ServiceIndex("api")}&wait=5m"));
        await _server.WaitForHeldQueriesAsync(1, Deadline);

        await _server.StopAsync();
        await Assert.ThrowsAnyAsync<HttpRequestException>(() => held);
        await Assert.ThrowsAnyAsync<HttpRequestException>(() => _http.GetAsync(new Uri(_server.Address, "/v1/agent/services")));

        await _server.RestartAsync(keepState: true);
        Assert.NotNull(_server.State.Service("api-1"));
        Assert.Contains("api-1", await _http.GetStringAsync(new Uri(_server.Address, "/v1/agent/services")));

        await _server.RestartAsync(keepState: false);
        Assert.Equal("{}", await _http.GetStringAsync(new Uri(_server.Address, "/v1/agent/services")));
    }

    [Fact]
    public async Task HealthService_Shape_MatchesDocumentedFields()
    {
        _server.AddInstance("redis", 8000, id: "redis", tags: ["primary"], passingWeight: 10);

        using var document = JsonDocument.Parse(await _http.GetStringAsync(new Uri(_server.Address, "/v1/health/service/redis")));
        using var documented = JsonDocument.Parse(await File.ReadAllTextAsync(TestFixtures.Path("consul-api", "health-service.response.json")));

        // Every key the documented sample has at the top levels, the test server writes too.
        var ours = document.RootElement[0];
        var theirs = documented.RootElement[0];
        foreach (var section in new[] { "Node", "Service" })
        {
            foreach (var property in theirs.GetProperty(section).EnumerateObject())
            {
                Assert.True(ours.GetProperty(section).TryGetProperty(property.Name, out _), $"{section}.{property.Name} missing");
            }
        }

        foreach (var property in theirs.GetProperty("Checks")[0].EnumerateObject())
        {
            Assert.True(ours.GetProperty("Checks")[0].TryGetProperty(property.Name, out _), $"Checks[0].{property.Name} missing");
        }
    }

    private async Task<HttpResponseMessage> PutFixtureAsync(string path, string fixture) =>
        await _http.PutAsync(new Uri(_server.Address, path), new StringContent(await File.ReadAllTextAsync(TestFixtures.Path("consul-api", fixture))));
}
