// The shared HttpMessageInvokers of the YARP path: one per connect timeout, no redirects or cookies, the version policy per protocol, all closed on disposal.
using System.Net;
using Mesh.Sidecar.Configuration;
using Mesh.Sidecar.Tests.Upstream.Http1;
using Mesh.Sidecar.Upstream;

namespace Mesh.Sidecar.Tests.Upstream;

public sealed class UpstreamClientsTests
{
    [Fact]
    public void For_SameConnectTimeout_SharesOneInvoker()
    {
        using var clients = new UpstreamClients();

        var first = clients.For(1000);

        Assert.NotNull(first);
        Assert.Same(first, clients.For(1000));
        Assert.NotSame(first, clients.For(2000));
    }

    [Fact]
    public async Task For_RedirectAndCookie_AreHandedBackNotFollowedOrStored()
    {
        await using var upstream = new ScriptedUpstream(_ => new ScriptedReply("HTTP/1.1 302 Found\r\nLocation: /elsewhere\r\nSet-Cookie: session=1; Path=/\r\nContent-Length: 0\r\n\r\n"));
        using var clients = new UpstreamClients();
        var invoker = clients.For(5000);
        var uri = new Uri($"http://127.0.0.1:{upstream.Port}/start");

        using var first = await invoker.SendAsync(new HttpRequestMessage(HttpMethod.Get, uri), CancellationToken.None);
        using var second = await invoker.SendAsync(new HttpRequestMessage(HttpMethod.Get, uri), CancellationToken.None);

        Assert.Equal(HttpStatusCode.Found, first.StatusCode);
        Assert.Equal(HttpStatusCode.Found, second.StatusCode);
        var firstRequest = await upstream.NextRequestAsync();
        var secondRequest = await upstream.NextRequestAsync();
        Assert.Equal("GET /start HTTP/1.1", firstRequest.RequestLine);
        Assert.Equal("GET /start HTTP/1.1", secondRequest.RequestLine);
        Assert.Empty(secondRequest.Header("Cookie"));
    }

    [Fact]
    public void RequestConfig_Http2_AsksForExactlyHttp2()
    {
        var config = UpstreamClients.RequestConfig(UpstreamProtocols.Http2, 1500);

        Assert.Equal(HttpVersion.Version20, config.Version);
        Assert.Equal(HttpVersionPolicy.RequestVersionExact, config.VersionPolicy);
        Assert.Equal(TimeSpan.FromMilliseconds(1500), config.ActivityTimeout);
    }

    [Fact]
    public void RequestConfig_Http1_AsksForHttp11OrLower()
    {
        var config = UpstreamClients.RequestConfig(UpstreamProtocols.Http1, 2500);

        Assert.Equal(HttpVersion.Version11, config.Version);
        Assert.Equal(HttpVersionPolicy.RequestVersionOrLower, config.VersionPolicy);
        Assert.Equal(TimeSpan.FromMilliseconds(2500), config.ActivityTimeout);
    }

    [Fact]
    public async Task Dispose_ClosesInvokersAndIdleHttp1Connections()
    {
        await using var upstream = new ScriptedUpstream(_ => new ScriptedReply("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"));
        var clients = new UpstreamClients();
        var invoker = clients.For(5000);
        var pool = clients.Http1Pools.Create("127.0.0.1", upstream.Port);
        pool.Return(await pool.ConnectAsync(5000, CancellationToken.None));

        clients.Dispose();

        await Assert.ThrowsAsync<ObjectDisposedException>(() => invoker.SendAsync(new HttpRequestMessage(HttpMethod.Get, $"http://127.0.0.1:{upstream.Port}/"), CancellationToken.None));
        Assert.Equal(0, pool.IdleCount);
        await upstream.NextClosedAsync();
    }
}
