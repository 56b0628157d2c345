// Shutdown drains: listeners stop accepting while open L4 connections keep working until they close.
using System.Net;
using System.Net.Sockets;
using System.Text;
using Mesh.FunctionalTests.Infrastructure;

namespace Mesh.FunctionalTests.Hosting;

public sealed class ShutdownTests
{
    [Fact]
    public async Task Dispose_OpenTcpConnection_KeepsRelayingUntilClientCloses()
    {
        using var backend = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        backend.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        backend.Listen(8);
        var echo = EchoOnceAsync(backend);

        var sidecar = await TestSidecar.StartAsync(new
        {
            service = new { name = "client" },
            admin = new { address = "127.0.0.1", port = 0 },
            listeners = new[] { new { name = "tcp", address = "127.0.0.1", port = 0, protocol = "tcp", service = "echo" } },
            services = new Dictionary<string, object> { ["echo"] = new { endpoints = new[] { new { address = "127.0.0.1", port = ((IPEndPoint)backend.LocalEndPoint!).Port } } } },
        });
        var listener = sidecar.Sidecar.EndpointOf("tcp");
        using var client = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await client.ConnectAsync(listener);
        Assert.Equal("a", await RoundTripAsync(client, "a"));

        var disposing = sidecar.DisposeAsync().AsTask();

        // The open connection still relays both ways, and shutdown waits for it.
        Assert.Equal("b", await RoundTripAsync(client, "b"));
        Assert.False(disposing.IsCompleted);
        client.Shutdown(SocketShutdown.Send);
        await disposing.WaitAsync(TestSidecar.Deadline);
        await echo.WaitAsync(TestSidecar.Deadline);

        using var late = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        var refused = await Assert.ThrowsAsync<SocketException>(() => late.ConnectAsync(listener));
        Assert.Equal(SocketError.ConnectionRefused, refused.SocketErrorCode);
    }

    private static async Task<string> RoundTripAsync(Socket client, string text)
    {
        await client.SendAsync(Encoding.ASCII.GetBytes(text), SocketFlags.None);
        var buffer = new byte[16];
        using var deadline = new CancellationTokenSource(TestSidecar.Deadline);
        var read = await client.ReceiveAsync(buffer, SocketFlags.None, deadline.Token);
        return Encoding.ASCII.GetString(buffer, 0, read);
    }

    private static async Task EchoOnceAsync(Socket listener)
    {
        using var connection = await listener.AcceptAsync();
        var buffer = new byte[1024];
        while (true)
        {
            var read = await connection.ReceiveAsync(buffer, SocketFlags.None);
            if (read == 0)
            {
                connection.Shutdown(SocketShutdown.Send);
                return;
            }

            await connection.SendAsync(buffer.AsMemory(0, read), SocketFlags.None);
        }
    }
}
