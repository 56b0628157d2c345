using System.Net.Sockets;
using System.Security.Cryptography;
using Mesh.Sidecar.L4.Tcp;
using static Mesh.Sidecar.Tests.L4.Tcp.RelayHarness;

namespace Mesh.Sidecar.Tests.L4.Tcp;

/// <summary>Every relay behaviour, with splice(2) from the first byte (<see cref="Splice"/>), copying only (<see cref="Copy"/>), and as shipped (<see cref="Adaptive"/>: copying until a read fills the buffer).</summary>
public abstract class TcpRelayTests
{
    /// <summary>The relay mode under test, applied to each test's options.</summary>
    private protected abstract RelayOptions Mode(RelayOptions options);

    private Task<RelayHarness> StartAsync(RelayOptions? options = null, ReadOnlyMemory<byte> clientPrefix = default, CancellationToken cancellationToken = default) =>
        RelayHarness.StartAsync(Mode(options ?? new RelayOptions()), clientPrefix, cancellationToken);

    [Theory]
    [InlineData(RelayOptions.DefaultBufferSize, 8 * 1024 * 1024, 5000)]
    [InlineData(7, 96 * 1024, 100)]
    [InlineData(4096, 2 * 1024 * 1024, 0)]
    public async Task RandomBytesBothWaysConcurrently_ArriveUnchanged(int bufferSize, int length, int prefixLength)
    {
        var prefix = RandomBytes(prefixLength);
        var fromClient = RandomBytes(length);
        var fromBackend = RandomBytes(length);
        await using var h = await StartAsync(new RelayOptions { BufferSize = bufferSize }, prefix);

        // Both directions at once; each writer half-closes when done, each reader reads to EOF.
        var clientWrites = Task.Run(async () =>
        {
            await SendAllAsync(h.Client, fromClient, chunk: 12_345);
            h.Client.Shutdown(SocketShutdown.Send);
        });
        var backendWrites = Task.Run(async () =>
        {
            await SendAllAsync(h.Backend, fromBackend, chunk: 54_321);
            h.Backend.Shutdown(SocketShutdown.Send);
        });
        var backendReads = Task.Run(() => ReadToEndAsync(h.Backend));
        var clientReads = Task.Run(() => ReadToEndAsync(h.Client));
        await Task.WhenAll(clientWrites, backendWrites).WaitAsync(Deadline);
        var atBackend = await backendReads.WaitAsync(Deadline);
        var atClient = await clientReads.WaitAsync(Deadline);
        var result = await h.Result;

        Assert.Equal(prefix.Length + fromClient.Length, atBackend.Count);
        Assert.Equal(SHA256.HashData([.. prefix, .. fromClient]), atBackend.Sha256);
        Assert.Equal(fromBackend.Length, atClient.Count);
        Assert.Equal(SHA256.HashData(fromBackend), atClient.Sha256);
        Assert.Equal(new RelayResult(prefix.Length + fromClient.Length, fromBackend.Length, RelayOutcome.Completed), result);
    }

    [Fact]
    public async Task ClientPrefix_IsSentUpstreamFirst_EvenIfTheClientSendsNothingMore()
    {
        var prefix = RandomBytes(517);
        await using var h = await StartAsync(clientPrefix: prefix);

        Assert.Equal(prefix, await ReadExactlyAsync(h.Backend, prefix.Length));

        h.Client.Shutdown(SocketShutdown.Send);
        h.Backend.Shutdown(SocketShutdown.Send);
        Assert.Equal(new RelayResult(prefix.Length, 0, RelayOutcome.Completed), await h.Result);
    }

    [Fact]
    public async Task ClientHalfClose_BackendReadsToEofThenResponds_ClientGetsTheWholeResponse()
    {
        var request = RandomBytes(1024 * 1024);
        var response = RandomBytes(4 * 1024 * 1024);
        await using var h = await StartAsync();

        var backend = Task.Run(async () =>
        {
            // Only answers after the request's FIN, as an HTTP/1.0-style or "shutdown-then-read" peer would.
            var received = await ReadToEndAsync(h.Backend);
            await SendAllAsync(h.Backend, response);
            h.Backend.Shutdown(SocketShutdown.Send);
            h.Backend.Close();
            return received;
        });

        await SendAllAsync(h.Client, request);
        h.Client.Shutdown(SocketShutdown.Send);
        var atClient = await ReadToEndAsync(h.Client).WaitAsync(Deadline);
        var atBackend = await backend.WaitAsync(Deadline);
        var result = await h.Result;

        Assert.Equal(request.Length, atBackend.Count);
        Assert.Equal(SHA256.HashData(request), atBackend.Sha256);
        Assert.Equal(response.Length, atClient.Count);
        Assert.Equal(SHA256.HashData(response), atClient.Sha256);
        Assert.Equal(new RelayResult(request.Length, response.Length, RelayOutcome.Completed), result);
    }

    [Fact]
    public async Task UpstreamHalfClose_ClientKeepsSending_BackendGetsEverything()
    {
        var greeting = RandomBytes(256 * 1024);
        var upload = RandomBytes(2 * 1024 * 1024);
        await using var h = await StartAsync();

        // The backend speaks first and half-closes; the client reads that to EOF, then uploads.
        await SendAllAsync(h.Backend, greeting);
        h.Backend.Shutdown(SocketShutdown.Send);
        var atClient = await ReadToEndAsync(h.Client).WaitAsync(Deadline);

        var backendReads = Task.Run(() => ReadToEndAsync(h.Backend));
        await SendAllAsync(h.Client, upload).WaitAsync(Deadline);
        h.Client.Shutdown(SocketShutdown.Send);
        var atBackend = await backendReads.WaitAsync(Deadline);

        Assert.Equal(SHA256.HashData(greeting), atClient.Sha256);
        Assert.Equal(SHA256.HashData(upload), atBackend.Sha256);
        Assert.Equal(new RelayResult(upload.Length, greeting.Length, RelayOutcome.Completed), await h.Result);
    }

    [Fact]
    public async Task ClientReset_ResetsTheBackend()
    {
        await using var h = await StartAsync();
        await SendAllAsync(h.Client, "hello"u8.ToArray());
        await ReadExactlyAsync(h.Backend, 5);

        h.Client.LingerState = new LingerOption(true, 0);
        h.Client.Close();

        var error = await ReceiveErrorAsync(h.Backend);
        Assert.Equal(SocketError.ConnectionReset, error);
        Assert.Equal(new RelayResult(5, 0, RelayOutcome.ClientReset), await h.Result);
    }

    [Fact]
    public async Task UpstreamReset_ResetsTheClient()
    {
        await using var h = await StartAsync();
        await SendAllAsync(h.Backend, "hi"u8.ToArray());
        await ReadExactlyAsync(h.Client, 2);

        h.Backend.LingerState = new LingerOption(true, 0);
        h.Backend.Close();

        var error = await ReceiveErrorAsync(h.Client);
        Assert.Equal(SocketError.ConnectionReset, error);
        Assert.Equal(new RelayResult(0, 2, RelayOutcome.UpstreamReset), await h.Result);
    }

    [Fact]
    public async Task ClientResetAfterItsHalfClose_IsSeenOnTheNextResponseBytes_AndResetsTheBackend()
    {
        await using var h = await StartAsync();
        await SendAllAsync(h.Client, "request"u8.ToArray());
        h.Client.Shutdown(SocketShutdown.Send);
        var request = await ReadToEndAsync(h.Backend).WaitAsync(Deadline);
        Assert.Equal(7, request.Count);

        // The client goes away abortively while the backend is still to answer.
        h.Client.LingerState = new LingerOption(true, 0);
        h.Client.Close();
        await SendAllAsync(h.Backend, "response"u8.ToArray());

        var result = await h.Result;
        Assert.Equal(RelayOutcome.ClientReset, result.Outcome);
        Assert.Equal(7, result.BytesFromClient);

        // The backend already read the FIN, so a receive just returns 0 again; its very next send fails
        // because the RST already arrived (after a FIN-only close that first send would still succeed).
        // Linux reports an RST received in CLOSE_WAIT as EPIPE (Shutdown) rather than ECONNRESET.
        var error = await Assert.ThrowsAsync<SocketException>(() => SendAllAsync(h.Backend, "more"u8.ToArray()).WaitAsync(Deadline));
        Assert.Contains(error.SocketErrorCode, new[] { SocketError.ConnectionReset, SocketError.Shutdown });
    }

    [Fact]
    public async Task NoBytesForTheIdleTimeout_ClosesBothSockets()
    {
        await using var h = await StartAsync(new RelayOptions { IdleTimeout = TimeSpan.FromMilliseconds(300) });
        await SendAllAsync(h.Client, "ping"u8.ToArray());
        await ReadExactlyAsync(h.Backend, 4);
        await SendAllAsync(h.Backend, "pong!"u8.ToArray());
        await ReadExactlyAsync(h.Client, 5);

        // No sleeping: the relay has to end by itself.
        var result = await h.Relay.WaitAsync(Deadline);

        Assert.Equal(new RelayResult(4, 5, RelayOutcome.IdleTimeout), result);
        Assert.Equal(0, await ReceiveAsync(h.Client));
        Assert.Equal(0, await ReceiveAsync(h.Backend));
    }

    [Fact]
    public async Task BytesEitherWay_KeepTheRelayAlivePastTheIdleTimeout()
    {
        var idle = TimeSpan.FromSeconds(1);
        await using var h = await StartAsync(new RelayOptions { IdleTimeout = idle });

        // A byte every 50 ms, alternating directions, for 1.6 idle periods: never 1 s without traffic.
        var elapsed = System.Diagnostics.Stopwatch.StartNew();
        for (var i = 0; elapsed.Elapsed < idle * 1.6; i++)
        {
            var (from, to) = i % 2 == 0 ? (h.Client, h.Backend) : (h.Backend, h.Client);
            await SendAllAsync(from, new byte[] { (byte)i });
            await ReadExactlyAsync(to, 1);
            await Task.Delay(50);
        }

        Assert.False(h.Relay.IsCompleted, "the relay ended although bytes kept moving");
        var result = await h.Relay.WaitAsync(Deadline);
        Assert.Equal(RelayOutcome.IdleTimeout, result.Outcome);
        Assert.True(result.BytesFromClient + result.BytesFromUpstream >= 10);
    }

    [Fact]
    public async Task Cancellation_ClosesBothSockets()
    {
        using var cts = new CancellationTokenSource();
        await using var h = await StartAsync(cancellationToken: cts.Token);
        await SendAllAsync(h.Client, "abc"u8.ToArray());
        await ReadExactlyAsync(h.Backend, 3);

        await cts.CancelAsync();

        Assert.Equal(new RelayResult(3, 0, RelayOutcome.Cancelled), await h.Result);
        Assert.Equal(0, await ReceiveAsync(h.Client));
        Assert.Equal(0, await ReceiveAsync(h.Backend));
    }

    [Fact]
    public async Task AlreadyCancelledToken_EndsAtOnce()
    {
        await using var h = await StartAsync(clientPrefix: RandomBytes(10), cancellationToken: new CancellationToken(canceled: true));

        var result = await h.Result;

        Assert.Equal(RelayOutcome.Cancelled, result.Outcome);
        Assert.Equal(0, result.BytesFromUpstream);
    }

    [Fact]
    public void Options_DefaultsAndValidation()
    {
        var defaults = new RelayOptions();
        Assert.Equal(16 * 1024, defaults.BufferSize);
        Assert.Equal(TimeSpan.FromHours(1), defaults.IdleTimeout);
        Assert.Equal(Timeout.InfiniteTimeSpan, new RelayOptions { IdleTimeout = Timeout.InfiniteTimeSpan }.IdleTimeout);

        Assert.Throws<ArgumentOutOfRangeException>(() => new RelayOptions { BufferSize = 0 });
        Assert.Throws<ArgumentOutOfRangeException>(() => new RelayOptions { IdleTimeout = TimeSpan.Zero });
        Assert.Throws<ArgumentOutOfRangeException>(() => new RelayOptions { IdleTimeout = TimeSpan.FromSeconds(-5) });

        // Zero copy after the first full buffer, whatever the buffer size.
        Assert.True(defaults.ZeroCopy);
        Assert.Equal(defaults.BufferSize, defaults.ZeroCopyThreshold);
        Assert.Equal(4096, new RelayOptions { BufferSize = 4096 }.ZeroCopyThreshold);
        Assert.Equal(0, new RelayOptions { ZeroCopyThreshold = 0 }.ZeroCopyThreshold);
        Assert.Throws<ArgumentOutOfRangeException>(() => new RelayOptions { ZeroCopyThreshold = -2 });
    }

    [Fact]
    public async Task InfiniteIdleTimeout_RelaysNormally()
    {
        await using var h = await StartAsync(new RelayOptions { IdleTimeout = Timeout.InfiniteTimeSpan });
        await SendAllAsync(h.Client, "x"u8.ToArray());
        h.Client.Shutdown(SocketShutdown.Send);
        Assert.Equal(1, (await ReadToEndAsync(h.Backend).WaitAsync(Deadline)).Count);
        h.Backend.Shutdown(SocketShutdown.Send);
        Assert.Equal(0, (await ReadToEndAsync(h.Client).WaitAsync(Deadline)).Count);

        Assert.Equal(new RelayResult(1, 0, RelayOutcome.Completed), await h.Result);
    }

    private static Task<int> ReceiveAsync(Socket socket) =>
        socket.ReceiveAsync(new byte[16].AsMemory(), SocketFlags.None).AsTask().WaitAsync(Deadline);

    // The error the next receive ends with; a clean EOF or data fails the test.
    private static async Task<SocketError> ReceiveErrorAsync(Socket socket)
    {
        try
        {
            var read = await ReceiveAsync(socket);
            Assert.Fail($"expected a reset, the receive returned {read} bytes");
            return SocketError.Success;
        }
        catch (SocketException ex)
        {
            return ex.SocketErrorCode;
        }
    }

    [Collection(TcpRelayCollection.Name)]
    public sealed class Splice : TcpRelayTests
    {
        private protected override RelayOptions Mode(RelayOptions options) => options with { ZeroCopyThreshold = 0 };
    }

    [Collection(TcpRelayCollection.Name)]
    public sealed class Adaptive : TcpRelayTests
    {
        private protected override RelayOptions Mode(RelayOptions options) => options;
    }

    [Collection(TcpRelayCollection.Name)]
    public sealed class Copy : TcpRelayTests
    {
        private protected override RelayOptions Mode(RelayOptions options) => options with { ZeroCopy = false };
    }
}
