// A raw-socket HTTP/1.1 upstream whose answers are scripted to the byte and the millisecond: several writes, pauses, closes, bytes nobody asked for.
using System.Collections.Concurrent;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace Mesh.FunctionalTests.Upstream.Conformance;

/// <summary>One step of a scripted answer.</summary>
internal abstract record Step;

/// <summary>Sends these bytes (Latin-1) in one write.</summary>
internal sealed record Send(string Bytes) : Step;

/// <summary>Waits this long before the next step (the upstream's own timing, not a test's synchronisation).</summary>
internal sealed record Pause(int Milliseconds) : Step;

/// <summary>Reads the request body now (for scripts that answer before reading it).</summary>
internal sealed record DrainBody : Step;

/// <summary>Closes the connection (FIN) and reads until the peer closes too; the script ends.</summary>
internal sealed record Close : Step;

/// <summary>Closes the socket at once without reading what the peer still sends (a reset if request bytes are unread); the script ends.</summary>
internal sealed record Abandon : Step;

/// <summary>A request as the scripted server read it.</summary>
/// <param name="Target">The request-target.</param>
/// <param name="Head">Request line and header lines, CRLF-separated.</param>
/// <param name="Body">The body, read by Content-Length or dechunked.</param>
internal sealed record SeenRequest(string Method, string Target, string Head, byte[] Body)
{
    public IReadOnlyList<string> Header(string name)
    {
        var values = new List<string>();
        foreach (var line in Head.Split("\r\n").Skip(1))
        {
            var colon = line.IndexOf(':', StringComparison.Ordinal);
            if (colon > 0 && string.Equals(line[..colon], name, StringComparison.OrdinalIgnoreCase))
            {
                values.Add(line[(colon + 1)..].Trim());
            }
        }

        return values;
    }
}

/// <summary>How the scripted server answers requests to <c>/case/{name}/...</c>.</summary>
/// <param name="Steps">The answer, given the request.</param>
/// <param name="ReadBodyFirst">Read the request body before the first step (false: a step may drain it later, or never).</param>
internal sealed record Script(Func<SeenRequest, IReadOnlyList<Step>> Steps, bool ReadBodyFirst = true);

/// <summary>
/// Answers <c>/echo/...</c> with its request-target, and <c>/case/{name}/{nonce}</c> with the
/// script registered under the name. Every request is recorded by nonce, and each script's end
/// is signalled, so a test can wait for an upstream's late bytes instead of sleeping.
/// </summary>
internal sealed class ScriptedServer : IAsyncDisposable
{
    private readonly Socket _listener = new(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
    private readonly ConcurrentDictionary<string, Script> _scripts = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, TaskCompletionSource> _finished = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<Socket, byte> _open = new();
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _accepting;

    public ScriptedServer()
    {
        _listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        _listener.Listen(512);
        Port = ((IPEndPoint)_listener.LocalEndPoint!).Port;
        _accepting = AcceptAsync();
    }

    public int Port { get; }

    /// <summary>Every request read, in order.</summary>
    public ConcurrentQueue<SeenRequest> Seen { get; } = new();

    public void Register(string name, Script script) => _scripts[name] = script;

    /// <summary>Completes when the script answering the request with <paramref name="nonce"/> has run its last step.</summary>
    public Task FinishedAsync(string nonce) => Finished(nonce).Task.WaitAsync(TimeSpan.FromSeconds(20));

    /// <summary>Requests whose target holds <paramref name="nonce"/>.</summary>
    public IReadOnlyList<SeenRequest> SeenWith(string nonce) => [.. Seen.Where(r => r.Target.Contains(nonce, StringComparison.Ordinal))];

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        _listener.Dispose();
        foreach (var socket in _open.Keys)
        {
            socket.Dispose();
        }

        try
        {
            await _accepting;
        }
        catch (Exception ex) when (ex is OperationCanceledException or SocketException or ObjectDisposedException)
        {
        }

        _stop.Dispose();
    }

    private TaskCompletionSource Finished(string nonce) =>
        _finished.GetOrAdd(nonce, _ => new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously));

    private async Task AcceptAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            var socket = await _listener.AcceptAsync(_stop.Token);
            socket.NoDelay = true;
            _open[socket] = 0;
            _ = Task.Run(() => ServeAsync(socket));
        }
    }

    private async Task ServeAsync(Socket socket)
    {
        var reader = new Reader(socket, _stop.Token);
        try
        {
            while (true)
            {
                var head = await reader.ReadHeadAsync();
                if (head is null)
                {
                    return;
                }

                var requestLine = head[..head.IndexOf("\r\n", StringComparison.Ordinal)];
                var parts = requestLine.Split(' ');
                var method = parts[0];
                var target = parts.Length > 1 ? parts[1] : "";
                var segments = target.Split('/', '?');
                var script = segments.Length > 3 && segments[1] == "case" && _scripts.TryGetValue(segments[2], out var found) ? found : null;
                var nonce = segments.Length > 3 ? segments[3] : "";

                var bodyRead = script is null || script.ReadBodyFirst;
                var body = bodyRead ? await reader.ReadBodyAsync(head) : [];
                var request = new SeenRequest(method, target, head, body);
                Seen.Enqueue(request);

                if (script is null)
                {
                    // /echo/... and anything unknown: the target, framed by Content-Length.
                    var echo = Encoding.Latin1.GetBytes(target);
                    await socket.SendAsync(Encoding.ASCII.GetBytes($"HTTP/1.1 200 OK\r\nContent-Length: {echo.Length}\r\nContent-Type: text/plain\r\n\r\n"), SocketFlags.None, _stop.Token);
                    if (method != "HEAD")
                    {
                        await socket.SendAsync(echo, SocketFlags.None, _stop.Token);
                    }

                    continue;
                }

                var closed = false;
                try
                {
                    foreach (var step in script.Steps(request))
                    {
                        switch (step)
                        {
                            case Send send:
                                await socket.SendAsync(Encoding.Latin1.GetBytes(send.Bytes), SocketFlags.None, _stop.Token);
                                break;
                            case Pause pause:
                                await Task.Delay(pause.Milliseconds, _stop.Token);
                                break;
                            case DrainBody when !bodyRead:
                                await reader.ReadBodyAsync(head);
                                bodyRead = true;
                                break;
                            case Close:
                                socket.Shutdown(SocketShutdown.Send);
                                closed = true;
                                break;
                            case Abandon:
                                socket.Close(0);
                                return;
                        }

                        if (closed)
                        {
                            break;
                        }
                    }
                }
                finally
                {
                    Finished(nonce).TrySetResult();
                }

                if (closed)
                {
                    // Read what the peer still sends until it closes too, so the close is a FIN, not a reset.
                    await reader.DrainAsync();
                    return;
                }

                if (!bodyRead)
                {
                    await reader.ReadBodyAsync(head);
                }
            }
        }
        catch (Exception ex) when (ex is SocketException or OperationCanceledException or ObjectDisposedException or IOException)
        {
        }
        finally
        {
            _open.TryRemove(socket, out _);
            socket.Dispose();
        }
    }

    /// <summary>Buffered reading of request heads and bodies from one connection.</summary>
    private sealed class Reader(Socket socket, CancellationToken cancellationToken)
    {
        private byte[] _buffer = new byte[64 * 1024];
        private int _start;
        private int _end;

        public async Task<string?> ReadHeadAsync()
        {
            while (true)
            {
                var at = _buffer.AsSpan(_start, _end - _start).IndexOf("\r\n\r\n"u8);
                if (at >= 0)
                {
                    var head = Encoding.Latin1.GetString(_buffer, _start, at);
                    _start += at + 4;
                    return head;
                }

                if (!await FillAsync())
                {
                    return null;
                }
            }
        }

        public async Task<byte[]> ReadBodyAsync(string head)
        {
            var length = 0L;
            var chunked = false;
            foreach (var line in head.Split("\r\n").Skip(1))
            {
                var colon = line.IndexOf(':', StringComparison.Ordinal);
                var name = colon > 0 ? line[..colon].Trim() : "";
                if (name.Equals("Content-Length", StringComparison.OrdinalIgnoreCase))
                {
                    length = long.Parse(line[(colon + 1)..].Trim(), CultureInfo.InvariantCulture);
                }
                else if (name.Equals("Transfer-Encoding", StringComparison.OrdinalIgnoreCase) && line.Contains("chunked", StringComparison.OrdinalIgnoreCase))
                {
                    chunked = true;
                }
            }

            if (!chunked)
            {
                return await TakeAsync(length);
            }

            using var body = new MemoryStream();
            while (true)
            {
                var sizeLine = await ReadLineAsync();
                var size = Convert.ToInt64(sizeLine.Split(';')[0].Trim(), 16);
                if (size == 0)
                {
                    while ((await ReadLineAsync()).Length > 0)
                    {
                    }

                    return body.ToArray();
                }

                body.Write(await TakeAsync(size));
                await ReadLineAsync();
            }
        }

        public async Task DrainAsync()
        {
            while (await FillAsync())
            {
                _start = _end = 0;
            }
        }

        private async Task<string> ReadLineAsync()
        {
            while (true)
            {
                var at = _buffer.AsSpan(_start, _end - _start).IndexOf("\r\n"u8);
                if (at >= 0)
                {
                    var line = Encoding.Latin1.GetString(_buffer, _start, at);
                    _start += at + 2;
                    return line;
                }

                if (!await FillAsync())
                {
                    throw new IOException("closed inside a chunked request body");
                }
            }
        }

        private async Task<byte[]> TakeAsync(long length)
        {
            var body = new byte[length];
            var filled = 0;
            while (filled < length)
            {
                if (_end == _start && !await FillAsync())
                {
                    throw new IOException("closed inside a request body");
                }

                var take = (int)Math.Min(length - filled, _end - _start);
                _buffer.AsSpan(_start, take).CopyTo(body.AsSpan(filled));
                _start += take;
                filled += take;
            }

            return body;
        }

        private async Task<bool> FillAsync()
        {
            if (_start == _end)
            {
                _start = _end = 0;
            }
            else if (_end == _buffer.Length)
            {
                if (_start > 0)
                {
                    _buffer.AsSpan(_start, _end - _start).CopyTo(_buffer);
                    _end -= _start;
                    _start = 0;
                }
                else
                {
                    Array.Resize(ref _buffer, _buffer.Length * 2);
                }
            }

            var read = await socket.ReceiveAsync(_buffer.AsMemory(_end), SocketFlags.None, cancellationToken);
            _end += read;
            return read > 0;
        }
    }
}
