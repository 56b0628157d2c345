// One upstream endpoint at runtime: its address, weight and live in-flight count.
using Mesh.Discovery;
using Mesh.Sidecar.Upstream.Http1;

namespace Mesh.Sidecar.Endpoints;

/// <summary>
/// The runtime view of a service endpoint. Kept across snapshot swaps (same service, address, port
/// and weight) so in-flight counts stay true while routing state changes.
/// </summary>
internal sealed partial class EndpointState
{
    private int _inFlight;
    private long _requests;
    private long _failures;

    public EndpointState(ServiceEndpoint endpoint, string scheme, Http1PoolSet? pools = null)
    {
        Endpoint = endpoint;
        Weight = Math.Max(1, endpoint.Weight);
        Authority = endpoint.Authority;
        DestinationPrefix = scheme + "://" + Authority;
        Http1Pool = pools?.Create(endpoint.Address, endpoint.Port) ?? new Http1ConnectionPool(endpoint.Address, endpoint.Port);
    }

    public ServiceEndpoint Endpoint { get; }

    public int Weight { get; }

    /// <summary><c>address:port</c>; also the identity hashed onto the consistent-hash ring.</summary>
    public string Authority { get; }

    /// <summary>What the forwarder prefixes to the request path, for example <c>http://127.0.0.1:8081</c>.</summary>
    public string DestinationPrefix { get; }

    /// <summary>Idle keep-alive connections of Mesh's HTTP/1.1 client; kept with the endpoint across snapshots.</summary>
    public Http1ConnectionPool Http1Pool { get; }

    public int InFlight => Volatile.Read(ref _inFlight);

    public long Requests => Interlocked.Read(ref _requests);

    public long Failures => Interlocked.Read(ref _failures);

    public void Enter()
    {
        Interlocked.Increment(ref _inFlight);
        Interlocked.Increment(ref _requests);
    }

    public void Leave(bool failed)
    {
        Interlocked.Decrement(ref _inFlight);
        if (failed)
        {
            Interlocked.Increment(ref _failures);
        }
    }
}
