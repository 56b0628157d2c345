// One client (source address and port) of a UDP proxy, and the connected upstream socket that serves it.
using System.Net;
using System.Net.Sockets;
using Mesh.Sidecar.Endpoints;

namespace Mesh.Sidecar.L4.Udp;

/// <summary>
/// A UDP "connection": every datagram from <see cref="Client"/> goes out of <see cref="Upstream"/>,
/// which is connected to <see cref="Endpoint"/>, and every reply on it goes back to the client.
/// </summary>
internal sealed class UdpFlow
{
    private long _lastActivity;
    private int _closed;

    public UdpFlow(SocketAddress clientAddress, IPEndPoint client, EndpointState endpoint, IPEndPoint remote, Socket upstream)
    {
        ClientAddress = clientAddress;
        Client = client;
        Endpoint = endpoint;
        Remote = remote;
        Upstream = upstream;
        _lastActivity = Environment.TickCount64;
    }

    /// <summary>The client's address as the socket layer reports it; the flow table key and the reply target. Never mutated.</summary>
    public SocketAddress ClientAddress { get; }

    public IPEndPoint Client { get; }

    public EndpointState Endpoint { get; }

    /// <summary>The resolved address <see cref="Upstream"/> is connected to.</summary>
    public IPEndPoint Remote { get; }

    public Socket Upstream { get; }

    /// <summary>The upstream receive loop; completes after the flow is closed.</summary>
    public Task Receiving { get; set; } = Task.CompletedTask;

    /// <summary><see cref="Environment.TickCount64"/> of the last datagram in either direction.</summary>
    public long LastActivity => Volatile.Read(ref _lastActivity);

    public bool IsClosed => Volatile.Read(ref _closed) != 0;

    public void Touch() => Volatile.Write(ref _lastActivity, Environment.TickCount64);

    /// <summary>True for exactly one caller: the one that gets to release the flow's resources.</summary>
    public bool TryClose() => Interlocked.Exchange(ref _closed, 1) == 0;
}
