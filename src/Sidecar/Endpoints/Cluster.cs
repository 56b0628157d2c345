// A service at runtime: its endpoints, its balancer and how to talk to it upstream.
using Mesh.Sidecar.LoadBalancing;
using Mesh.Sidecar.Security.Tls;
using Mesh.Sidecar.Upstream;
using Mesh.Sidecar.Upstream.Http1;
using Yarp.ReverseProxy.Forwarder;

namespace Mesh.Sidecar.Endpoints;

/// <summary>An immutable runtime service, rebuilt whole when its config or endpoints change.</summary>
internal sealed partial class Cluster(
    string name,
    string policy,
    EndpointState[] endpoints,
    LoadBalancer balancer,
    HashKeySelector? hashKey,
    HttpMessageInvoker invoker,
    ForwarderRequestConfig requestConfig,
    Http1Settings? http1 = null,
    UpstreamTls? tls = null)
{
    public string Name { get; } = name;

    public string Policy { get; } = policy;

    public EndpointState[] Endpoints { get; } = endpoints;

    private LoadBalancer _available = balancer;

    /// <summary>The balancer over the endpoints available now (not ejected, failing a health check or behind an open breaker).</summary>
    public LoadBalancer Balancer => Volatile.Read(ref _available);

    /// <summary>Null unless the policy hashes a request attribute.</summary>
    public HashKeySelector? HashKey { get; } = hashKey;

    public HttpMessageInvoker Invoker { get; } = invoker;

    public ForwarderRequestConfig RequestConfig { get; } = requestConfig;

    /// <summary>Set when requests may go through Mesh's own HTTP/1.1 client instead of YARP's forwarder.</summary>
    public Http1Settings? Http1 { get; } = http1;

    /// <summary>Set when endpoints are reached over TLS (<c>mesh</c> or <c>tls</c> mode); L4 listeners open TLS with it.</summary>
    public UpstreamTls? Tls { get; } = tls;

    /// <summary>
    /// One send of the request to <paramref name="endpoint"/>: Mesh's HTTP/1.1 client when this service allows
    /// it and the request suits it, else YARP's forwarder over the shared invoker. Not async: the caller awaits
    /// the client's own task, so a send costs no state machine of its own.
    /// </summary>
    public ValueTask<ForwarderError> SendAsync(HttpContext context, EndpointState endpoint, RouteTransformer transformer, Http1Forwarder http1Forwarder, IHttpForwarder forwarder) =>
        Http1 is { } http1 && Http1Forwarder.CanForward(context)
            ? http1Forwarder.SendAsync(context, endpoint, http1, transformer)
            : forwarder.SendAsync(context, endpoint.DestinationPrefix, Invoker, RequestConfig, transformer);
}
