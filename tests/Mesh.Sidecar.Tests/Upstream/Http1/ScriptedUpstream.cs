// A raw TCP upstream on loopback that records each request's bytes and answers with exactly the bytes a test scripts.
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Threading.Channels;

namespace Mesh.Sidecar.Tests.Upstream.Http1;

/// <summary>One request as the upstream received it.</summary>
/// <param name="Connection">Which accepted connection carried it, from 0.</param>
/// <param name="Head">Request line and headers, CRLF-separated, without the blank line.</param>
/// <param name="Body">The body read by its Content-Length.</param>
internal sealed record ScriptedRequest(int Connection, string Head, string Body)
{
    public string RequestLine => Head[..Head.IndexOf("\r\n", StringComparison.Ordinal)];

    /// <summary>Values of header <paramref name="name"/> in the order sent.</summary>
    public IReadOnlyList<string> Header(string name)
    {
        var values = new List<string>();
        foreach (var line in Head.Split("\r\n").Skip(1))
        {
            var colon = line.IndexOf(':', StringComparison.Ordinal);
            if (string.Equals(line[..colon], name, StringComparison.OrdinalIgnoreCase))
            {
                values.Add(line[(colon + 1)..].Trim());
            }
        }

        return values;
    }
}

/// <summary>What the upstream does with one request.</summary>
/// <param name="Bytes">Sent back as they are; null sends nothing and keeps the connection open.</param>
/// <param name="Close">Close the connection after sending.</param>
/// <param name="Later">More bytes, sent when this task completes (a response that streams).</param>
internal sealed record ScriptedReply(string? Bytes, bool Close = false, Task<string>? Later = null);

/// <summary>A loopback upstream whose replies are scripted per request.</summary>
internal sealed class ScriptedUpstream : IAsyncDisposable
{
    private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
    private readonly Func<ScriptedRequest, ScriptedReply> _reply;
    private readonly CancellationTokenSource _stop = new();
    private readonly List<Socket> _sockets = [];
    private readonly Task _accepting;
    private int _connections;

    public ScriptedUpstream(Func<ScriptedRequest, ScriptedReply> reply)
    {
        _reply = reply;
        _listener.Start();
        _accepting = AcceptAsync();
    }

    public int Port => ((IPEndPoint)_listener.LocalEndpoint).Port;

    public int Connections => Volatile.Read(ref _connections);

    public Channel<ScriptedRequest> Requests { get; } = Channel.CreateUnbounded<ScriptedRequest>();

    /// <summary>Connections this upstream saw end (it closed them, or the peer did).</summary>
    public Channel<int> Closed { get; } = Channel.CreateUnbounded<int>();

    /// <summary>The next recorded request, or a failure after the deadline.</summary>
    public async Task<ScriptedRequest> NextRequestAsync() =>
        await Requests.Reader.ReadAsync().AsTask().WaitAsync(TimeSpan.FromSeconds(20));

    public async Task<int> NextClosedAsync() => await Closed.Reader.ReadAsync().AsTask().WaitAsync(TimeSpan.FromSeconds(20));

    /// <summary>The connection of each reply once all its bytes (the later ones too) are handed to the kernel.</summary>
    public Channel<int> Sent { get; } = Channel.CreateUnbounded<int>();

    public async Task<int> NextSentAsync() => await Sent.Reader.ReadAsync().AsTask().WaitAsync(TimeSpan.FromSeconds(20));

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        _listener.Stop();
        lock (_sockets)
        {
            foreach (var socket in _sockets)
            {
                socket.Dispose();
            }
        }

        try
        {
            await _accepting;
        }
        catch (OperationCanceledException)
        {
        }
        catch (SocketException)
        {
        }

        _stop.Dispose();
    }

    private async Task AcceptAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            var socket = await _listener.AcceptSocketAsync(_stop.Token);
            lock (_sockets)
            {
                _sockets.Add(socket);
            }

            var index = Interlocked.Increment(ref _connections) - 1;
            _ = ServeAsync(socket, index);
        }
    }

    private async Task ServeAsync(Socket socket, int index)
    {
        var buffer = new byte[1024 * 1024];
        var filled = 0;
        try
        {
            while (true)
            {
                int headEnd;
                while ((headEnd = buffer.AsSpan(0, filled).IndexOf("\r\n\r\n"u8)) < 0)
                {
                    var read = await socket.ReceiveAsync(buffer.AsMemory(filled), _stop.Token);
                    if (read == 0)
                    {
                        return;
                    }

                    filled += read;
                }

                var head = Encoding.Latin1.GetString(buffer, 0, headEnd);
                var length = 0;
                foreach (var line in head.Split("\r\n").Skip(1))
                {
                    if (line.StartsWith("Content-Length:", StringComparison.OrdinalIgnoreCase))
                    {
                        length = int.Parse(line["Content-Length:".Length..].Trim(), System.Globalization.CultureInfo.InvariantCulture);
                    }
                }

                var total = headEnd + 4 + length;
                while (filled < total)
                {
                    var read = await socket.ReceiveAsync(buffer.AsMemory(filled), _stop.Token);
                    if (read == 0)
                    {
                        return;
                    }

                    filled += read;
                }

                var request = new ScriptedRequest(index, head, Encoding.Latin1.GetString(buffer, headEnd + 4, length));
                buffer.AsSpan(total, filled - total).CopyTo(buffer);
                filled -= total;
                Requests.Writer.TryWrite(request);
                var reply = _reply(request);
                if (reply.Bytes is null)
                {
                    continue;
                }

                await socket.SendAsync(Encoding.Latin1.GetBytes(reply.Bytes), SocketFlags.None, _stop.Token);
                if (reply.Later is not null)
                {
                    await socket.SendAsync(Encoding.Latin1.GetBytes(await reply.Later.WaitAsync(_stop.Token)), SocketFlags.None, _stop.Token);
                }
                Sent.Writer.TryWrite(index);
                if (reply.Close)
                {
                    socket.Shutdown(SocketShutdown.Both);
                    return;
                }
            }
        }
        catch (Exception ex) when (ex is SocketException or OperationCanceledException or ObjectDisposedException)
        {
        }
        finally
        {
            socket.Dispose();
            Closed.Writer.TryWrite(index);
        }
    }
}
