// Real UDP peers for the UDP proxy tests: named echo backends and clients bound to chosen loopback addresses.
using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using System.Text;
using Mesh.Discovery;
using Mesh.Sidecar.Endpoints;

namespace Mesh.Sidecar.Tests.L4.Udp;

/// <summary>A UDP server on 127.0.0.1 that answers every datagram with "&lt;name&gt;:&lt;payload&gt;".</summary>
internal sealed class UdpEchoBackend : IAsyncDisposable
{
    private readonly Socket _socket = new(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
    private readonly CancellationTokenSource _stopping = new();
    private readonly Task _loop;

    public UdpEchoBackend(string name)
    {
        Name = name;
        _socket.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        EndPoint = (IPEndPoint)_socket.LocalEndPoint!;
        State = new EndpointState(new ServiceEndpoint("127.0.0.1", EndPoint.Port), "udp");
        _loop = Task.Run(RunAsync);
    }

    public string Name { get; }

    public IPEndPoint EndPoint { get; }

    public EndpointState State { get; }

    /// <summary>Source addresses (the proxy's upstream sockets) that datagrams came from, in arrival order.</summary>
    public ConcurrentQueue<IPEndPoint> Sources { get; } = new();

    public async ValueTask DisposeAsync()
    {
        await _stopping.CancelAsync();
        _socket.Dispose();
        await _loop;
        _stopping.Dispose();
    }

    private async Task RunAsync()
    {
        var buffer = new byte[65536];
        var prefix = Encoding.UTF8.GetBytes(Name + ":");
        var reply = new byte[prefix.Length + buffer.Length];
        prefix.CopyTo(reply, 0);
        while (!_stopping.IsCancellationRequested)
        {
            SocketReceiveFromResult received;
            try
            {
                received = await _socket.ReceiveFromAsync(buffer, SocketFlags.None, new IPEndPoint(IPAddress.Any, 0), _stopping.Token);
            }
            catch (Exception) when (_stopping.IsCancellationRequested)
            {
                return;
            }
            catch (SocketException)
            {
                continue;
            }

            var source = (IPEndPoint)received.RemoteEndPoint;
            Sources.Enqueue(source);
            buffer.AsSpan(0, received.ReceivedBytes).CopyTo(reply.AsSpan(prefix.Length));
            try
            {
                await _socket.SendToAsync(reply.AsMemory(0, prefix.Length + received.ReceivedBytes), SocketFlags.None, source, _stopping.Token);
            }
            catch (Exception) when (_stopping.IsCancellationRequested)
            {
                return;
            }
        }
    }
}

/// <summary>A game client: one UDP socket bound to a chosen loopback address, so the proxy sees a distinct source address.</summary>
internal sealed class UdpTestClient : IDisposable
{
    /// <summary>Generous: replies on loopback take microseconds, a slow CI machine may take seconds.</summary>
    public static readonly TimeSpan ReplyDeadline = TimeSpan.FromSeconds(10);

    private readonly Socket _socket = new(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
    private readonly byte[] _buffer = new byte[65536];
    private int _strays;

    public UdpTestClient(IPAddress address)
    {
        _socket.Bind(new IPEndPoint(address, 0));
        LocalEndPoint = (IPEndPoint)_socket.LocalEndPoint!;
    }

    public IPEndPoint LocalEndPoint { get; }

    /// <summary>Client N of a test: 127.0.0.N, for N in 2..254 (Linux routes all of 127/8 to lo).</summary>
    public static UdpTestClient OnLoopback(int n) => new(IPAddress.Parse($"127.0.0.{n}"));

    public async Task SendAsync(IPEndPoint target, string payload) =>
        await _socket.SendToAsync(Encoding.UTF8.GetBytes(payload), SocketFlags.None, target);

    /// <summary>Sends and waits for its reply; throws <see cref="TimeoutException"/> when none comes in time.</summary>
    /// <remarks>
    /// Only the reply to this datagram counts: one from <paramref name="target"/> that echoes
    /// <paramref name="payload"/>. Other helpers run these tests at the same time with clients on the
    /// same 127.0.0.N addresses, so a socket here can get an ephemeral port that was, a moment ago,
    /// another run's client, and a reply that run's proxy sent late to it. Taking the first datagram
    /// as the reply made such a stray a wrong backend or payload.
    /// </remarks>
    public async Task<UdpReply> SendAndReceiveAsync(IPEndPoint target, string payload)
    {
        await SendAsync(target, payload);
        using var deadline = new CancellationTokenSource(ReplyDeadline);
        UdpReply? stray = null;
        while (true)
        {
            SocketReceiveFromResult received;
            try
            {
                received = await _socket.ReceiveFromAsync(_buffer, SocketFlags.None, new IPEndPoint(IPAddress.Any, 0), deadline.Token);
            }
            catch (OperationCanceledException) when (deadline.IsCancellationRequested)
            {
                throw new TimeoutException($"{LocalEndPoint}: no reply from {target} echoing '{payload}' within {ReplyDeadline.TotalSeconds} s"
                    + (stray is null ? "" : $"; last other datagram: '{stray.Text}' from {stray.From}"));
            }

            var reply = new UdpReply(Encoding.UTF8.GetString(_buffer, 0, received.ReceivedBytes), (IPEndPoint)received.RemoteEndPoint);
            if (reply.From.Equals(target) && reply.Text.Contains(':', StringComparison.Ordinal) && reply.Payload == payload)
            {
                return reply;
            }

            stray = reply;
            Interlocked.Increment(ref _strays);
        }
    }

    /// <summary>Datagrams this client received that were not the reply it waited for.</summary>
    public int Strays => Volatile.Read(ref _strays);

    public void Dispose() => _socket.Dispose();
}

/// <summary>One reply as a client saw it.</summary>
internal sealed record UdpReply(string Text, IPEndPoint From)
{
    /// <summary>The backend name in "&lt;name&gt;:&lt;payload&gt;".</summary>
    public string Backend => Text[..Text.IndexOf(':', StringComparison.Ordinal)];

    public string Payload => Text[(Text.IndexOf(':', StringComparison.Ordinal) + 1)..];
}
