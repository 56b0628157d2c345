// Stage 8 for plain HTTP/1.1 upstreams: the request written straight onto a pooled socket, the response parsed back onto Kestrel's.
using System.Buffers;
using System.Buffers.Text;
using System.IO.Pipelines;
using System.Net.Sockets;
using System.Runtime.CompilerServices;
using System.Text;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.Primitives;
using Microsoft.Net.Http.Headers;
using Mesh.Sidecar.Endpoints;
using Yarp.ReverseProxy.Forwarder;

namespace Mesh.Sidecar.Upstream.Http1;

/// <summary>
/// Mesh's own HTTP/1.1 client for the common case. HttpClient plus YARP's forwarder cost as much
/// processor time per request as the kernel's loopback work (see docs/benchmarks.md); this path
/// writes the request head in one send, reads the response into one buffer and copies the body
/// straight into Kestrel's response pipe. Requests it does not take (upgrades, CONNECT,
/// <c>Expect</c>, request bodies without a length) and HTTP/2 upstreams go through YARP.
/// Errors map onto YARP's <see cref="ForwarderError"/> and status codes, so both paths look alike.
/// </summary>
internal sealed partial class Http1Forwarder(ILogger<Http1Forwarder> logger)
{
    /// <summary>Largest response head (status line and headers) accepted from upstream.</summary>
    public const int MaxResponseHeadBytes = 64 * 1024;

    /// <summary>Longest chunk-size or trailer line accepted in a chunked body.</summary>
    private const int MaxChunkLineBytes = 8 * 1024;

    /// <summary>A request body up to this size that Kestrel already holds goes out in the head's send.</summary>
    private const int CoalesceBodyBytes = 4 * 1024;

    private static readonly Action<object?> AbortConnection = static state => ((Http1Connection)state!).Abort();

    private enum Phase
    {
        Request,
        ClientBody,
        RequestBody,
        ResponseHead,
        ResponseBody,
    }

    /// <summary>How a response body is delimited.</summary>
    internal enum Framing
    {
        None,
        Length,
        Chunked,
        UntilClose,
    }

    /// <summary>Whether <paramref name="context"/> can take this path; the others go through YARP.</summary>
    public static bool CanForward(HttpContext context)
    {
        var request = context.Request;
        if (request.ContentLength is null && context.Features.Get<IHttpRequestBodyDetectionFeature>() is not { CanHaveBody: false })
        {
            // A chunked or HTTP/2 body of unknown length.
            return false;
        }

        if (HttpMethods.IsConnect(request.Method) || request.Headers.Expect.Count != 0)
        {
            return false;
        }

        return context.Features.Get<IHttpUpgradeFeature>() is not { IsUpgradableRequest: true };
    }

    /// <summary>Forwards the request to <paramref name="endpoint"/> and copies the response back.</summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    public async ValueTask<ForwarderError> SendAsync(HttpContext context, EndpointState endpoint, Http1Settings settings, RouteTransformer transformer)
    {
        var request = context.Request;
        var aborted = context.RequestAborted;
        var pool = endpoint.Http1Pool;
        var contentLength = request.ContentLength ?? 0;
        var hasBody = contentLength > 0;
        var isHead = HttpMethods.IsHead(request.Method);
        for (var attempt = 0; ; attempt++)
        {
            // A pooled connection if one is idle, else a new one.
            var connection = pool.TryRent();
            if (connection is null)
            {
                try
                {
                    connection = await pool.ConnectAsync(settings.ConnectTimeoutMs, aborted).ConfigureAwait(false);
                }
                catch (Exception ex) when (ex is SocketException or TimeoutException or OperationCanceledException)
                {
                    Log.ConnectFailed(logger, endpoint.Authority, ex.Message);
                    return Fail(context, aborted.IsCancellationRequested ? ForwarderError.RequestCanceled : ForwarderError.Request);
                }
            }

            connection.Begin(settings.RequestTimeoutMs);
            var registration = aborted.UnsafeRegister(AbortConnection, connection);
            var phase = Phase.Request;
            var keepAlive = false;
            try
            {
                // Request head (and a small body Kestrel already holds) in one send.
                var length = WriteHead(connection, context, transformer, endpoint.Authority, out var bodySent);
                await connection.Socket.SendAsync(connection.Write.AsMemory(0, length), SocketFlags.None).ConfigureAwait(false);
                if (hasBody && !bodySent)
                {
                    var reader = request.BodyReader;
                    while (true)
                    {
                        phase = Phase.ClientBody;
                        var result = await reader.ReadAsync().ConfigureAwait(false);
                        phase = Phase.RequestBody;
                        foreach (var segment in result.Buffer)
                        {
                            await connection.Socket.SendAsync(segment, SocketFlags.None).ConfigureAwait(false);
                        }

                        // A slow upload is activity too, as in YARP's activity timeout.
                        connection.Touch(settings.RequestTimeoutMs);

                        reader.AdvanceTo(result.Buffer.End);
                        if (result.IsCompleted)
                        {
                            break;
                        }
                    }
                }

                // Response head; interim 1xx responses are read past.
                phase = Phase.ResponseHead;
                int status;
                Framing framing;
                long bodyLength;
                while (true)
                {
                    int headEnd;
                    while ((headEnd = connection.Read.AsSpan(connection.ReadStart, connection.ReadEnd - connection.ReadStart).IndexOf("\r\n\r\n"u8)) < 0)
                    {
                        if (await FillAsync(connection, MaxResponseHeadBytes).ConfigureAwait(false) == 0)
                        {
                            throw new Http1UpstreamException(connection.ReadEnd == 0 ? "the connection closed before a response" : "the connection closed inside the response head");
                        }
                    }

                    connection.Touch(settings.RequestTimeoutMs);
                    var head = connection.Read.AsSpan(connection.ReadStart, headEnd + 2);
                    connection.ReadStart += headEnd + 4;
                    status = ParseStatus(head, out var http10);
                    if (status is >= 100 and < 200)
                    {
                        if (status == StatusCodes.Status101SwitchingProtocols)
                        {
                            throw new Http1UpstreamException("101 Switching Protocols to a request that asked for no upgrade");
                        }

                        continue;
                    }

                    framing = CopyHeaders(connection, head, context.Response, status, isHead, out bodyLength, out var close);
                    keepAlive = !close && !http10 && framing != Framing.UntilClose;
                    break;
                }

                transformer.ApplyResponseHeaders(context.Response.Headers);

                // Response body, straight into Kestrel's pipe.
                phase = Phase.ResponseBody;
                var writer = context.Response.BodyWriter;
                var complete = framing switch
                {
                    Framing.None => true,
                    Framing.Length => await CopyLengthAsync(connection, writer, bodyLength, settings.RequestTimeoutMs).ConfigureAwait(false),
                    Framing.Chunked => await CopyChunkedAsync(connection, writer, settings.RequestTimeoutMs).ConfigureAwait(false),
                    _ => await CopyUntilCloseAsync(connection, writer, settings.RequestTimeoutMs).ConfigureAwait(false),
                };
                if (!complete)
                {
                    // Kestrel's pipe refused more: the client is gone, and the rest of the body with it.
                    registration.Dispose();
                    connection.Dispose();
                    return ForwarderError.ResponseBodyClient;
                }

                // Bytes past the response mean the stream is out of step; do not reuse it.
                keepAlive &= connection.ReadStart == connection.ReadEnd;
                registration.Dispose();
                if (keepAlive && connection.End())
                {
                    pool.Return(connection);
                }
                else
                {
                    connection.Dispose();
                }

                return ForwarderError.None;
            }
            catch (Exception ex) when (ex is not OutOfMemoryException)
            {
                registration.Dispose();
                var timedOut = connection.TimedOut;
                var receivedAny = connection.ReadEnd > 0;
                var reused = connection.Reused;
                connection.Dispose();
                if (attempt == 0 && reused && !hasBody && !receivedAny && phase is Phase.Request or Phase.ResponseHead
                    && ex is not InvalidOperationException && !timedOut && !aborted.IsCancellationRequested)
                {
                    // The peer closed this keep-alive connection while it sat idle; nothing reached the app, so try a fresh one once.
                    Log.RetryingStale(logger, endpoint.Authority);
                    continue;
                }

                var error = Classify(phase, timedOut, aborted.IsCancellationRequested);
                Log.ExchangeFailed(logger, endpoint.Authority, error.ToString(), ex.Message);
                return Fail(context, error);
            }
        }
    }

    private static ForwarderError Classify(Phase phase, bool timedOut, bool clientGone) => phase switch
    {
        Phase.ClientBody => clientGone ? ForwarderError.RequestBodyCanceled : ForwarderError.RequestBodyClient,
        Phase.ResponseBody => clientGone ? ForwarderError.ResponseBodyCanceled : ForwarderError.ResponseBodyDestination,
        _ when clientGone => ForwarderError.RequestCanceled,
        _ when timedOut => ForwarderError.RequestTimedOut,
        Phase.RequestBody => ForwarderError.RequestBodyDestination,
        _ => ForwarderError.Request,
    };

    /// <summary>Answers as YARP does: 504 on a timeout, 400 on a bad client body, else 502; a started response is aborted.</summary>
    private static ForwarderError Fail(HttpContext context, ForwarderError error)
    {
        var response = context.Response;
        if (response.HasStarted || error is ForwarderError.ResponseBodyDestination or ForwarderError.ResponseBodyCanceled)
        {
            // The client must not take a cut-short body for a whole one.
            context.Abort();
            return error;
        }

        response.Clear();
        response.StatusCode = error switch
        {
            ForwarderError.RequestTimedOut => StatusCodes.Status504GatewayTimeout,
            ForwarderError.RequestBodyClient or ForwarderError.RequestBodyCanceled => StatusCodes.Status400BadRequest,
            _ => StatusCodes.Status502BadGateway,
        };
        return error;
    }

    /// <summary>Receives more response bytes after the unread ones, compacting or growing the buffer; 0 at end of stream.</summary>
    private static ValueTask<int> FillAsync(Http1Connection connection, int limit)
    {
        if (connection.ReadEnd == connection.Read.Length)
        {
            if (connection.ReadStart > 0)
            {
                var unread = connection.ReadEnd - connection.ReadStart;
                connection.Read.AsSpan(connection.ReadStart, unread).CopyTo(connection.Read);
                connection.ReadStart = 0;
                connection.ReadEnd = unread;
            }
            else if (!connection.GrowRead(limit))
            {
                throw new Http1UpstreamException($"a response head or chunk line over {limit} bytes");
            }
        }

        return Received(connection, connection.Socket.ReceiveAsync(connection.Read.AsMemory(connection.ReadEnd), SocketFlags.None));

        static ValueTask<int> Received(Http1Connection connection, ValueTask<int> receive)
        {
            if (receive.IsCompletedSuccessfully)
            {
                connection.ReadEnd += receive.Result;
                return receive;
            }

            return Await(connection, receive);
        }

        [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
        static async ValueTask<int> Await(Http1Connection connection, ValueTask<int> receive)
        {
            var received = await receive.ConfigureAwait(false);
            connection.ReadEnd += received;
            return received;
        }
    }

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    private static async ValueTask<bool> CopyLengthAsync(Http1Connection connection, PipeWriter writer, long length, int timeoutMs)
    {
        var buffered = (int)Math.Min(connection.ReadEnd - connection.ReadStart, length);
        if (buffered > 0)
        {
            writer.Write(connection.Read.AsSpan(connection.ReadStart, buffered));
            connection.ReadStart += buffered;
            length -= buffered;
        }

        while (length > 0)
        {
            // Hand what we have to the client before waiting on upstream again.
            var flushed = await writer.FlushAsync().ConfigureAwait(false);
            if (flushed.IsCompleted || flushed.IsCanceled)
            {
                return false;
            }

            // A slow client holding the flush back is not an idle upstream.
            connection.Touch(timeoutMs);

            var memory = writer.GetMemory();
            var received = await connection.Socket.ReceiveAsync(memory[..(int)Math.Min(memory.Length, length)], SocketFlags.None).ConfigureAwait(false);
            if (received == 0)
            {
                throw new Http1UpstreamException($"the connection closed with {length} body bytes still to come");
            }

            connection.Touch(timeoutMs);
            writer.Advance(received);
            length -= received;
        }

        return true;
    }

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    private static async ValueTask<bool> CopyUntilCloseAsync(Http1Connection connection, PipeWriter writer, int timeoutMs)
    {
        if (connection.ReadEnd > connection.ReadStart)
        {
            writer.Write(connection.Read.AsSpan(connection.ReadStart, connection.ReadEnd - connection.ReadStart));
            connection.ReadStart = connection.ReadEnd;
        }

        while (true)
        {
            var flushed = await writer.FlushAsync().ConfigureAwait(false);
            if (flushed.IsCompleted || flushed.IsCanceled)
            {
                return false;
            }

            // A slow client holding the flush back is not an idle upstream.
            connection.Touch(timeoutMs);

            var memory = writer.GetMemory();
            var received = await connection.Socket.ReceiveAsync(memory, SocketFlags.None).ConfigureAwait(false);
            if (received == 0)
            {
                return true;
            }

            connection.Touch(timeoutMs);
            writer.Advance(received);
        }
    }

    /// <summary>Decodes <c>Transfer-Encoding: chunked</c>; Kestrel frames the body again for its client. Trailers are read and dropped.</summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    private static async ValueTask<bool> CopyChunkedAsync(Http1Connection connection, PipeWriter writer, int timeoutMs)
    {
        while (true)
        {
            // chunk-size [; extensions] CRLF
            var lineLength = await ReadLineAsync(connection, writer, timeoutMs).ConfigureAwait(false);
            var size = ParseChunkSize(connection.Read.AsSpan(connection.ReadStart - lineLength - 2, lineLength));
            if (size == 0)
            {
                // Trailer fields up to the empty line.
                while (await ReadLineAsync(connection, writer, timeoutMs).ConfigureAwait(false) > 0)
                {
                }

                return true;
            }

            // The chunk's data: what is buffered, then straight from the socket into Kestrel's pipe.
            if (!await CopyLengthAsync(connection, writer, size, timeoutMs).ConfigureAwait(false))
            {
                return false;
            }

            // The CRLF that ends the chunk's data.
            if (await ReadLineAsync(connection, writer, timeoutMs).ConfigureAwait(false) != 0)
            {
                throw new Http1UpstreamException("chunk data longer than its size");
            }
        }
    }

    /// <summary>
    /// Waits for a whole line in the buffer and consumes it; returns its length without the CRLF
    /// and leaves it at <c>Read[ReadStart - length - 2]</c>. Flushes what is written first if it has to wait.
    /// </summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    private static async ValueTask<int> ReadLineAsync(Http1Connection connection, PipeWriter writer, int timeoutMs)
    {
        int end;
        while ((end = connection.Read.AsSpan(connection.ReadStart, connection.ReadEnd - connection.ReadStart).IndexOf("\r\n"u8)) < 0)
        {
            if (connection.ReadEnd - connection.ReadStart > MaxChunkLineBytes)
            {
                throw new Http1UpstreamException($"a chunk line over {MaxChunkLineBytes} bytes");
            }

            // Hand the chunks so far to the client before waiting (server-sent events and other streams).
            await writer.FlushAsync().ConfigureAwait(false);
            connection.Touch(timeoutMs);

            if (await FillAsync(connection, MaxResponseHeadBytes).ConfigureAwait(false) == 0)
            {
                throw new Http1UpstreamException("the connection closed inside a chunked body");
            }

            connection.Touch(timeoutMs);
        }

        connection.ReadStart += end + 2;
        return end;
    }

    private static long ParseChunkSize(ReadOnlySpan<byte> line)
    {
        var semicolon = line.IndexOf((byte)';');
        var digits = (semicolon < 0 ? line : line[..semicolon]).Trim(" \t"u8);
        if (digits.IsEmpty || digits.Length > 15 || !Utf8Parser.TryParse(digits, out long size, out var consumed, 'X') || consumed != digits.Length)
        {
            throw new Http1UpstreamException("an invalid chunk size");
        }

        return size;
    }

    private enum HopHeader
    {
        None,
        ContentLength,
        TransferEncoding,
        Connection,
        Other,
    }

    /// <summary>Response headers that describe this hop only (RFC 9110 section 7.6.1) and are not copied.</summary>
    private static HopHeader Hop(ReadOnlySpan<byte> name) => name.Length switch
    {
        2 when Ascii.EqualsIgnoreCase(name, "TE"u8) => HopHeader.Other,
        7 when Ascii.EqualsIgnoreCase(name, "Upgrade"u8) || Ascii.EqualsIgnoreCase(name, "Trailer"u8) => HopHeader.Other,
        10 when Ascii.EqualsIgnoreCase(name, "Connection"u8) => HopHeader.Connection,
        10 when Ascii.EqualsIgnoreCase(name, "Keep-Alive"u8) => HopHeader.Other,
        14 when Ascii.EqualsIgnoreCase(name, "Content-Length"u8) => HopHeader.ContentLength,
        16 when Ascii.EqualsIgnoreCase(name, "Proxy-Connection"u8) => HopHeader.Other,
        17 when Ascii.EqualsIgnoreCase(name, "Transfer-Encoding"u8) => HopHeader.TransferEncoding,
        _ => HopHeader.None,
    };

    /// <summary>Request headers not copied: this hop's, plus the ones this path writes itself.</summary>
    private static bool SkipRequestHeader(string name) => name.Length switch
    {
        2 => string.Equals(name, "TE", StringComparison.OrdinalIgnoreCase),
        4 => string.Equals(name, HeaderNames.Host, StringComparison.OrdinalIgnoreCase),
        7 => string.Equals(name, HeaderNames.Upgrade, StringComparison.OrdinalIgnoreCase) || string.Equals(name, HeaderNames.Trailer, StringComparison.OrdinalIgnoreCase),
        10 => string.Equals(name, HeaderNames.Connection, StringComparison.OrdinalIgnoreCase) || string.Equals(name, HeaderNames.KeepAlive, StringComparison.OrdinalIgnoreCase),
        14 => string.Equals(name, HeaderNames.ContentLength, StringComparison.OrdinalIgnoreCase) || string.Equals(name, "HTTP2-Settings", StringComparison.OrdinalIgnoreCase),
        16 => string.Equals(name, HeaderNames.ProxyConnection, StringComparison.OrdinalIgnoreCase),
        17 => string.Equals(name, HeaderNames.TransferEncoding, StringComparison.OrdinalIgnoreCase),
        _ => name.Length > 0 && name[0] == ':',
    };

    private static int ParseStatus(ReadOnlySpan<byte> head, out bool http10)
    {
        // HTTP/1.x SP 3DIGIT SP reason
        if (head.Length < 12 || !head.StartsWith("HTTP/1."u8) || head[8] != (byte)' '
            || !Utf8Parser.TryParse(head.Slice(9, 3), out int status, out var consumed) || consumed != 3 || status < 100)
        {
            throw new Http1UpstreamException("a malformed status line");
        }

        http10 = head[7] == (byte)'0';
        return status;
    }

    /// <summary>Copies the end-to-end headers onto the response and returns how its body is framed.</summary>
    internal static Framing CopyHeaders(Http1Connection connection, ReadOnlySpan<byte> head, HttpResponse response, int status, bool isHead, out long length, out bool close)
    {
        response.StatusCode = status;
        var headers = response.Headers;
        length = -1;
        close = false;
        var chunked = false;
        var otherCoding = false;
        var rest = head[(head.IndexOf("\r\n"u8) + 2)..];
        while (!rest.IsEmpty)
        {
            var end = rest.IndexOf("\r\n"u8);
            var line = rest[..end];
            rest = rest[(end + 2)..];
            var colon = line.IndexOf((byte)':');
            if (colon <= 0 || line[0] is (byte)' ' or (byte)'\t')
            {
                // No name, or an obsolete folded line (RFC 9112 section 5.2 lets a proxy reject it).
                throw new Http1UpstreamException("a malformed response header line");
            }

            var name = line[..colon];
            var value = line[(colon + 1)..].Trim(" \t"u8);
            switch (Hop(name))
            {
                case HopHeader.ContentLength:
                    if (!Utf8Parser.TryParse(value, out long parsed, out var consumed) || consumed != value.Length || parsed < 0 || (length >= 0 && length != parsed))
                    {
                        throw new Http1UpstreamException("an invalid Content-Length");
                    }

                    length = parsed;
                    continue;
                case HopHeader.TransferEncoding:
                    chunked = value.Length >= 7 && Ascii.EqualsIgnoreCase(value[^7..], "chunked"u8);
                    otherCoding |= !chunked;
                    continue;
                case HopHeader.Connection:
                    close |= ContainsToken(value, "close"u8);
                    continue;
                case HopHeader.Other:
                    continue;
            }

            var (key, text) = connection.HeaderStrings(name, value);
            headers[key] = headers.TryGetValue(key, out var existing) ? StringValues.Concat(existing, text) : new StringValues(text);
        }

        if (isHead || status is StatusCodes.Status204NoContent or StatusCodes.Status304NotModified)
        {
            if (length >= 0 && status != StatusCodes.Status204NoContent)
            {
                // HEAD and 304 describe the body they would have had.
                headers.ContentLength = length;
            }

            return Framing.None;
        }

        if (chunked && !otherCoding)
        {
            return Framing.Chunked;
        }

        if (otherCoding || length < 0)
        {
            return Framing.UntilClose;
        }

        response.ContentLength = length;
        return length == 0 ? Framing.None : Framing.Length;
    }

    private static bool ContainsToken(ReadOnlySpan<byte> value, ReadOnlySpan<byte> token)
    {
        foreach (var range in value.Split((byte)','))
        {
            if (Ascii.EqualsIgnoreCase(value[range].Trim(" \t"u8), token))
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>Writes the request line and headers; true in <paramref name="bodySent"/> when a small body went in too.</summary>
    internal static int WriteHead(Http1Connection connection, HttpContext context, RouteTransformer transformer, string authority, out bool bodySent)
    {
        var request = context.Request;
        var length = 0;
        Append(connection, ref length, request.Method);
        Append(connection, ref length, " ");
        var path = transformer.UpstreamPath(request);
        Append(connection, ref length, path.HasValue ? path.ToUriComponent() : "/");
        if (request.QueryString.HasValue)
        {
            Append(connection, ref length, request.QueryString.Value!);
        }

        Append(connection, ref length, " HTTP/1.1\r\nHost: ");
        var host = request.Host.Value;
        Append(connection, ref length, string.IsNullOrEmpty(host) ? authority : host);
        Append(connection, ref length, "\r\n");

        var changes = transformer.ChangesRequestHeaders;
        foreach (var (name, values) in request.Headers)
        {
            if (SkipRequestHeader(name) || (changes && transformer.DropsRequestHeader(name)))
            {
                continue;
            }

            foreach (var value in values)
            {
                AppendHeader(connection, ref length, name, value ?? "");
            }
        }

        if (changes)
        {
            foreach (var (name, value) in transformer.RequestSet)
            {
                AppendHeader(connection, ref length, name, value);
            }

            foreach (var (name, value) in transformer.RequestAdd)
            {
                AppendHeader(connection, ref length, name, value);
            }
        }

        var contentLength = request.ContentLength;
        if (contentLength is { } bodyLength)
        {
            Append(connection, ref length, "Content-Length: ");
            Reserve(connection, length, 24);
            Utf8Formatter.TryFormat(bodyLength, connection.Write.AsSpan(length), out var written);
            length += written;
            Append(connection, ref length, "\r\n");
        }

        Append(connection, ref length, "\r\n");

        // A small body Kestrel already read goes out with the head: one send, as for a GET.
        bodySent = false;
        if (contentLength is > 0 and <= CoalesceBodyBytes && request.BodyReader.TryRead(out var result))
        {
            var body = result.Buffer;
            if (body.Length == contentLength)
            {
                Reserve(connection, length, (int)body.Length);
                body.CopyTo(connection.Write.AsSpan(length));
                length += (int)body.Length;
                bodySent = true;
                request.BodyReader.AdvanceTo(body.End);
            }
            else
            {
                request.BodyReader.AdvanceTo(body.Start);
            }
        }

        return length;
    }

    private static void AppendHeader(Http1Connection connection, ref int length, string name, string value)
    {
        if (value.AsSpan().IndexOfAny('\r', '\n') >= 0)
        {
            // A value that could smuggle a second header or request upstream.
            throw new InvalidOperationException($"the value of request header '{name}' holds a line break");
        }

        Append(connection, ref length, name);
        Append(connection, ref length, ": ");
        Append(connection, ref length, value);
        Append(connection, ref length, "\r\n");
    }

    /// <summary>Writes <paramref name="text"/> as Latin-1, one byte per character, as HTTP/1.1 fields are.</summary>
    private static void Append(Http1Connection connection, ref int length, string text)
    {
        Reserve(connection, length, text.Length);
        length += Encoding.Latin1.GetBytes(text, connection.Write.AsSpan(length));
    }

    private static void Reserve(Http1Connection connection, int used, int more)
    {
        if (connection.Write.Length - used < more)
        {
            connection.GrowWrite(used, used + more);
        }
    }

    private static partial class Log
    {
        [LoggerMessage(3101, LogLevel.Debug, "Upstream {Endpoint}: connecting failed: {Reason}")]
        public static partial void ConnectFailed(ILogger logger, string endpoint, string reason);

        [LoggerMessage(3102, LogLevel.Debug, "Upstream {Endpoint}: an idle keep-alive connection was closed by the peer; retrying on a new one")]
        public static partial void RetryingStale(ILogger logger, string endpoint);

        [LoggerMessage(3103, LogLevel.Debug, "Upstream {Endpoint}: {Error}: {Reason}")]
        public static partial void ExchangeFailed(ILogger logger, string endpoint, string error, string reason);
    }
}
