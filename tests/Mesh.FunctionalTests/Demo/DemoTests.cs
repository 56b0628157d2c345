// The newcomer's demo: scenario one of the concept note, routed by Host as the README says.
using System.Net;
using Mesh.FunctionalTests.Infrastructure;
using Mesh.Sidecar.Demo;

namespace Mesh.FunctionalTests.Demo;

public sealed class DemoTests
{
    [Fact]
    public async Task Demo_Routes_AnswerAsDescribed()
    {
        await using var demo = await DemoCommand.StartAsync(0, 0, CancellationToken.None, logging => logging.ClearProviders());
        var listener = demo.Sidecar.UriOf("outbound");
        using var client = Clients.Http1();

        async Task<string> InstanceAsync(string host, bool http2 = false)
        {
            using var h2 = Clients.Http2();
            using var response = await (http2 ? h2 : client).SendAsync(Clients.Get(listener, "/users/42", host, http2));
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            var instance = response.Headers.GetValues("x-mesh-demo-instance").Single();
            Assert.Contains(instance, await response.Content.ReadAsStringAsync(), StringComparison.Ordinal);
            return instance;
        }

        var api = new[] { await InstanceAsync("api.example.com"), await InstanceAsync("api.example.com") };
        Assert.Equal(["api-1", "api-2"], api.Order(StringComparer.Ordinal));
        Assert.Equal("admin-1", await InstanceAsync("admin.example.com"));
        Assert.Equal("static-1", await InstanceAsync("static.example.com"));
        Assert.Equal("marketing-1", await InstanceAsync("www.example.com"));
        Assert.Equal("marketing-1", await InstanceAsync("example.com"));
        Assert.StartsWith("api-", await InstanceAsync("api.example.com", http2: true), StringComparison.Ordinal);
        Assert.Equal("ready\n", await client.GetStringAsync(new Uri(demo.Sidecar.AdminUri, "/ready")));
    }
}
