// HTTP clients for tests: no proxy, and HTTP/2 with prior knowledge over one connection.
using System.Net;

namespace Mesh.FunctionalTests.Infrastructure;

public static class Clients
{
    public static HttpClient Http1() => new(new SocketsHttpHandler { UseProxy = false, AllowAutoRedirect = false }) { Timeout = TestSidecar.Deadline };

    /// <summary>One HTTP/2 connection (prior knowledge, h2c) for every request.</summary>
    public static HttpClient Http2() => new(new SocketsHttpHandler { UseProxy = false, EnableMultipleHttp2Connections = false })
    {
        DefaultRequestVersion = HttpVersion.Version20,
        DefaultVersionPolicy = HttpVersionPolicy.RequestVersionExact,
        Timeout = TestSidecar.Deadline,
    };

    public static HttpRequestMessage Get(Uri baseUri, string pathAndQuery, string? host = null)
    {
        var request = new HttpRequestMessage(HttpMethod.Get, new Uri(baseUri, pathAndQuery));
        if (host is not null)
        {
            request.Headers.Host = host;
        }

        return request;
    }
}
