// The admin listener: health, readiness, effective config with secrets redacted, clusters and Prometheus metrics.
using System.Net;
using System.Text.Json;
using Mesh.FunctionalTests.Infrastructure;

namespace Mesh.FunctionalTests.Admin;

public sealed class AdminEndpointTests
{
    [Fact]
    public async Task Admin_AfterStart_ServesHealthReadyConfigClustersAndMetrics()
    {
        await using var backend = await TestBackend.StartAsync("b");
        await using var sidecar = await TestSidecar.StartAsync(TestConfig.Outbound(
            [TestConfig.Route("all", "svc")],
            new Dictionary<string, object>
            {
                ["svc"] = new
                {
                    endpoints = new[] { new { address = "127.0.0.1", port = backend.Port, weight = 2, metadata = new Dictionary<string, string> { ["apiToken"] = "s3cret", ["zone"] = "a" } } },
                },
            }));
        using var client = Clients.Http1();
        using (var proxied = await client.SendAsync(Clients.Get(sidecar.Listener(), "/")))
        {
            Assert.Equal(HttpStatusCode.OK, proxied.StatusCode);
        }

        Assert.Equal("ok\n", await client.GetStringAsync(new Uri(sidecar.Admin, "/healthz")));
        Assert.Equal("ready\n", await client.GetStringAsync(new Uri(sidecar.Admin, "/ready")));

        var config = await client.GetStringAsync(new Uri(sidecar.Admin, "/admin/config"));
        Assert.DoesNotContain("s3cret", config, StringComparison.Ordinal);
        Assert.Contains("<redacted>", config, StringComparison.Ordinal);
        Assert.Contains("\"zone\": \"a\"", config, StringComparison.Ordinal);

        using var clusters = JsonDocument.Parse(await client.GetStringAsync(new Uri(sidecar.Admin, "/admin/clusters")));
        var svc = clusters.RootElement.GetProperty("clusters").EnumerateArray().Single(c => c.GetProperty("name").GetString() == "svc");
        var endpoint = svc.GetProperty("endpoints").EnumerateArray().Single();
        Assert.Equal(backend.Port, endpoint.GetProperty("port").GetInt32());
        Assert.Equal("healthy", endpoint.GetProperty("health").GetString());
        Assert.Equal(0, endpoint.GetProperty("inFlight").GetInt32());
        Assert.Equal(1, endpoint.GetProperty("requests").GetInt64());
        Assert.Equal(2, endpoint.GetProperty("weight").GetInt32());
        var listener = clusters.RootElement.GetProperty("listeners").EnumerateArray().Single();
        Assert.Equal(sidecar.Sidecar.EndpointOf("outbound").ToString(), listener.GetProperty("address").GetString());

        var metrics = await client.GetStringAsync(new Uri(sidecar.Admin, "/metrics"));
        Assert.Contains("# TYPE mesh_http_server_requests_total counter", metrics, StringComparison.Ordinal);
        Assert.Contains("mesh_http_server_requests_total{route=\"all\",service=\"svc\",status_class=\"2xx\"} 1", metrics, StringComparison.Ordinal);
        Assert.Contains("mesh_http_server_request_duration_seconds_count{route=\"all\",service=\"svc\"} 1", metrics, StringComparison.Ordinal);
        Assert.Contains("mesh_connections_active{listener=\"outbound\"}", metrics, StringComparison.Ordinal);

        using var missing = await client.GetAsync(new Uri(sidecar.Admin, "/nope"));
        Assert.Equal(HttpStatusCode.NotFound, missing.StatusCode);
    }

    [Fact]
    public async Task Admin_ProxyListener_DoesNotServeAdminPaths()
    {
        await using var sidecar = await TestSidecar.StartAsync(TestConfig.Outbound(
            [TestConfig.Route("only", "svc", new { hosts = new[] { "x.test" } })],
            new Dictionary<string, object> { ["svc"] = new { endpoints = new[] { new { address = "127.0.0.1", port = 9 } } } }));
        using var client = Clients.Http1();
        using var response = await client.GetAsync(new Uri(sidecar.Listener(), "/metrics"));
        Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
        Assert.Contains("no route matched", await response.Content.ReadAsStringAsync(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Proxy_EndpointDown_Returns502AndCountsFailure()
    {
        // Port 9 (discard) has no listener on loopback here: the connect is refused.
        await using var sidecar = await TestSidecar.StartAsync(TestConfig.Outbound(
            [TestConfig.Route("all", "svc")],
            new Dictionary<string, object> { ["svc"] = new { endpoints = new[] { new { address = "127.0.0.1", port = 9 } } } }));
        using var client = Clients.Http1();
        using var response = await client.SendAsync(Clients.Get(sidecar.Listener(), "/"));
        Assert.Equal(HttpStatusCode.BadGateway, response.StatusCode);
        var metrics = await client.GetStringAsync(new Uri(sidecar.Admin, "/metrics"));
        Assert.Contains("status_class=\"5xx\"} 1", metrics, StringComparison.Ordinal);
    }
}
