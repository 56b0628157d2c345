// Mesh's HTTP/1.1 client, response side: each refusal with the reason the 502 body names, edge cases of framing and reuse, chunked bodies.
using System.Text;
using Mesh.Sidecar.Upstream;
using Mesh.Sidecar.Upstream.Http1;
using Microsoft.AspNetCore.Http;
using Yarp.ReverseProxy.Forwarder;

namespace Mesh.Sidecar.Tests.Upstream.Http1;

public sealed partial class Http1ForwarderTests
{
    // The reason is what the data path's 502 body tells the user ("endpoint ... failed: <reason>").
    [Theory]
    [InlineData("\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", "a malformed status line")]
    [InlineData("HTTP/1.1 20\r\n\r\n", "a malformed status line")]
    [InlineData("HTTP/1.1 2x0 OK\r\nContent-Length: 0\r\n\r\n", "a malformed status line")]
    [InlineData("HTTP/1.1 200 OK\nContent-Length: 0\n\n", "a response head line ended by a bare LF")]
    [InlineData("HTTP/1.1 200 OK\r\nno colon here\r\n\r\n", "a malformed response header line")]
    [InlineData("HTTP/1.1 200 OK\r\n: no name\r\nContent-Length: 0\r\n\r\n", "a malformed response header line")]
    [InlineData("HTTP/1.1 200 OK\r\nx-nul: \0b\r\nContent-Length: 0\r\n\r\n", "a response header value holding CR or NUL")]
    [InlineData("HTTP/1.1 200 OK\r\nContent-Length: 0\r\nContent-Length: 0\r\n\r\n", "an invalid or repeated Content-Length")]
    [InlineData("HTTP/1.1 200 OK\r\nContent-Length: \r\n\r\n", "an invalid or repeated Content-Length")]
    [InlineData("HTTP/1.1 200 OK\r\nContent-Length: 1234567890123456789\r\n\r\n", "an invalid or repeated Content-Length")]
    [InlineData("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n", "a transfer coding after chunked")]
    [InlineData("HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", "Transfer-Encoding in an HTTP/1.0 response")]
    [InlineData("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nContent-Length: 0\r\n\r\n", "Content-Length with a Transfer-Encoding that does not end in chunked")]
    [InlineData("HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\n\r\n", "101 Switching Protocols to a request that asked for no upgrade")]
    public async Task SendAsync_MalformedHead_Returns502NamingTheReason(string reply, string reason)
    {
        await using var upstream = new ScriptedUpstream(_ => new ScriptedReply(reply));
        var context = Context();

        var error = await _forwarder.SendAsync(context, Endpoint(upstream), Settings, RouteTransformer.None);

        Assert.Equal(ForwarderError.Request, error);
        Assert.Equal(502, context.Response.StatusCode);
        Assert.Equal(reason, Reason(context));
    }

    [Fact]
    public async Task SendAsync_ResponseHeadOverTheLimit_NamesTheLimit()
    {
        var huge = "HTTP/1.1 200 OK\r\nx-huge: " + new string('h', Http1Forwarder.MaxResponseHeadBytes) + "\r\nContent-Length: 0\r\n\r\n";
        await using var upstream = new ScriptedUpstream(_ => new ScriptedReply(huge));
        var context = Context();

        Assert.Equal(ForwarderError.Request, await _forwarder.SendAsync(context, Endpoint(upstream), Settings, RouteTransformer.None));

        Assert.Equal($"a response head, chunk line or trailer section over {Http1Forwarder.MaxResponseHeadBytes} bytes", Reason(context));
    }

    [Theory]
    [InlineData("HTTP/1.1 200 OK\r\nContent-Length: 000000000000000002\r\n\r\nok", "ok")]
    [InlineData("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n9\r\n123456789\r\n0\r\n\r\n", "123456789")]
    [InlineData("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n00000000000000a\r\n0123456789\r\n0\r\n\r\n", "0123456789")]
    [InlineData("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nF \t;name=\"v\"\r\n0123456789abcde\r\n0\r\n\r\n", "0123456789abcde")]
    public async Task SendAsync_LongestValidLengthsAndEveryHexDigit_AreAccepted(string reply, string body)
    {
        await using var upstream = new ScriptedUpstream(_ => new ScriptedReply(reply));
        var endpoint = Endpoint(upstream);
        var context = Context();

        Assert.Equal(ForwarderError.None, await _forwarder.SendAsync(context, endpoint, Settings, RouteTransformer.None));

        Assert.Equal(body, await BodyAsync(context));
        Assert.Equal(1, endpoint.Http1Pool.IdleCount);
    }

    [Fact]
    public async Task SendAsync_Http10ResponseWithLength_IsCopiedAndNotReused()
    {
        await using var upstream = new ScriptedUpstream(_ => new ScriptedReply("HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok"));
        var endpoint = Endpoint(upstream);
        var context = Context();

        Assert.Equal(ForwarderError.None, await _forwarder.SendAsync(context, endpoint, Settings, RouteTransformer.None));

        Assert.Equal("ok", await BodyAsync(context));
        Assert.Equal(0, endpoint.Http1Pool.IdleCount);
        await upstream.NextClosedAsync();
    }

    [Theory]
    [InlineData("Connection: close\r\nConnection: close\r\nContent-Length: 2", false)]
    [InlineData("Connection: keep-alive, close\r\nContent-Length: 2", false)]
    [InlineData("Connection: keep-alive\r\nContent-Length: 2", true)]
    [InlineData("Connection: keep-alive, x-other\r\nContent-Length: 2", true)]
    [InlineData("Transfer-Encoding: chunked\r\nContent-Length: 0", false)]
    public async Task SendAsync_ConnectionAndFraming_DecideReuse(string fields, bool reused)
    {
        var body = fields.Contains("chunked", StringComparison.Ordinal) ? "2\r\nok\r\n0\r\n\r\n" : "ok";
        await using var upstream = new ScriptedUpstream(_ => new ScriptedReply($"HTTP/1.1 200 OK\r\n{fields}\r\n\r\n{body}"));
        var endpoint = Endpoint(upstream);

        for (var i = 0; i < 2; i++)
        {
            var context = Context();
            Assert.Equal(ForwarderError.None, await _forwarder.SendAsync(context, endpoint, Settings, RouteTransformer.None));
            Assert.Equal("ok", await BodyAsync(context));
        }

        Assert.Equal(reused ? 1 : 2, upstream.Connections);
    }

    [Fact]
    public async Task SendAsync_ResponseReadToTheClose_LeavesNothingIdle()
    {
        await using var upstream = new ScriptedUpstream(_ => new ScriptedReply("HTTP/1.1 200 OK\r\n\r\nall of it", Close: true));
        var endpoint = Endpoint(upstream);
        var context = Context();

        Assert.Equal(ForwarderError.None, await _forwarder.SendAsync(context, endpoint, Settings, RouteTransformer.None));

        Assert.Equal("all of it", await BodyAsync(context));
        Assert.Equal(0, endpoint.Http1Pool.IdleCount);
    }

    [Fact]
    public async Task SendAsync_ResponseReadToTheCloseInSeveralReads_IsCopiedWhole()
    {
        var rest = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var upstream = new ScriptedUpstream(_ => new ScriptedReply("HTTP/1.1 200 OK\r\n\r\nfirst,", Close: true, Later: rest.Task));
        var context = Context();
        var client = new SignallingStream("first,");
        context.Response.Body = client;

        var sending = _forwarder.SendAsync(context, Endpoint(upstream), Settings, RouteTransformer.None).AsTask();
        // The first part reaches the client before the rest is sent, so the rest comes in a later read.
        await client.Seen.WaitAsync(TimeSpan.FromSeconds(20));
        rest.SetResult("second");

        Assert.Equal(ForwarderError.None, await sending.WaitAsync(TimeSpan.FromSeconds(20)));
        await context.Response.BodyWriter.FlushAsync();
        Assert.Equal("first,second", Encoding.ASCII.GetString(client.ToArray()));
    }

    [Fact]
    public async Task SendAsync_UpgradeTrailerAndKeepAliveHeaders_AreNotCopied()
    {
        await using var upstream = new ScriptedUpstream(_ => new ScriptedReply(
            "HTTP/1.1 200 OK\r\nUpgrade: h2c\r\nTrailer: x-sum\r\nTE: trailers\r\nProxy-Connection: keep-alive\r\nx-kept: yes\r\nContent-Length: 2\r\n\r\nok"));
        var context = Context();

        Assert.Equal(ForwarderError.None, await _forwarder.SendAsync(context, Endpoint(upstream), Settings, RouteTransformer.None));

        Assert.False(context.Response.Headers.ContainsKey("Upgrade"));
        Assert.False(context.Response.Headers.ContainsKey("Trailer"));
        Assert.False(context.Response.Headers.ContainsKey("TE"));
        Assert.False(context.Response.Headers.ContainsKey("Proxy-Connection"));
        Assert.Equal("yes", context.Response.Headers["x-kept"]);
    }

    [Fact]
    public async Task SendAsync_MoreDistinctHeadersThanTheCacheHolds_CopiesEveryOne()
    {
        // Two responses of 20 names each on one connection: the cache of header strings fills and replaces in turn.
        var reply = new StringBuilder("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n");
        for (var i = 0; i < 20; i++)
        {
            reply.Append("x-h").Append(i).Append(": v").Append(i).Append("\r\n");
        }

        await using var upstream = new ScriptedUpstream(_ => new ScriptedReply(reply.Append("\r\nok").ToString()));
        var endpoint = Endpoint(upstream);
        for (var round = 0; round < 2; round++)
        {
            var context = Context();
            Assert.Equal(ForwarderError.None, await _forwarder.SendAsync(context, endpoint, Settings, RouteTransformer.None));
            for (var i = 0; i < 20; i++)
            {
                Assert.Equal($"v{i}", context.Response.Headers[$"x-h{i}"]);
            }
        }

        Assert.Equal(1, upstream.Connections);
    }

    [Fact]
    public async Task SendAsync_NotModifiedWithZeroLength_KeepsTheLength()
    {
        await using var upstream = new ScriptedUpstream(_ => new ScriptedReply("HTTP/1.1 304 Not Modified\r\nContent-Length: 0\r\n\r\n"));
        var context = Context();

        Assert.Equal(ForwarderError.None, await _forwarder.SendAsync(context, Endpoint(upstream), Settings, RouteTransformer.None));

        Assert.Equal(304, context.Response.StatusCode);
        Assert.Equal(0, context.Response.ContentLength);
    }

    [Fact]
    public async Task SendAsync_HeadRequestAnsweredWithoutLength_HasNoLengthAndNoBody()
    {
        await using var upstream = new ScriptedUpstream(_ => new ScriptedReply("HTTP/1.1 200 OK\r\nx-a: 1\r\n\r\n"));
        var endpoint = Endpoint(upstream);
        var context = Context(method: "HEAD");

        Assert.Equal(ForwarderError.None, await _forwarder.SendAsync(context, endpoint, Settings, RouteTransformer.None));

        Assert.Null(context.Response.ContentLength);
        Assert.Equal("", await BodyAsync(context));
        Assert.Equal(1, endpoint.Http1Pool.IdleCount);
    }

    [Theory]
    [InlineData("5\nhello\r\n0\r\n\r\n", "a chunk line not ended by CRLF, or holding CR or NUL")]
    [InlineData("\n", "a chunk line not ended by CRLF, or holding CR or NUL")]
    [InlineData("\r5\r\nhello\r\n0\r\n\r\n", "a chunk line not ended by CRLF, or holding CR or NUL")]
    [InlineData("5;a=\0\r\nhello\r\n0\r\n\r\n", "a chunk line not ended by CRLF, or holding CR or NUL")]
    [InlineData("\r\n5\r\nhello\r\n0\r\n\r\n", "an invalid chunk size")]
    [InlineData("0000000000000005\r\nhello\r\n0\r\n\r\n", "an invalid chunk size")]
    [InlineData("3\r\nhello\r\n0\r\n\r\n", "chunk data longer than its size")]
    public async Task SendAsync_MalformedChunkedBody_AbortsNamingTheReason(string body, string reason)
    {
        // The rest never comes: a refusal must not wait for it.
        var never = new TaskCompletionSource<string>();
        await using var upstream = new ScriptedUpstream(_ => new ScriptedReply("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + body, Later: never.Task));
        var context = Context();

        var error = await _forwarder.SendAsync(context, Endpoint(upstream), Settings, RouteTransformer.None).AsTask().WaitAsync(TimeSpan.FromSeconds(20));

        Assert.Equal(ForwarderError.ResponseBodyDestination, error);
        Assert.True(Lifetime(context).Aborted);
        Assert.Equal(reason, Reason(context));
    }

    [Theory]
    [InlineData("Content-Length: 5\r\n\r\nhel", "the connection closed with 2 body bytes still to come")]
    [InlineData("Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n", "the connection closed inside a chunked body")]
    public async Task SendAsync_UpstreamClosesInsideTheBody_AbortsNamingTheReason(string rest, string reason)
    {
        await using var upstream = new ScriptedUpstream(_ => new ScriptedReply("HTTP/1.1 200 OK\r\n" + rest, Close: true));
        var context = Context();

        Assert.Equal(ForwarderError.ResponseBodyDestination, await _forwarder.SendAsync(context, Endpoint(upstream), Settings, RouteTransformer.None));

        Assert.True(Lifetime(context).Aborted);
        Assert.Equal(reason, Reason(context));
    }

    [Fact]
    public async Task SendAsync_ChunkLineOverTheLimit_Aborts()
    {
        var never = new TaskCompletionSource<string>();
        await using var upstream = new ScriptedUpstream(_ => new ScriptedReply(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;" + new string('e', 9000), Later: never.Task));
        var context = Context();

        var error = await _forwarder.SendAsync(context, Endpoint(upstream), Settings, RouteTransformer.None).AsTask().WaitAsync(TimeSpan.FromSeconds(20));

        Assert.Equal(ForwarderError.ResponseBodyDestination, error);
        Assert.Equal("a chunk line over 8192 bytes", Reason(context));
    }

    [Fact]
    public async Task SendAsync_ChunkLineArrivingLateAfterALargeHead_IsWaitedFor()
    {
        // The head leaves the unread bytes far into the buffer; only the unread ones count against the chunk-line limit.
        var rest = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var upstream = new ScriptedUpstream(_ => new ScriptedReply(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nx-pad: " + new string('p', 9000) + "\r\n\r\n5", Later: rest.Task));
        var context = Context();

        var sending = _forwarder.SendAsync(context, Endpoint(upstream), Settings, RouteTransformer.None).AsTask();
        await upstream.NextRequestAsync();
        rest.SetResult("\r\nhello\r\n0\r\n\r\n");

        Assert.Equal(ForwarderError.None, await sending.WaitAsync(TimeSpan.FromSeconds(20)));
        Assert.Equal("hello", await BodyAsync(context));
    }

    [Fact]
    public async Task SendAsync_ManyTinyChunksBeyondTheBuffer_AreAllCopied()
    {
        // 50,000 one-byte chunks (300 KB of framing) go through a buffer that is compacted, never grown past its 64 KiB limit.
        var body = new StringBuilder("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
        for (var i = 0; i < 50_000; i++)
        {
            body.Append("1\r\n").Append((char)('a' + (i % 26))).Append("\r\n");
        }

        await using var upstream = new ScriptedUpstream(_ => new ScriptedReply(body.Append("0\r\n\r\n").ToString()));
        var context = Context();

        Assert.Equal(ForwarderError.None, await _forwarder.SendAsync(context, Endpoint(upstream), Settings, RouteTransformer.None));

        var received = await BodyAsync(context);
        Assert.Equal(50_000, received.Length);
        for (var i = 0; i < received.Length; i++)
        {
            Assert.Equal((char)('a' + (i % 26)), received[i]);
        }
    }

    [Theory]
    [InlineData(1022, true)]
    [InlineData(1023, false)]
    public async Task SendAsync_TrailerSection_IsTakenUpToTheLimitAndRefusedPastIt(int lineLength, bool taken)
    {
        // 64 trailer lines of 1022 bytes plus CRLF are exactly 64 KiB; one byte more per line is over.
        var trailers = new StringBuilder();
        for (var i = 0; i < 64; i++)
        {
            trailers.Append("x-t: ").Append('t', lineLength - 5).Append("\r\n");
        }

        await using var upstream = new ScriptedUpstream(_ => new ScriptedReply(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n" + trailers + "\r\n"));
        var context = Context();

        var error = await _forwarder.SendAsync(context, Endpoint(upstream), Settings, RouteTransformer.None);

        if (taken)
        {
            Assert.Equal(ForwarderError.None, error);
            Assert.Equal("ok", await BodyAsync(context));
        }
        else
        {
            Assert.Equal(ForwarderError.ResponseBodyDestination, error);
            Assert.Equal($"a trailer section over {Http1Forwarder.MaxResponseHeadBytes} bytes", Reason(context));
        }
    }

    [Theory]
    [InlineData("Content-Length: 10\r\n\r\nhello")]
    [InlineData("\r\nhello")]
    [InlineData("Transfer-Encoding: chunked\r\n\r\na\r\nhello")]
    public async Task SendAsync_ClientStopsReadingMidBody_StopsAtOnceAndDoesNotKeepTheConnection(string rest)
    {
        // The rest of the body never comes: the forwarder must notice the client left without waiting for it.
        var never = new TaskCompletionSource<string>();
        await using var upstream = new ScriptedUpstream(_ => new ScriptedReply("HTTP/1.1 200 OK\r\n" + rest, Later: never.Task));
        var context = Context();
        context.Features.Set<Microsoft.AspNetCore.Http.Features.IHttpResponseBodyFeature>(new PipeResponseBody(new GoneClientWriter()));
        var endpoint = Endpoint(upstream);

        var error = await _forwarder.SendAsync(context, endpoint, Settings, RouteTransformer.None).AsTask().WaitAsync(TimeSpan.FromSeconds(20));

        Assert.Equal(ForwarderError.ResponseBodyClient, error);
        Assert.Equal(0, endpoint.Http1Pool.IdleCount);
    }

    /// <summary>The innermost exception's message: what the data path's 502 body gives as the reason.</summary>
    private static string Reason(HttpContext context)
    {
        var exception = context.Features.Get<IForwarderErrorFeature>()?.Exception;
        Assert.NotNull(exception);
        while (exception.InnerException is not null)
        {
            exception = exception.InnerException;
        }

        return exception.Message;
    }

    /// <summary>Kestrel's response writer once its client has gone: it takes bytes and reports every flush as completed.</summary>
    private sealed class GoneClientWriter : System.IO.Pipelines.PipeWriter
    {
        private byte[] _buffer = new byte[4096];
        private long _unflushed;

        public override bool CanGetUnflushedBytes => true;

        public override long UnflushedBytes => _unflushed;

        public override void Advance(int bytes) => _unflushed += bytes;

        public override void CancelPendingFlush()
        {
        }

        public override void Complete(Exception? exception = null)
        {
        }

        public override ValueTask<System.IO.Pipelines.FlushResult> FlushAsync(CancellationToken cancellationToken = default)
        {
            _unflushed = 0;
            return new(new System.IO.Pipelines.FlushResult(isCanceled: false, isCompleted: true));
        }

        public override Memory<byte> GetMemory(int sizeHint = 0)
        {
            if (_buffer.Length < sizeHint)
            {
                _buffer = new byte[sizeHint];
            }

            return _buffer;
        }

        public override Span<byte> GetSpan(int sizeHint = 0) => GetMemory(sizeHint).Span;
    }

    /// <summary>A response body feature over <paramref name="writer"/>, as Kestrel's response is.</summary>
    private sealed class PipeResponseBody(System.IO.Pipelines.PipeWriter writer) : Microsoft.AspNetCore.Http.Features.IHttpResponseBodyFeature
    {
        public Stream Stream => writer.AsStream();

        public System.IO.Pipelines.PipeWriter Writer => writer;

        public void DisableBuffering()
        {
        }

        public Task StartAsync(CancellationToken cancellationToken = default) => Task.CompletedTask;

        public Task SendFileAsync(string path, long offset, long? count, CancellationToken cancellationToken = default) => throw new NotSupportedException();

        public Task CompleteAsync() => writer.CompleteAsync().AsTask();
    }
}
