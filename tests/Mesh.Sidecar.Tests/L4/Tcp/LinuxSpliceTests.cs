// splice(2) on real loopback sockets: what the zero-copy relay path relies on.
using System.Net;
using System.Net.Sockets;
using Mesh.Sidecar.L4.Tcp;

namespace Mesh.Sidecar.Tests.L4.Tcp;

public class LinuxSpliceTests
{
    [Fact]
    public void TryCreate_OnLinux_ReturnsAPipe()
    {
        // CI and production run on Linux; if this failed, the relay would silently fall back to copying.
        Assert.True(LinuxSplice.IsSupported);
        using var splice = LinuxSplice.TryCreate();
        Assert.NotNull(splice);
    }

    [Fact]
    public async Task FromSocketAndToSocket_MoveBytes_ReportWouldBlockAndEndOfStream()
    {
        var (a, b) = await PairAsync();
        var (c, d) = await PairAsync();
        using (a)
        using (b)
        using (c)
        using (d)
        using (var splice = LinuxSplice.TryCreate()!)
        {
            b.Blocking = false;
            c.Blocking = false;

            // Nothing sent yet: would block, not end of stream.
            Assert.Equal(-1, splice.FromSocket(b, 4096));

            var payload = new byte[3000];
            Random.Shared.NextBytes(payload);
            await a.SendAsync(payload, SocketFlags.None);
            await b.ReceiveAsync(Memory<byte>.Empty, SocketFlags.None).AsTask().WaitAsync(TimeSpan.FromSeconds(20));

            var moved = 0;
            while (moved < payload.Length)
            {
                var n = splice.FromSocket(b, 4096);
                if (n < 0)
                {
                    await b.ReceiveAsync(Memory<byte>.Empty, SocketFlags.None).AsTask().WaitAsync(TimeSpan.FromSeconds(20));
                    continue;
                }

                moved += n;
            }

            Assert.Equal(payload.Length, splice.ToSocket(c, moved));
            var received = new byte[payload.Length];
            var got = 0;
            while (got < received.Length)
            {
                got += await d.ReceiveAsync(received.AsMemory(got), SocketFlags.None).AsTask().WaitAsync(TimeSpan.FromSeconds(20));
            }

            Assert.Equal(payload, received);

            a.Shutdown(SocketShutdown.Send);
            await b.ReceiveAsync(Memory<byte>.Empty, SocketFlags.None).AsTask().WaitAsync(TimeSpan.FromSeconds(20));
            Assert.Equal(0, splice.FromSocket(b, 4096));
        }
    }

    [Fact]
    public async Task FromSocket_ClosedSocket_ThrowsObjectDisposed()
    {
        var (a, b) = await PairAsync();
        a.Dispose();
        b.Dispose();
        using var splice = LinuxSplice.TryCreate()!;
        Assert.Throws<ObjectDisposedException>(() => splice.FromSocket(b, 4096));
    }

    private static async Task<(Socket Connected, Socket Accepted)> PairAsync()
    {
        using var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        listener.Listen();
        var connected = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        var accept = listener.AcceptAsync();
        await connected.ConnectAsync(listener.LocalEndPoint!).WaitAsync(TimeSpan.FromSeconds(20));
        return (connected, await accept.WaitAsync(TimeSpan.FromSeconds(20)));
    }
}
