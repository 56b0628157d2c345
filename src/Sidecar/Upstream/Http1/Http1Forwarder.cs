// Stage 8 for plain HTTP/1.1 upstreams: the request written straight onto a pooled socket, the response parsed back onto Kestrel's.
using System.Buffers;
using System.IO.Pipelines;
using System.Net.Sockets;
using System.Runtime.CompilerServices;
using Microsoft.AspNetCore.Http.Features;
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

    private static readonly SearchValues<byte> HexDigits = SearchValues.Create("0123456789abcdefABCDEF"u8);

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
            // A pooled connection if one is idle and quiet, else a new one.
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
                    // Shaped as YARP reports a failed connect, so the error body and retry policies read both paths alike.
                    return Fail(context, aborted.IsCancellationRequested ? ForwarderError.RequestCanceled : ForwarderError.Request,
                        new HttpRequestException(HttpRequestError.ConnectionError, ex.Message, ex));
                }
            }

            connection.Begin(settings.RequestTimeoutMs);
            var registration = aborted.UnsafeRegister(AbortConnection, connection);
            var phase = Phase.Request;
            try
            {
                // Request head (and a small body Kestrel already holds) in one send; every name and value is checked before it.
                var length = WriteHead(connection, context, transformer, endpoint.Authority, out var bodySent);
                await connection.Socket.SendAsync(connection.Write.AsMemory(0, length), SocketFlags.None).ConfigureAwait(false);
                if (hasBody && !bodySent)
                {
                    // Exactly Content-Length bytes go upstream, whatever the client sends, so the upstream's framing and ours agree.
                    var reader = request.BodyReader;
                    long sent = 0;
                    while (true)
                    {
                        phase = Phase.ClientBody;
                        var result = await reader.ReadAsync().ConfigureAwait(false);
                        var buffer = result.Buffer;
                        if (sent + buffer.Length > contentLength || (result.IsCompleted && sent + buffer.Length < contentLength))
                        {
                            throw new Http1UpstreamException($"the client's body does not match its Content-Length of {contentLength}");
                        }

                        phase = Phase.RequestBody;
                        foreach (var segment in buffer)
                        {
                            await connection.Socket.SendAsync(segment, SocketFlags.None).ConfigureAwait(false);
                        }

                        // A slow upload is activity too, as in YARP's activity timeout.
                        connection.Touch(settings.RequestTimeoutMs);
                        sent += buffer.Length;
                        reader.AdvanceTo(buffer.End);
                        if (sent == contentLength || result.IsCompleted)
                        {
                            break;
                        }
                    }
                }

                // Response head; interim 1xx responses are read past.
                phase = Phase.ResponseHead;
                Framing framing;
                long bodyLength;
                bool reusable;
                var scanned = 0;
                while (true)
                {
                    int headLength;
                    while ((headLength = FindHeadEnd(connection.Read.AsSpan(connection.ReadStart, connection.ReadEnd - connection.ReadStart), ref scanned)) < 0)
                    {
                        if (await FillAsync(connection, MaxResponseHeadBytes).ConfigureAwait(false) == 0)
                        {
                            throw new Http1UpstreamException(connection.ReadEnd == 0 ? "the connection closed before a response" : "the connection closed inside the response head");
                        }
                    }

                    connection.Touch(settings.RequestTimeoutMs);
                    var head = connection.Read.AsSpan(connection.ReadStart, headLength - 2);
                    connection.ReadStart += headLength;
                    scanned = 0;
                    var status = ParseStatus(head, out var http10);
                    if (status < 200)
                    {
                        if (status == StatusCodes.Status101SwitchingProtocols)
                        {
                            throw new Http1UpstreamException("101 Switching Protocols to a request that asked for no upgrade");
                        }

                        continue;
                    }

                    framing = CopyHeaders(connection, head, context.Response, status, isHead, http10, out bodyLength, out reusable);
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

                // The whole body is in Kestrel's pipe: send it now. Kestrel flushes at the end of a
                // response only while its head is unsent, so a body that outgrew one read would
                // otherwise wait for the client's next response. (Before the connection goes back:
                // a flush that throws must not find it in the pool.)
                var clientGone = false;
                if (framing != Framing.None)
                {
                    var flushed = await FlushWrittenAsync(writer).ConfigureAwait(false);
                    clientGone = flushed.IsCompleted || flushed.IsCanceled;
                }

                // Reuse only when the framing ended exactly where the bytes did; anything past it
                // (an extra response, a body on a 204) means the stream is out of step.
                reusable &= connection.ReadStart == connection.ReadEnd;
                registration.Dispose();
                if (reusable && connection.End())
                {
                    pool.Return(connection);
                }
                else
                {
                    connection.Dispose();
                }

                return clientGone ? ForwarderError.ResponseBodyClient : ForwarderError.None;
            }
            catch (Http1RequestRefusedException ex)
            {
                // Nothing was sent: the connection is as good as it was.
                registration.Dispose();
                if (connection.End())
                {
                    pool.Return(connection);
                }
                else
                {
                    connection.Dispose();
                }

                Log.RequestRefused(logger, endpoint.Authority, ex.Message);
                return Fail(context, ForwarderError.Request, ex);
            }
            catch (Exception ex) when (ex is not OutOfMemoryException)
            {
                registration.Dispose();
                var timedOut = connection.TimedOut;
                var receivedAny = connection.ReadEnd > 0;
                var reused = connection.Reused;
                connection.Dispose();
                if (attempt == 0 && reused && !hasBody && !receivedAny && phase is Phase.Request or Phase.ResponseHead
                    && !timedOut && !aborted.IsCancellationRequested)
                {
                    // The peer closed this keep-alive connection just as it was rented; nothing reached the app, so try a fresh one once.
                    Log.RetryingStale(logger, endpoint.Authority);
                    continue;
                }

                var error = Classify(phase, timedOut, aborted.IsCancellationRequested);
                Log.ExchangeFailed(logger, endpoint.Authority, error.ToString(), ex.Message);
                return Fail(context, error, ex);
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

    /// <summary>
    /// Answers as YARP does: 504 on a timeout, 400 on a bad client body, else 502, with no body (the
    /// data path may add one); a started response is aborted. The cause goes on the request's
    /// <see cref="IForwarderErrorFeature"/>, as YARP puts it there, for the error body and retry policies.
    /// </summary>
    private static ForwarderError Fail(HttpContext context, ForwarderError error, Exception exception)
    {
        context.Features.Set<IForwarderErrorFeature>(new ErrorFeature(error, exception));
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

    /// <summary>
    /// Flushes body bytes written and not yet sent; with none, nothing happens, so an empty body
    /// leaves the response unstarted and Kestrel frames it with <c>Content-Length: 0</c>, as on the YARP path.
    /// </summary>
    private static ValueTask<FlushResult> FlushWrittenAsync(PipeWriter writer) =>
        writer.CanGetUnflushedBytes && writer.UnflushedBytes == 0 ? default : writer.FlushAsync();

    /// <summary>The most a Content-Length (or chunk) body asks of the client's pipe per receive.</summary>
    private const int BodyReceiveHint = 64 * 1024;

    /// <summary>What a body read to the connection's close asks per receive: its length is unknown.</summary>
    private const int CloseDelimitedReceiveHint = 16 * 1024;

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
                throw new Http1UpstreamException($"a response head, chunk line or trailer section over {limit} bytes");
            }
        }

        return Received(connection, connection.Socket.ReceiveAsync(connection.Read.AsMemory(connection.ReadEnd), SocketFlags.None));
    }

    /// <summary>
    /// Counts a receive into the read buffer. The socket's <see cref="ValueTask{TResult}"/> may be
    /// backed by a reusable operation, so it is consumed exactly once: read through
    /// <c>Result</c> when already complete (then a new, plain ValueTask carries the count on),
    /// else awaited once. Reading <c>Result</c> and then handing the same ValueTask to an await
    /// throws when the receive completed on another thread just before the check.
    /// </summary>
    internal static ValueTask<int> Received(Http1Connection connection, ValueTask<int> receive)
    {
        if (receive.IsCompletedSuccessfully)
        {
            var received = receive.Result;
            connection.ReadEnd += received;
            return new ValueTask<int>(received);
        }

        return Await(connection, receive);

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
            var flushed = await FlushWrittenAsync(writer).ConfigureAwait(false);
            if (flushed.IsCompleted || flushed.IsCanceled)
            {
                return false;
            }

            // A slow client holding the flush back is not an idle upstream.
            connection.Touch(timeoutMs);

            // Ask the pipe for room for the rest (up to BodyReceiveHint): a 16 KiB body then arrives in one
            // receive and one send instead of four of Kestrel's 4 KiB blocks, as YARP's 64 KiB copier does.
            var memory = writer.GetMemory((int)Math.Min(length, BodyReceiveHint));
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
            var flushed = await FlushWrittenAsync(writer).ConfigureAwait(false);
            if (flushed.IsCompleted || flushed.IsCanceled)
            {
                return false;
            }

            // A slow client holding the flush back is not an idle upstream.
            connection.Touch(timeoutMs);

            var memory = writer.GetMemory(CloseDelimitedReceiveHint);
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
                // Trailer fields up to the empty line, dropped; bounded like a head.
                var trailers = 0;
                int trailer;
                while ((trailer = await ReadLineAsync(connection, writer, timeoutMs).ConfigureAwait(false)) > 0)
                {
                    if ((trailers += trailer + 2) > MaxResponseHeadBytes)
                    {
                        throw new Http1UpstreamException($"a trailer section over {MaxResponseHeadBytes} bytes");
                    }
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
    /// A line must end in CRLF and hold no other CR or NUL: a bare LF is refused at once.
    /// </summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    private static async ValueTask<int> ReadLineAsync(Http1Connection connection, PipeWriter writer, int timeoutMs)
    {
        int end;
        while ((end = connection.Read.AsSpan(connection.ReadStart, connection.ReadEnd - connection.ReadStart).IndexOf((byte)'\n')) < 0)
        {
            if (connection.ReadEnd - connection.ReadStart > MaxChunkLineBytes)
            {
                throw new Http1UpstreamException($"a chunk line over {MaxChunkLineBytes} bytes");
            }

            // Hand the chunks so far to the client before waiting (server-sent events and other streams).
            await FlushWrittenAsync(writer).ConfigureAwait(false);
            connection.Touch(timeoutMs);

            if (await FillAsync(connection, MaxResponseHeadBytes).ConfigureAwait(false) == 0)
            {
                throw new Http1UpstreamException("the connection closed inside a chunked body");
            }

            connection.Touch(timeoutMs);
        }

        var line = connection.Read.AsSpan(connection.ReadStart, end);
        if (end == 0 || line[^1] != (byte)'\r' || line[..^1].IndexOfAny((byte)'\r', (byte)'\0') >= 0)
        {
            throw new Http1UpstreamException("a chunk line not ended by CRLF, or holding CR or NUL");
        }

        connection.ReadStart += end + 1;
        return end - 1;
    }

    /// <summary>chunk-size [BWS ";" chunk-ext] (RFC 9112 section 7.1): hex digits only, extensions ignored.</summary>
    private static long ParseChunkSize(ReadOnlySpan<byte> line)
    {
        var semicolon = line.IndexOf((byte)';');
        var digits = (semicolon < 0 ? line : line[..semicolon]).TrimEnd(" \t"u8);
        if (digits.IsEmpty || digits.Length > 15 || digits.ContainsAnyExcept(HexDigits))
        {
            throw new Http1UpstreamException("an invalid chunk size");
        }

        long size = 0;
        foreach (var digit in digits)
        {
            size = (size << 4) | (long)HexValue(digit);
        }

        return size;
    }

    private static int HexValue(byte digit) => digit <= '9' ? digit - '0' : (digit | 0x20) - 'a' + 10;

    private static partial class Log
    {
        [LoggerMessage(3101, LogLevel.Debug, "Upstream {Endpoint}: connecting failed: {Reason}")]
        public static partial void ConnectFailed(ILogger logger, string endpoint, string reason);

        [LoggerMessage(3102, LogLevel.Debug, "Upstream {Endpoint}: an idle keep-alive connection was closed by the peer; retrying on a new one")]
        public static partial void RetryingStale(ILogger logger, string endpoint);

        [LoggerMessage(3103, LogLevel.Debug, "Upstream {Endpoint}: {Error}: {Reason}")]
        public static partial void ExchangeFailed(ILogger logger, string endpoint, string error, string reason);

        [LoggerMessage(3104, LogLevel.Debug, "Upstream {Endpoint}: the request was not sent: {Reason}")]
        public static partial void RequestRefused(ILogger logger, string endpoint, string reason);
    }

    /// <summary>The failure of one exchange, as YARP's own (internal) feature carries it.</summary>
    private sealed class ErrorFeature(ForwarderError error, Exception exception) : IForwarderErrorFeature
    {
        public ForwarderError Error { get; } = error;

        public Exception? Exception { get; } = exception;
    }
}
