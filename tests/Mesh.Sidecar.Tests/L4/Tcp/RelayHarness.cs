using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using Mesh.Sidecar.L4.Tcp;

namespace Mesh.Sidecar.Tests.L4.Tcp;

/// <summary>
/// Real sockets on 127.0.0.1 (ephemeral ports): a connecting "client", a listening "backend", and
/// <see cref="TcpRelay"/> running between the accepted client socket and a connected upstream socket.
/// </summary>
internal sealed class RelayHarness : IAsyncDisposable
{
    /// <summary>Generous upper bound for anything a test waits on; nothing should come close.</summary>
    public static readonly TimeSpan Deadline = TimeSpan.FromSeconds(20);

    private RelayHarness(Socket client, Socket backend, Task<RelayResult> relay)
    {
        Client = client;
        Backend = backend;
        Relay = relay;
    }

    /// <summary>The client application's end of the client connection.</summary>
    public Socket Client { get; }

    /// <summary>The backend's accepted end of the upstream connection.</summary>
    public Socket Backend { get; }

    /// <summary>The running relay.</summary>
    public Task<RelayResult> Relay { get; }

    /// <summary>The relay's result, failing the test if it has not ended within <see cref="Deadline"/>.</summary>
    public Task<RelayResult> Result => Relay.WaitAsync(Deadline);

    public static async Task<RelayHarness> StartAsync(RelayOptions? options = null, ReadOnlyMemory<byte> clientPrefix = default, CancellationToken cancellationToken = default)
    {
        using var front = Listen();
        using var back = Listen();

        var client = NewSocket();
        var acceptClient = front.AcceptAsync();
        await client.ConnectAsync(front.LocalEndPoint!).WaitAsync(Deadline);
        var relayClient = await acceptClient.WaitAsync(Deadline);

        var upstream = NewSocket();
        var acceptBackend = back.AcceptAsync();
        await upstream.ConnectAsync(back.LocalEndPoint!).WaitAsync(Deadline);
        var backend = await acceptBackend.WaitAsync(Deadline);

        var relay = TcpRelay.RunAsync(relayClient, upstream, clientPrefix, options ?? new RelayOptions(), cancellationToken);
        return new RelayHarness(client, backend, relay);
    }

    public async ValueTask DisposeAsync()
    {
        Client.Dispose();
        Backend.Dispose();
        try
        {
            await Relay.WaitAsync(Deadline);
        }
        catch (TimeoutException)
        {
            // The test itself reports what went wrong.
        }
    }

    public static async Task SendAllAsync(Socket socket, ReadOnlyMemory<byte> data, int chunk = 64 * 1024)
    {
        while (!data.IsEmpty)
        {
            var slice = data[..Math.Min(chunk, data.Length)];
            var sent = await socket.SendAsync(slice, SocketFlags.None);
            data = data[sent..];
        }
    }

    /// <summary>Reads until EOF; returns the byte count and the SHA-256 of everything read.</summary>
    public static async Task<(long Count, byte[] Sha256)> ReadToEndAsync(Socket socket, int bufferSize = 64 * 1024)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var buffer = new byte[bufferSize];
        long count = 0;
        while (true)
        {
            var read = await socket.ReceiveAsync(buffer.AsMemory(), SocketFlags.None);
            if (read == 0)
            {
                return (count, hash.GetHashAndReset());
            }

            hash.AppendData(buffer, 0, read);
            count += read;
        }
    }

    /// <summary>Reads exactly <paramref name="count"/> bytes (fails on an early EOF).</summary>
    public static async Task<byte[]> ReadExactlyAsync(Socket socket, int count)
    {
        var buffer = new byte[count];
        var filled = 0;
        while (filled < count)
        {
            var read = await socket.ReceiveAsync(buffer.AsMemory(filled), SocketFlags.None).AsTask().WaitAsync(Deadline);
            Assert.NotEqual(0, read);
            filled += read;
        }

        return buffer;
    }

    public static byte[] RandomBytes(int length)
    {
        var bytes = new byte[length];
        Random.Shared.NextBytes(bytes);
        return bytes;
    }

    private static Socket NewSocket() => new(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };

    private static Socket Listen()
    {
        var listener = NewSocket();
        listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        listener.Listen(8);
        return listener;
    }
}
