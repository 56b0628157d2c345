// Stage 8 of the data path: the HTTP clients that carry forwarded requests to endpoints.
using System.Net;
using Mesh.Sidecar.Configuration;
using Mesh.Sidecar.Upstream.Http1;
using Yarp.ReverseProxy.Forwarder;

namespace Mesh.Sidecar.Upstream;

/// <summary>
/// Hands out one shared <see cref="HttpMessageInvoker"/> per distinct upstream setting. The handler
/// does only what a proxy needs: no proxy, redirects, decompression, cookies or activity headers.
/// mTLS to peer sidecars will add client certificates here.
/// </summary>
internal sealed class UpstreamClients : IDisposable
{
    private readonly Dictionary<int, HttpMessageInvoker> _byConnectTimeout = [];
    private readonly Lock _lock = new();

    /// <summary>The connection pools of Mesh's own HTTP/1.1 client, one per endpoint.</summary>
    public Http1PoolSet Http1Pools { get; } = new();

    public HttpMessageInvoker For(int connectTimeoutMs)
    {
        lock (_lock)
        {
            if (!_byConnectTimeout.TryGetValue(connectTimeoutMs, out var invoker))
            {
                invoker = new HttpMessageInvoker(new SocketsHttpHandler
                {
                    UseProxy = false,
                    AllowAutoRedirect = false,
                    AutomaticDecompression = DecompressionMethods.None,
                    UseCookies = false,
                    ActivityHeadersPropagator = null,
                    EnableMultipleHttp2Connections = true,
                    ConnectTimeout = TimeSpan.FromMilliseconds(connectTimeoutMs),
                    PooledConnectionIdleTimeout = TimeSpan.FromSeconds(60),
                });
                _byConnectTimeout[connectTimeoutMs] = invoker;
            }

            return invoker;
        }
    }

    /// <summary>Per-service request settings: HTTP version policy and activity timeout.</summary>
    public static ForwarderRequestConfig RequestConfig(string protocol, int requestTimeoutMs) => protocol == UpstreamProtocols.Http2
        // h2c backends need an exact version, or the client falls back to HTTP/1.1.
        ? new ForwarderRequestConfig { Version = HttpVersion.Version20, VersionPolicy = HttpVersionPolicy.RequestVersionExact, ActivityTimeout = TimeSpan.FromMilliseconds(requestTimeoutMs) }
        : new ForwarderRequestConfig { Version = HttpVersion.Version11, VersionPolicy = HttpVersionPolicy.RequestVersionOrLower, ActivityTimeout = TimeSpan.FromMilliseconds(requestTimeoutMs) };

    public void Dispose()
    {
        lock (_lock)
        {
            foreach (var invoker in _byConnectTimeout.Values)
            {
                invoker.Dispose();
            }

            _byConnectTimeout.Clear();
        }

        Http1Pools.Dispose();
    }
}
