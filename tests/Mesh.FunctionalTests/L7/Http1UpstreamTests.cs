// Requests to an HTTP/1.1 service through the real sidecar with Mesh's own client on and off, and the kinds that fall back to YARP.
using System.Net;
using System.Text;
using System.Text.Json;
using Mesh.FunctionalTests.Infrastructure;

namespace Mesh.FunctionalTests.L7;

public sealed class Http1UpstreamTests
{
    [Theory]
    [InlineData(true, false)]
    [InlineData(true, true)]
    [InlineData(false, false)]
    [InlineData(false, true)]
    public async Task Proxy_EitherClient_ForwardsMethodPathHeadersAndBody(bool meshClient, bool http2)
    {
        await using var backend = await BodyEchoAsync();
        await using var sidecar = await StartAsync(backend, meshClient);
        using var client = http2 ? Clients.Http2() : Clients.Http1();

        for (var i = 0; i < 3; i++)
        {
            using var request = new HttpRequestMessage(HttpMethod.Post, new Uri(sidecar.Listener(), $"/items/{i}?q=a%20b"))
            {
                Content = new StringContent($"payload {i}", Encoding.UTF8, "text/plain"),
            };
            request.Headers.TryAddWithoutValidation("x-custom", "v" + i);
            using var response = await client.SendAsync(request);

            Assert.Equal(HttpStatusCode.Created, response.StatusCode);
            Assert.Equal($"POST /items/{i}?q=a%20b v{i} text/plain; charset=utf-8 payload {i}", await response.Content.ReadAsStringAsync());
            Assert.Equal("echo", response.Headers.GetValues("x-backend").Single());
        }

        // The admin API tells which client carried them; Mesh's parks its one keep-alive connection per endpoint.
        using var admin = Clients.Http1();
        using var clusters = JsonDocument.Parse(await admin.GetStringAsync(new Uri(sidecar.Admin, "/admin/clusters")));
        var svc = clusters.RootElement.GetProperty("clusters").EnumerateArray().Single(c => c.GetProperty("name").GetString() == "svc");
        Assert.Equal(meshClient ? "mesh-http1" : "yarp", svc.GetProperty("client").GetString());
        Assert.Equal(meshClient ? 1 : 0, svc.GetProperty("endpoints")[0].GetProperty("idleConnections").GetInt32());
    }

    [Fact]
    public async Task Proxy_ChunkedRequestBody_IsForwardedWhole()
    {
        await using var backend = await BodyEchoAsync();
        await using var sidecar = await StartAsync(backend, meshClient: true);
        using var client = Clients.Http1();
        var body = new string('z', 100_000);
        using var content = new StreamContent(new UnknownLengthStream(Encoding.ASCII.GetBytes(body)));

        using var response = await client.PostAsync(new Uri(sidecar.Listener(), "/upload"), content);

        Assert.Equal(HttpStatusCode.Created, response.StatusCode);
        Assert.EndsWith(" " + body, await response.Content.ReadAsStringAsync(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Proxy_LargeResponse_StreamsWhole()
    {
        var payload = new string('L', 3_000_000);
        await using var backend = await TestBackend.StartAsync("large", configure: app => app.Run(context => context.Response.WriteAsync(payload)));
        await using var sidecar = await StartAsync(backend, meshClient: true);
        using var client = Clients.Http1();

        var text = await client.GetStringAsync(new Uri(sidecar.Listener(), "/"));

        Assert.Equal(payload.Length, text.Length);
    }

    private static Task<TestBackend> BodyEchoAsync() => TestBackend.StartAsync("echo", configure: app => app.Run(async context =>
    {
        using var reader = new StreamReader(context.Request.Body);
        var body = await reader.ReadToEndAsync();
        context.Response.StatusCode = StatusCodes.Status201Created;
        await context.Response.WriteAsync($"{context.Request.Method} {context.Request.Path}{context.Request.QueryString} {context.Request.Headers["x-custom"]} {context.Request.ContentType} {body}");
    }));

    private static Task<TestSidecar> StartAsync(TestBackend backend, bool meshClient) => TestSidecar.StartAsync(new
    {
        service = new { name = "client", address = "127.0.0.1", port = 0 },
        admin = new { address = "127.0.0.1", port = 0 },
        listeners = new object[] { new { name = "outbound", address = "127.0.0.1", port = 0, direction = "outbound", protocol = "http" } },
        routes = new[] { TestConfig.Route("all", "svc") },
        services = new Dictionary<string, object> { ["svc"] = TestConfig.Service([backend]) },
        logging = new { level = "Warning" },
        performance = new { meshHttp1Client = meshClient },
    });

    /// <summary>A body whose length HttpClient cannot know, so it is sent chunked.</summary>
    private sealed class UnknownLengthStream(byte[] data) : MemoryStream(data)
    {
        public override bool CanSeek => false;
    }
}
