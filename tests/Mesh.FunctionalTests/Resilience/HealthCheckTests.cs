// Active health checks mark endpoints down and up on a fake clock, over HTTP and TCP, and traffic follows.
using System.Net;
using Mesh.FunctionalTests.Infrastructure;
using Mesh.Sidecar.Resilience;
using Microsoft.Extensions.Time.Testing;
using static Mesh.FunctionalTests.Resilience.ResilienceHarness;

namespace Mesh.FunctionalTests.Resilience;

public sealed class HealthCheckTests
{
    private static HealthChecker Checker(TestSidecar sidecar, string service) =>
        sidecar.State.Current.Clusters[service].Resilience!.HealthChecker!;

    /// <summary>Advances the clock by one interval and waits for the round it starts to finish.</summary>
    private static async Task RoundAsync(TestSidecar sidecar, FakeTimeProvider clock, int intervalMs)
    {
        var checker = Checker(sidecar, "api");
        var next = checker.Rounds + 1;
        clock.Advance(TimeSpan.FromMilliseconds(intervalMs));
        await checker.WhenRoundsAsync(next).WaitAsync(TestSidecar.Deadline);
    }

    [Fact]
    public async Task HttpCheck_MarksEndpointDownThenUp_AndTrafficAvoidsItMeanwhile()
    {
        var healthy = 1;
        await using var sick = await BackendAsync("sick", context =>
        {
            if (context.Request.Path == "/healthz")
            {
                context.Response.StatusCode = Volatile.Read(ref healthy) == 1 ? 200 : 500;
                return Task.CompletedTask;
            }

            return context.Response.WriteAsync("sick");
        });
        await using var good = await OkAsync("good");
        var clock = Clock();
        await using var sidecar = await StartAsync(Config(
            [TestConfig.Route("all", "api")],
            new Dictionary<string, object>
            {
                ["api"] = new
                {
                    endpoints = new[] { sick.Endpoint(), good.Endpoint() },
                    healthCheck = new { type = "http", path = "/healthz", intervalMs = 5000, timeoutMs = 1000, healthyThreshold = 2, unhealthyThreshold = 3 },
                },
            }),
            clock);
        await Checker(sidecar, "api").WhenRoundsAsync(1).WaitAsync(TestSidecar.Deadline);
        Assert.Equal("passing", (string?)(await EndpointAsync(sidecar, "api", sick.Port))["healthCheck"]);

        Volatile.Write(ref healthy, 0);
        await RoundAsync(sidecar, clock, 5000);
        await RoundAsync(sidecar, clock, 5000);
        Assert.Equal("healthy", (string?)(await EndpointAsync(sidecar, "api", sick.Port))["health"]);
        await RoundAsync(sidecar, clock, 5000);

        // Three failed checks: out of rotation.
        var down = await EndpointAsync(sidecar, "api", sick.Port);
        Assert.Equal("unhealthy", (string?)down["health"]);
        Assert.Equal("failing", (string?)down["healthCheck"]);
        var during = await SendManyAsync(sidecar.Listener(), 20, parallel: 1);
        Assert.All(during, r => Assert.Equal("good", r.Backend));

        Volatile.Write(ref healthy, 1);
        await RoundAsync(sidecar, clock, 5000);
        Assert.Equal("unhealthy", (string?)(await EndpointAsync(sidecar, "api", sick.Port))["health"]);
        await RoundAsync(sidecar, clock, 5000);

        // Two passed checks: back.
        Assert.Equal("healthy", (string?)(await EndpointAsync(sidecar, "api", sick.Port))["health"]);
        var after = await SendManyAsync(sidecar.Listener(), 20, parallel: 1);
        Assert.Equal(10, after.Count(r => r.Backend == "sick"));
        var metrics = await MetricsAsync(sidecar);
        var endpoint = $"127.0.0.1:{sick.Port}";
        Assert.Equal(1, Metric(metrics, $"mesh_health_transitions_total{{service=\"api\",endpoint=\"{endpoint}\",state=\"unhealthy\"}}"));
        Assert.Equal(1, Metric(metrics, $"mesh_health_transitions_total{{service=\"api\",endpoint=\"{endpoint}\",state=\"healthy\"}}"));
        Assert.Equal(3, Metric(metrics, $"mesh_health_checks_total{{service=\"api\",endpoint=\"{endpoint}\",result=\"failed\"}}"));
    }

    [Fact]
    public async Task TcpCheck_StoppedEndpoint_GoesDown_AndTimesOutOnTheClock()
    {
        var stopped = await OkAsync("stopped");
        var port = stopped.Port;
        await using var good = await OkAsync("good");
        var clock = Clock();
        await using var sidecar = await StartAsync(Config(
            [TestConfig.Route("all", "api")],
            new Dictionary<string, object>
            {
                ["api"] = new { endpoints = new[] { stopped.Endpoint(), good.Endpoint() }, healthCheck = new { type = "tcp", intervalMs = 1000, unhealthyThreshold = 1 } },
            }),
            clock);
        await Checker(sidecar, "api").WhenRoundsAsync(1).WaitAsync(TestSidecar.Deadline);
        await stopped.DisposeAsync();

        await RoundAsync(sidecar, clock, 1000);

        Assert.Equal("unhealthy", (string?)(await EndpointAsync(sidecar, "api", port))["health"]);
        var results = await SendManyAsync(sidecar.Listener(), 10, parallel: 1);
        Assert.All(results, r => Assert.Equal(HttpStatusCode.OK, r.Status));
    }

    [Fact]
    public async Task HealthCheck_RemovedFromConfig_BringsEndpointsBack()
    {
        await using var sick = await BackendAsync("sick", context =>
        {
            context.Response.StatusCode = context.Request.Path == "/healthz" ? 503 : 200;
            return Task.CompletedTask;
        });
        var clock = Clock();
        object Configured(bool check) => Config(
            [TestConfig.Route("all", "api")],
            new Dictionary<string, object>
            {
                ["api"] = check
                    ? new { endpoints = new[] { sick.Endpoint() }, healthCheck = new { unhealthyThreshold = 1 } }
                    : new { endpoints = new[] { sick.Endpoint() } },
            });
        await using var sidecar = await StartAsync(Configured(true), clock);
        await Checker(sidecar, "api").WhenRoundsAsync(1).WaitAsync(TestSidecar.Deadline);
        using var client = Clients.Http1();
        using (var none = await client.GetAsync(new Uri(sidecar.Listener(), "/")))
        {
            Assert.Equal(HttpStatusCode.ServiceUnavailable, none.StatusCode);
        }

        await sidecar.ReloadAsync(Configured(false));

        using var response = await client.GetAsync(new Uri(sidecar.Listener(), "/"));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
    }
}
