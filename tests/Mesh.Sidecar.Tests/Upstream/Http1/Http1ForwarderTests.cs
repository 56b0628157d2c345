// Mesh's HTTP/1.1 upstream client against a scripted loopback upstream: framing, reuse, retries, errors, transforms.
using System.Globalization;
using System.Text;
using System.Threading.Channels;
using Mesh.Discovery;
using Mesh.Sidecar.Configuration;
using Mesh.Sidecar.Endpoints;
using Mesh.Sidecar.Upstream;
using Mesh.Sidecar.Upstream.Http1;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;
using Yarp.ReverseProxy.Forwarder;

namespace Mesh.Sidecar.Tests.Upstream.Http1;

public sealed partial class Http1ForwarderTests : IDisposable
{
    private static readonly Http1Settings Settings = new(ConnectTimeoutMs: 5000, RequestTimeoutMs: 20_000);

    private readonly Http1Forwarder _forwarder = new(NullLogger<Http1Forwarder>.Instance);
    private readonly Http1PoolSet _pools = new();

    public void Dispose() => _pools.Dispose();

    [Fact]
    public async Task SendAsync_ContentLengthResponse_CopiesStatusHeadersAndBody()
    {
        await using var upstream = new ScriptedUpstream(_ => new ScriptedReply("HTTP/1.1 201 Created\r\nContent-Length: 5\r\nX-Reply: yes\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\n\r\nhello"));
        var context = Context(path: "/orders/7", query: "?a=1&b=%20");
        context.Request.Headers.Connection = "close";
        context.Request.Headers["x-custom"] = "abc";

        var error = await _forwarder.SendAsync(context, Endpoint(upstream), Settings, RouteTransformer.None);

        Assert.Equal(ForwarderError.None, error);
        Assert.Equal(201, context.Response.StatusCode);
        Assert.Equal("hello", await BodyAsync(context));
        Assert.Equal(5, context.Response.ContentLength);
        Assert.Equal("yes", context.Response.Headers["X-Reply"]);
        Assert.False(context.Response.Headers.ContainsKey("Connection"));
        Assert.False(context.Response.Headers.ContainsKey("Keep-Alive"));
        var request = await upstream.NextRequestAsync();
        Assert.Equal("GET /orders/7?a=1&b=%20 HTTP/1.1", request.RequestLine);
        Assert.Equal(["example.test"], request.Header("Host"));
        Assert.Equal(["abc"], request.Header("x-custom"));
        Assert.Empty(request.Header("Connection"));
    }

    [Fact]
    public async Task SendAsync_ChunkedResponse_DecodesChunksAndDropsTrailers()
    {
        const string Chunked = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: x-sum\r\n\r\n5;ext=1\r\nhello\r\n1\r\n \r\nA\r\nworld12345\r\n0\r\nx-sum: 42\r\n\r\n";
        await using var upstream = new ScriptedUpstream(_ => new ScriptedReply(Chunked));
        var endpoint = Endpoint(upstream);

        var first = Context();
        Assert.Equal(ForwarderError.None, await _forwarder.SendAsync(first, endpoint, Settings, RouteTransformer.None));
        var second = Context();
        Assert.Equal(ForwarderError.None, await _forwarder.SendAsync(second, endpoint, Settings, RouteTransformer.None));

        Assert.Equal("hello world12345", await BodyAsync(first));
        Assert.Equal("hello world12345", await BodyAsync(second));
        Assert.Null(first.Response.ContentLength);
        Assert.False(first.Response.Headers.ContainsKey("Transfer-Encoding"));
        Assert.False(first.Response.Headers.ContainsKey("x-sum"));
        Assert.Equal(1, upstream.Connections);
    }

    [Fact]
    public async Task SendAsync_ChunkedStream_ReachesTheClientBeforeTheNextChunk()
    {
        var rest = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var upstream = new ScriptedUpstream(_ => new ScriptedReply("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n6\r\nevent1\r\n", Later: rest.Task));
        var context = Context();
        var client = new SignallingStream("event1");
        context.Response.Body = client;

        var sending = _forwarder.SendAsync(context, Endpoint(upstream), Settings, RouteTransformer.None).AsTask();

        // The first event reaches the client while upstream still holds the rest back.
        await client.Seen.WaitAsync(TimeSpan.FromSeconds(20));
        Assert.False(sending.IsCompleted);
        rest.SetResult("6\r\nevent2\r\n0\r\n\r\n");
        Assert.Equal(ForwarderError.None, await sending.WaitAsync(TimeSpan.FromSeconds(20)));
        await context.Response.BodyWriter.FlushAsync();
        Assert.Equal("event1event2", Encoding.ASCII.GetString(client.ToArray()));
    }

    [Fact]
    public async Task SendAsync_SequentialRequests_ReuseOneConnection()
    {
        await using var upstream = new ScriptedUpstream(_ => new ScriptedReply("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"));
        var endpoint = Endpoint(upstream);

        for (var i = 0; i < 5; i++)
        {
            var context = Context();
            Assert.Equal(ForwarderError.None, await _forwarder.SendAsync(context, endpoint, Settings, RouteTransformer.None));
            Assert.Equal("ok", await BodyAsync(context));
        }

        Assert.Equal(1, upstream.Connections);
        Assert.Equal(1, endpoint.Http1Pool.IdleCount);
    }

    [Fact]
    public async Task SendAsync_ConnectionCloseResponse_DoesNotReuseTheConnection()
    {
        await using var upstream = new ScriptedUpstream(_ => new ScriptedReply("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok", Close: true));
        var endpoint = Endpoint(upstream);

        Assert.Equal(ForwarderError.None, await _forwarder.SendAsync(Context(), endpoint, Settings, RouteTransformer.None));
        Assert.Equal(ForwarderError.None, await _forwarder.SendAsync(Context(), endpoint, Settings, RouteTransformer.None));

        Assert.Equal(2, upstream.Connections);
        Assert.Equal(0, endpoint.Http1Pool.IdleCount);
    }

    [Fact]
    public async Task SendAsync_ResponseWithoutLength_ReadsUntilClose()
    {
        await using var upstream = new ScriptedUpstream(_ => new ScriptedReply("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nall of it", Close: true));
        var context = Context();

        Assert.Equal(ForwarderError.None, await _forwarder.SendAsync(context, Endpoint(upstream), Settings, RouteTransformer.None));

        Assert.Equal("all of it", await BodyAsync(context));
        Assert.Equal("text/plain", context.Response.ContentType);
    }

    [Fact]
    public async Task SendAsync_PooledConnectionClosedByPeer_RetriesOnANewConnection()
    {
        // The upstream closes after each reply without saying so, as a server whose keep-alive timer fired would.
        await using var upstream = new ScriptedUpstream(_ => new ScriptedReply("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", Close: true));
        var endpoint = Endpoint(upstream);
        Assert.Equal(ForwarderError.None, await _forwarder.SendAsync(Context(), endpoint, Settings, RouteTransformer.None));
        await upstream.NextClosedAsync();
        Assert.Equal(1, endpoint.Http1Pool.IdleCount);

        var context = Context();
        var error = await _forwarder.SendAsync(context, endpoint, Settings, RouteTransformer.None);

        Assert.Equal(ForwarderError.None, error);
        Assert.Equal("ok", await BodyAsync(context));
        Assert.Equal(2, upstream.Connections);
    }

    [Theory]
    [InlineData(11)]
    [InlineData(300_000)]
    public async Task SendAsync_RequestBody_ForwardsBodyWithItsLength(int size)
    {
        await using var upstream = new ScriptedUpstream(_ => new ScriptedReply("HTTP/1.1 204 No Content\r\n\r\n"));
        var body = new string('x', size - 1) + "!";
        var context = Context(method: "POST", body: body);

        var error = await _forwarder.SendAsync(context, Endpoint(upstream), Settings, RouteTransformer.None);

        Assert.Equal(ForwarderError.None, error);
        Assert.Equal(204, context.Response.StatusCode);
        var request = await upstream.NextRequestAsync();
        Assert.StartsWith("POST / HTTP/1.1", request.RequestLine, StringComparison.Ordinal);
        Assert.Equal([size.ToString(System.Globalization.CultureInfo.InvariantCulture)], request.Header("Content-Length"));
        Assert.Equal(body, request.Body);
    }

    [Fact]
    public async Task SendAsync_HeadsLargerThanTheBuffers_GrowThem()
    {
        var bigValue = new string('v', 3000);
        var response = new StringBuilder("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n");
        for (var i = 0; i < 8; i++)
        {
            response.Append(CultureInfo.InvariantCulture, $"x-big-{i}: {bigValue}\r\n");
        }

        await using var upstream = new ScriptedUpstream(_ => new ScriptedReply(response.Append("\r\nok").ToString()));
        var context = Context();
        for (var i = 0; i < 4; i++)
        {
            context.Request.Headers[$"x-req-{i}"] = bigValue;
        }

        Assert.Equal(ForwarderError.None, await _forwarder.SendAsync(context, Endpoint(upstream), Settings, RouteTransformer.None));

        Assert.Equal("ok", await BodyAsync(context));
        Assert.Equal(bigValue, context.Response.Headers["x-big-7"]);
        Assert.Equal([bigValue], (await upstream.NextRequestAsync()).Header("x-req-3"));
    }

    [Fact]
    public async Task SendAsync_ResponseHeadOverTheLimit_Returns502()
    {
        var huge = "HTTP/1.1 200 OK\r\nx-huge: " + new string('h', Http1Forwarder.MaxResponseHeadBytes) + "\r\nContent-Length: 0\r\n\r\n";
        await using var upstream = new ScriptedUpstream(_ => new ScriptedReply(huge));
        var context = Context();

        Assert.Equal(ForwarderError.Request, await _forwarder.SendAsync(context, Endpoint(upstream), Settings, RouteTransformer.None));
        Assert.Equal(502, context.Response.StatusCode);
    }

    [Fact]
    public async Task SendAsync_InterimResponses_AreReadPast()
    {
        await using var upstream = new ScriptedUpstream(_ => new ScriptedReply("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nbody"));
        var context = Context();

        Assert.Equal(ForwarderError.None, await _forwarder.SendAsync(context, Endpoint(upstream), Settings, RouteTransformer.None));

        Assert.Equal(200, context.Response.StatusCode);
        Assert.Equal("body", await BodyAsync(context));
        Assert.False(context.Response.Headers.ContainsKey("Link"));
    }

    [Fact]
    public async Task SendAsync_HeadRequest_ReadsNoBodyAndKeepsTheConnection()
    {
        await using var upstream = new ScriptedUpstream(request => new ScriptedReply(request.RequestLine.StartsWith("HEAD", StringComparison.Ordinal)
            ? "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n"
            : "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nget"));
        var endpoint = Endpoint(upstream);
        var head = Context(method: "HEAD");

        Assert.Equal(ForwarderError.None, await _forwarder.SendAsync(head, endpoint, Settings, RouteTransformer.None));
        var get = Context();
        Assert.Equal(ForwarderError.None, await _forwarder.SendAsync(get, endpoint, Settings, RouteTransformer.None));

        Assert.Equal(100, head.Response.ContentLength);
        Assert.Equal("", await BodyAsync(head));
        Assert.Equal("get", await BodyAsync(get));
        Assert.Equal(1, upstream.Connections);
    }

    [Fact]
    public async Task SendAsync_NothingListening_Returns502()
    {
        int port;
        await using (var closed = new ScriptedUpstream(_ => new ScriptedReply(null)))
        {
            port = closed.Port;
        }

        var context = Context();
        var error = await _forwarder.SendAsync(context, new EndpointState(new ServiceEndpoint("127.0.0.1", port), "http", _pools), Settings, RouteTransformer.None);

        Assert.Equal(ForwarderError.Request, error);
        Assert.Equal(502, context.Response.StatusCode);
    }

    [Fact]
    public async Task SendAsync_UpstreamNeverAnswers_Returns504()
    {
        await using var upstream = new ScriptedUpstream(_ => new ScriptedReply(null));
        var context = Context();

        var error = await _forwarder.SendAsync(context, Endpoint(upstream), Settings with { RequestTimeoutMs = 200 }, RouteTransformer.None);

        Assert.Equal(ForwarderError.RequestTimedOut, error);
        Assert.Equal(504, context.Response.StatusCode);
        await upstream.NextClosedAsync();
    }

    [Fact]
    public async Task SendAsync_SlowUploadLongerThanTheTimeout_CountsAsActivity()
    {
        // Four pieces 800 ms apart on a fake clock: 3.2 s in all against a 1 s activity timeout, each gap inside it.
        var time = new FakeTimeProvider();
        using var pools = new Http1PoolSet(time: time);
        await using var upstream = new ScriptedUpstream(_ => new ScriptedReply("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"));
        var body = new GatedStream(pieces: 4, size: 100);
        var context = Context(method: "POST");
        context.Request.Body = body;
        context.Request.ContentLength = 400;
        context.Features.Set<IHttpRequestBodyDetectionFeature>(new BodyDetection(canHaveBody: true));
        var endpoint = new EndpointState(new ServiceEndpoint("127.0.0.1", upstream.Port), "http", pools);

        var sending = _forwarder.SendAsync(context, endpoint, Settings with { RequestTimeoutMs = 1000 }, RouteTransformer.None).AsTask();
        for (var i = 0; i < 4; i++)
        {
            // The forwarder asks for the next piece only after sending the last one and counting it as activity.
            await body.WaitingAsync();
            time.Advance(TimeSpan.FromMilliseconds(800));
            body.Release();
        }

        Assert.Equal(ForwarderError.None, await sending.WaitAsync(TimeSpan.FromSeconds(20)));
        Assert.Equal(400, (await upstream.NextRequestAsync()).Body.Length);
    }

    [Fact]
    public async Task SendAsync_UpstreamSilentPastTheTimeout_TimesOutOnTheFakeClock()
    {
        var time = new FakeTimeProvider();
        using var pools = new Http1PoolSet(time: time);
        await using var upstream = new ScriptedUpstream(_ => new ScriptedReply(null));
        var endpoint = new EndpointState(new ServiceEndpoint("127.0.0.1", upstream.Port), "http", pools);
        var context = Context();

        var sending = _forwarder.SendAsync(context, endpoint, Settings with { RequestTimeoutMs = 1000 }, RouteTransformer.None).AsTask();
        await upstream.NextRequestAsync();
        time.Advance(TimeSpan.FromMilliseconds(999));
        Assert.False(sending.IsCompleted);
        time.Advance(TimeSpan.FromMilliseconds(1));

        Assert.Equal(ForwarderError.RequestTimedOut, await sending.WaitAsync(TimeSpan.FromSeconds(20)));
        Assert.Equal(504, context.Response.StatusCode);
    }

    [Fact]
    public async Task SendAsync_ClientGoesAway_ClosesTheUpstreamConnection()
    {
        await using var upstream = new ScriptedUpstream(_ => new ScriptedReply(null));
        using var client = new CancellationTokenSource();
        var context = Context(aborted: client.Token);

        var sending = _forwarder.SendAsync(context, Endpoint(upstream), Settings, RouteTransformer.None).AsTask();
        await upstream.NextRequestAsync();
        await client.CancelAsync();

        Assert.Equal(ForwarderError.RequestCanceled, await sending.WaitAsync(TimeSpan.FromSeconds(20)));
        await upstream.NextClosedAsync();
    }

    [Theory]
    [InlineData("HTTP/1.1 2x0 OK\r\nContent-Length: 0\r\n\r\n")]
    [InlineData("SPDY/3 200 OK\r\n\r\n")]
    [InlineData("HTTP/1.1 200 OK\r\nContent-Length: nope\r\n\r\n")]
    [InlineData("HTTP/1.1 200 OK\r\nno colon here\r\n\r\n")]
    [InlineData("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n")]
    public async Task SendAsync_MalformedResponse_Returns502OrAborts(string reply)
    {
        await using var upstream = new ScriptedUpstream(_ => new ScriptedReply(reply));
        var context = Context();

        var error = await _forwarder.SendAsync(context, Endpoint(upstream), Settings, RouteTransformer.None);

        Assert.NotEqual(ForwarderError.None, error);
        Assert.True(context.Response.StatusCode == 502 || Lifetime(context).Aborted, $"status {context.Response.StatusCode}, error {error}");
    }

    [Fact]
    public async Task SendAsync_BodyCutShort_AbortsTheClientResponse()
    {
        await using var upstream = new ScriptedUpstream(_ => new ScriptedReply("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", Close: true));
        var context = Context();

        var error = await _forwarder.SendAsync(context, Endpoint(upstream), Settings, RouteTransformer.None);

        Assert.Equal(ForwarderError.ResponseBodyDestination, error);
        Assert.True(Lifetime(context).Aborted);
    }

    [Fact]
    public async Task SendAsync_RouteTransforms_ApplyToPathAndHeaders()
    {
        await using var upstream = new ScriptedUpstream(_ => new ScriptedReply("HTTP/1.1 200 OK\r\nContent-Length: 0\r\nx-internal: 1\r\n\r\n"));
        var transformer = new RouteTransformer(new TransformOptions
        {
            StripPrefix = "/api",
            RequestHeaders = new HeaderTransformOptions
            {
                Set = new Dictionary<string, string> { ["x-set"] = "set" },
                Add = new Dictionary<string, string> { ["x-add"] = "added" },
                Remove = ["x-secret"],
            },
            ResponseHeaders = new HeaderTransformOptions { Set = new Dictionary<string, string> { ["x-route"] = "r" }, Remove = ["x-internal"] },
        });
        var context = Context(path: "/api/users");
        context.Request.Headers["x-set"] = "client";
        context.Request.Headers["x-add"] = "client";
        context.Request.Headers["x-secret"] = "s";

        Assert.Equal(ForwarderError.None, await _forwarder.SendAsync(context, Endpoint(upstream), Settings, transformer));

        var request = await upstream.NextRequestAsync();
        Assert.Equal("GET /users HTTP/1.1", request.RequestLine);
        Assert.Equal(["set"], request.Header("x-set"));
        Assert.Equal(["client", "added"], request.Header("x-add"));
        Assert.Empty(request.Header("x-secret"));
        Assert.Equal("r", context.Response.Headers["x-route"]);
        Assert.False(context.Response.Headers.ContainsKey("x-internal"));
    }

    [Fact]
    public async Task SendAsync_HeaderValueWithLineBreak_IsRefusedNotSent()
    {
        await using var upstream = new ScriptedUpstream(_ => new ScriptedReply("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"));
        var transformer = new RouteTransformer(new TransformOptions
        {
            RequestHeaders = new HeaderTransformOptions { Set = new Dictionary<string, string> { ["x-evil"] = "a\r\nx-injected: 1" } },
        });
        var context = Context();

        var error = await _forwarder.SendAsync(context, Endpoint(upstream), Settings, transformer);

        Assert.Equal(ForwarderError.Request, error);
        Assert.Equal(502, context.Response.StatusCode);
        Assert.False(upstream.Requests.Reader.TryRead(out _));
    }

    [Fact]
    public async Task Sweep_IdleConnections_AreClosed()
    {
        // No timer: the test sweeps, so nothing closes the connection before it is counted.
        using var pools = new Http1PoolSet(idleTimeoutMs: 0, sweepPeriod: Timeout.InfiniteTimeSpan);
        await using var upstream = new ScriptedUpstream(_ => new ScriptedReply("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"));
        var endpoint = new EndpointState(new ServiceEndpoint("127.0.0.1", upstream.Port), "http", pools);
        Assert.Equal(ForwarderError.None, await _forwarder.SendAsync(Context(), endpoint, Settings, RouteTransformer.None));
        Assert.Equal(1, endpoint.Http1Pool.IdleCount);
        Assert.Equal(1, pools.SweptPools);

        pools.Sweep();

        Assert.Equal(0, endpoint.Http1Pool.IdleCount);
        Assert.Equal(0, pools.SweptPools);
        await upstream.NextClosedAsync();
    }

    [Fact]
    public async Task SweepTimer_IdleConnections_AreClosedWithoutAnyCall()
    {
        using var pools = new Http1PoolSet(idleTimeoutMs: 0, sweepPeriod: TimeSpan.FromMilliseconds(20));
        await using var upstream = new ScriptedUpstream(_ => new ScriptedReply("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"));
        var endpoint = new EndpointState(new ServiceEndpoint("127.0.0.1", upstream.Port), "http", pools);

        Assert.Equal(ForwarderError.None, await _forwarder.SendAsync(Context(), endpoint, Settings, RouteTransformer.None));

        // The upstream sees its connection end once the timer has swept it.
        await upstream.NextClosedAsync();
        Assert.Equal(0, endpoint.Http1Pool.IdleCount);
    }

    [Fact]
    public void CanForward_PlainRequests_True()
    {
        Assert.True(Http1Forwarder.CanForward(Context()));
        Assert.True(Http1Forwarder.CanForward(Context(method: "POST", body: "abc")));
    }

    [Fact]
    public void CanForward_UpgradeConnectExpectOrUnknownLength_False()
    {
        var upgrade = Context();
        upgrade.Features.Set<IHttpUpgradeFeature>(new UpgradeFeature());
        var connect = Context(method: "CONNECT");
        var expect = Context(method: "POST", body: "abc");
        expect.Request.Headers.Expect = "100-continue";
        var chunked = Context(method: "POST");
        chunked.Features.Set<IHttpRequestBodyDetectionFeature>(new BodyDetection(canHaveBody: true));

        Assert.False(Http1Forwarder.CanForward(upgrade));
        Assert.False(Http1Forwarder.CanForward(connect));
        Assert.False(Http1Forwarder.CanForward(expect));
        Assert.False(Http1Forwarder.CanForward(chunked));
    }

    private EndpointState Endpoint(ScriptedUpstream upstream) => new(new ServiceEndpoint("127.0.0.1", upstream.Port), "http", _pools);

    private static DefaultHttpContext Context(string method = "GET", string path = "/", string? query = null, string? body = null, CancellationToken aborted = default)
    {
        var context = new DefaultHttpContext();
        context.Features.Set<IHttpRequestLifetimeFeature>(new LifetimeFeature { RequestAborted = aborted });
        context.Features.Set<IHttpRequestBodyDetectionFeature>(new BodyDetection(canHaveBody: body is not null));
        context.Request.Method = method;
        context.Request.Scheme = "http";
        context.Request.Host = new HostString("example.test");
        context.Request.Path = path;
        if (query is not null)
        {
            context.Request.QueryString = new QueryString(query);
        }

        if (body is not null)
        {
            var bytes = Encoding.UTF8.GetBytes(body);
            context.Request.Body = new MemoryStream(bytes);
            context.Request.ContentLength = bytes.Length;
        }

        context.Response.Body = new MemoryStream();
        return context;
    }

    private static LifetimeFeature Lifetime(HttpContext context) => (LifetimeFeature)context.Features.Get<IHttpRequestLifetimeFeature>()!;

    private static async Task<string> BodyAsync(HttpContext context)
    {
        await context.Response.BodyWriter.FlushAsync();
        return Encoding.UTF8.GetString(((MemoryStream)context.Response.Body).ToArray());
    }

    /// <summary>A request body that hands out each piece only when the test releases it, as from a slow client.</summary>
    private sealed class GatedStream(int pieces, int size) : Stream
    {
        private readonly SemaphoreSlim _gate = new(0);
        private readonly Channel<int> _waiting = Channel.CreateUnbounded<int>();
        private int _left = pieces * size;
        private int _pieceLeft;

        public override bool CanRead => true;

        public override bool CanSeek => false;

        public override bool CanWrite => false;

        public override long Length => throw new NotSupportedException();

        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

        /// <summary>Completes when the reader is waiting for the next piece.</summary>
        public async Task WaitingAsync() => await _waiting.Reader.ReadAsync().AsTask().WaitAsync(TimeSpan.FromSeconds(20));

        public void Release() => _gate.Release();

        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            if (_left == 0)
            {
                return 0;
            }

            if (_pieceLeft == 0)
            {
                _waiting.Writer.TryWrite(0);
                await _gate.WaitAsync(cancellationToken);
                _pieceLeft = size;
            }

            var count = Math.Min(_pieceLeft, buffer.Length);
            _pieceLeft -= count;
            _left -= count;
            buffer.Span[..count].Fill((byte)'t');
            return count;
        }

        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        public override void Flush()
        {
        }

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        protected override void Dispose(bool disposing)
        {
            if (disposing)
            {
                _gate.Dispose();
            }

            base.Dispose(disposing);
        }
    }

    /// <summary>A response body that signals once the bytes written so far contain <c>expected</c>.</summary>
    private sealed class SignallingStream(string expected) : MemoryStream
    {
        private readonly TaskCompletionSource _seen = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public Task Seen => _seen.Task;

        public override void Write(ReadOnlySpan<byte> buffer)
        {
            base.Write(buffer);
            Check();
        }

        public override void Write(byte[] buffer, int offset, int count)
        {
            base.Write(buffer, offset, count);
            Check();
        }

        public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
        {
            base.Write(buffer.Span);
            Check();
            return ValueTask.CompletedTask;
        }

        private void Check()
        {
            if (Encoding.ASCII.GetString(ToArray()).Contains(expected, StringComparison.Ordinal))
            {
                _seen.TrySetResult();
            }
        }
    }

    private sealed class LifetimeFeature : IHttpRequestLifetimeFeature
    {
        public CancellationToken RequestAborted { get; set; }

        public bool Aborted { get; private set; }

        public void Abort() => Aborted = true;
    }

    private sealed class BodyDetection(bool canHaveBody) : IHttpRequestBodyDetectionFeature
    {
        public bool CanHaveBody { get; } = canHaveBody;
    }

    private sealed class UpgradeFeature : IHttpUpgradeFeature
    {
        public bool IsUpgradableRequest => true;

        public Task<Stream> UpgradeAsync() => throw new NotSupportedException();
    }
}
