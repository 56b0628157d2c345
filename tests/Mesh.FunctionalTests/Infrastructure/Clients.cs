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

    /// <summary>HTTP/1.1 whose connections come from <paramref name="source"/> (any 127.x.y.z; Linux routes all of 127.0.0.0/8 to loopback).</summary>
    public static HttpClient Http1From(IPAddress source) => new(new SocketsHttpHandler
    {
        UseProxy = false,
        AllowAutoRedirect = false,
        ConnectCallback = async (context, cancellationToken) =>
        {
            var socket = new System.Net.Sockets.Socket(System.Net.Sockets.AddressFamily.InterNetwork, System.Net.Sockets.SocketType.Stream, System.Net.Sockets.ProtocolType.Tcp) { NoDelay = true };
            try
            {
                socket.Bind(new IPEndPoint(source, 0));
                await socket.ConnectAsync(context.DnsEndPoint, cancellationToken);
                return new System.Net.Sockets.NetworkStream(socket, ownsSocket: true);
            }
            catch
            {
                socket.Dispose();
                throw;
            }
        },
    })
    { Timeout = TestSidecar.Deadline };

    /// <summary>A GET; HTTP/2 with prior knowledge when <paramref name="http2"/> (a message's own version wins over the client's default).</summary>
    public static HttpRequestMessage Get(Uri baseUri, string pathAndQuery, string? host = null, bool http2 = false)
    {
        var request = new HttpRequestMessage(HttpMethod.Get, new Uri(baseUri, pathAndQuery));
        if (http2)
        {
            request.Version = HttpVersion.Version20;
            request.VersionPolicy = HttpVersionPolicy.RequestVersionExact;
        }

        if (host is not null)
        {
            request.Headers.Host = host;
        }

        return request;
    }
}
