// The clients of the conformance suite: HTTP/1.1 keep-alive (HttpClient), pipelined HTTP/1.1 (raw socket) and HTTP/2 (HttpClient, h2c); each exchange ends in an Outcome.
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;

namespace Mesh.FunctionalTests.Upstream.Conformance;

/// <summary>One request of a case.</summary>
internal sealed record RequestSpec(string Method, string Host, string Target, byte[]? Body = null)
{
    /// <summary>The request as HTTP/1.1 bytes, with a Content-Length when it has a body.</summary>
    public byte[] ToHttp1()
    {
        var head = new StringBuilder().Append(CultureInfo.InvariantCulture, $"{Method} {Target} HTTP/1.1\r\nHost: {Host}\r\n");
        if (Body is not null)
        {
            head.Append(CultureInfo.InvariantCulture, $"Content-Length: {Body.Length}\r\n");
        }

        var bytes = Encoding.Latin1.GetBytes(head.Append("\r\n").ToString());
        return Body is null ? bytes : [.. bytes, .. Body];
    }
}

/// <summary>What a client ended up with: a status and the body's bytes, or a failure (reset, cut body, timeout).</summary>
internal sealed record Outcome(int Status, byte[] Body, IReadOnlyDictionary<string, string> Headers, string? Failure)
{
    /// <summary>Response headers left out of comparisons: they describe the hop or the moment, not the message.</summary>
    private static readonly HashSet<string> HopHeaders = new(StringComparer.OrdinalIgnoreCase)
    {
        "Date", "Connection", "Keep-Alive", "Transfer-Encoding", "Server", "Proxy-Connection",
    };

    public bool Failed => Failure is not null;

    /// <summary>502 or no answer at all: a proxy that would not pass the response on.</summary>
    public bool IsRefusal => Failed || Status == 502;

    public static Outcome Of(int status, byte[] body, IEnumerable<KeyValuePair<string, string>> headers) =>
        new(status, body, headers.Where(h => !HopHeaders.Contains(h.Key)).ToDictionary(h => h.Key.ToLowerInvariant(), h => h.Value), null);

    public static Outcome Fail(Exception ex) => new(0, [], new Dictionary<string, string>(), $"{ex.GetType().Name}: {ex.Message}");

    /// <summary>Same status and the same body bytes.</summary>
    public bool SameAs(Outcome other) => !Failed && !other.Failed && Status == other.Status && Body.AsSpan().SequenceEqual(other.Body);

    /// <summary>The end-to-end headers that differ, as text, or null.</summary>
    public string? HeaderDifference(Outcome other, params string[] ignored)
    {
        var names = Headers.Keys.Union(other.Headers.Keys).Except(ignored, StringComparer.OrdinalIgnoreCase).Order(StringComparer.Ordinal);
        var different = names.Where(n => Headers.GetValueOrDefault(n) != other.Headers.GetValueOrDefault(n)).ToList();
        return different.Count == 0 ? null : string.Join("; ", different.Select(n => $"{n}: '{Headers.GetValueOrDefault(n)}' vs '{other.Headers.GetValueOrDefault(n)}'"));
    }

    public override string ToString()
    {
        if (Failed)
        {
            return $"failed ({Failure})";
        }

        var preview = Encoding.Latin1.GetString(Body, 0, Math.Min(Body.Length, 40)).Replace("\r", "\\r", StringComparison.Ordinal).Replace("\n", "\\n", StringComparison.Ordinal);
        return $"{Status}, {Body.Length} bytes sha {Convert.ToHexString(SHA256.HashData(Body))[..8]} '{preview}'";
    }
}

/// <summary>The three kinds of client a case runs with.</summary>
internal enum ClientKind
{
    KeepAlive,
    Pipelined,
    Http2,
}

/// <summary>HttpClient-based clients (one connection each, reused across requests) and a raw pipelining client.</summary>
internal static class ConformanceClients
{
    /// <summary>Upper bound on one exchange: a response that stalls past it counts as a failure, not a hang.</summary>
    public static readonly TimeSpan ExchangeDeadline = TimeSpan.FromSeconds(15);

    /// <summary>One HTTP/1.1 or HTTP/2 (h2c) connection, reused for every request to one address.</summary>
    public static HttpClient Create(bool http2) => new(new SocketsHttpHandler
    {
        UseProxy = false,
        AllowAutoRedirect = false,
        MaxConnectionsPerServer = 1,
        EnableMultipleHttp2Connections = false,
        AutomaticDecompression = DecompressionMethods.None,
        UseCookies = false,
        MaxResponseHeadersLength = 128, // KiB: room for the 10,000-field case once Kestrel adds its own fields
        PooledConnectionIdleTimeout = TimeSpan.FromMinutes(5),
    })
    {
        DefaultRequestVersion = http2 ? HttpVersion.Version20 : HttpVersion.Version11,
        DefaultVersionPolicy = HttpVersionPolicy.RequestVersionExact,
        Timeout = Timeout.InfiniteTimeSpan,
    };

    /// <summary>Sends <paramref name="spec"/> to <paramref name="port"/> on <paramref name="client"/> and reads the whole response.</summary>
    public static async Task<Outcome> SendAsync(HttpClient client, int port, RequestSpec spec)
    {
        using var deadline = new CancellationTokenSource(ExchangeDeadline);
        try
        {
            using var request = new HttpRequestMessage(new HttpMethod(spec.Method), new Uri($"http://127.0.0.1:{port}{spec.Target}"));
            request.Headers.Host = spec.Host;
            if (spec.Body is not null)
            {
                request.Content = new ByteArrayContent(spec.Body);
            }

            using var response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, deadline.Token);
            var body = await response.Content.ReadAsByteArrayAsync(deadline.Token);
            var headers = response.Headers.Concat(response.Content.Headers).Select(h => KeyValuePair.Create(h.Key, string.Join(",", h.Value)));
            return Outcome.Of((int)response.StatusCode, body, headers);
        }
        catch (Exception ex) when (ex is HttpRequestException or IOException or OperationCanceledException or InvalidOperationException)
        {
            return Outcome.Fail(ex);
        }
    }

    /// <summary>
    /// Writes every request in <paramref name="specs"/> in one send on a new connection and reads
    /// the responses in order (pipelining); a response that fails ends the rest.
    /// </summary>
    public static async Task<IReadOnlyList<Outcome>> PipelineAsync(int port, params RequestSpec[] specs)
    {
        var outcomes = new List<Outcome>();
        using var deadline = new CancellationTokenSource(ExchangeDeadline);
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        try
        {
            await socket.ConnectAsync(new IPEndPoint(IPAddress.Loopback, port), deadline.Token);
            await socket.SendAsync(specs.SelectMany(s => s.ToHttp1()).ToArray(), SocketFlags.None, deadline.Token);
            var reader = new RawResponseReader(socket, deadline.Token);
            foreach (var spec in specs)
            {
                outcomes.Add(await reader.ReadAsync(spec.Method == "HEAD"));
            }
        }
        catch (Exception ex) when (ex is SocketException or IOException or OperationCanceledException or FormatException)
        {
            outcomes.Add(Outcome.Fail(ex));
        }

        while (outcomes.Count < specs.Length)
        {
            outcomes.Add(Outcome.Fail(new IOException("an earlier pipelined response failed")));
        }

        return outcomes;
    }

    /// <summary>A small HTTP/1.1 response reader: 1xx skipped, then Content-Length, chunked or read to the close.</summary>
    private sealed class RawResponseReader(Socket socket, CancellationToken cancellationToken)
    {
        private byte[] _buffer = new byte[64 * 1024];
        private int _start;
        private int _end;

        public async Task<Outcome> ReadAsync(bool head)
        {
            while (true)
            {
                var text = await ReadHeadAsync();
                var lines = text.Split("\r\n");
                if (lines[0].Length < 12 || !lines[0].StartsWith("HTTP/1.", StringComparison.Ordinal))
                {
                    throw new FormatException($"status line '{lines[0]}'");
                }

                var status = int.Parse(lines[0].AsSpan(9, 3), CultureInfo.InvariantCulture);
                var headers = new List<KeyValuePair<string, string>>();
                foreach (var line in lines.Skip(1))
                {
                    var colon = line.IndexOf(':', StringComparison.Ordinal);
                    headers.Add(KeyValuePair.Create(line[..colon].Trim(), line[(colon + 1)..].Trim()));
                }

                if (status < 200)
                {
                    continue;
                }

                var merged = headers.GroupBy(h => h.Key, StringComparer.OrdinalIgnoreCase).Select(g => KeyValuePair.Create(g.Key, string.Join(",", g.Select(h => h.Value))));
                string? Find(string name) => headers.Where(h => h.Key.Equals(name, StringComparison.OrdinalIgnoreCase)).Select(h => h.Value).LastOrDefault();
                if (head || status is 204 or 304)
                {
                    return Outcome.Of(status, [], merged);
                }

                if (Find("Transfer-Encoding") is { } coding && coding.Split(',')[^1].Trim().Equals("chunked", StringComparison.OrdinalIgnoreCase))
                {
                    return Outcome.Of(status, await ReadChunkedAsync(), merged.Where(h => !h.Key.Equals("Transfer-Encoding", StringComparison.OrdinalIgnoreCase)));
                }

                if (Find("Content-Length") is { } length)
                {
                    return Outcome.Of(status, await TakeAsync(long.Parse(length, CultureInfo.InvariantCulture)), merged);
                }

                using var rest = new MemoryStream();
                rest.Write(_buffer, _start, _end - _start);
                _start = _end;
                while (await FillAsync())
                {
                    rest.Write(_buffer, _start, _end - _start);
                    _start = _end;
                }

                return Outcome.Of(status, rest.ToArray(), merged);
            }
        }

        private async Task<string> ReadHeadAsync()
        {
            while (true)
            {
                var at = _buffer.AsSpan(_start, _end - _start).IndexOf("\r\n\r\n"u8);
                if (at >= 0)
                {
                    var text = Encoding.Latin1.GetString(_buffer, _start, at);
                    _start += at + 4;
                    return text;
                }

                if (!await FillAsync())
                {
                    throw new IOException("the connection closed before a whole response head");
                }
            }
        }

        private async Task<byte[]> ReadChunkedAsync()
        {
            using var body = new MemoryStream();
            while (true)
            {
                var line = await ReadLineAsync();
                var size = Convert.ToInt64(line.Split(';')[0].Trim(), 16);
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
                    throw new IOException("the connection closed inside a chunked body");
                }
            }
        }

        private async Task<byte[]> TakeAsync(long length)
        {
            var body = new byte[length];
            var filled = 0;
            while (filled < length)
            {
                if (_start == _end && !await FillAsync())
                {
                    throw new IOException($"the connection closed with {length - filled} body bytes to come");
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
