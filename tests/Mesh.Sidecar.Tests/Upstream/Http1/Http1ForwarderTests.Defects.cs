// Mesh's HTTP/1.1 client against the defects of issue 9: truncation, queue poisoning, header injection, a ValueTask read twice, lax parsing.
using System.Globalization;
using System.Net.Sockets;
using System.Text;
using System.Threading.Tasks.Sources;
using Mesh.Sidecar.Configuration;
using Mesh.Sidecar.Upstream;
using Mesh.Sidecar.Upstream.Http1;
using Yarp.ReverseProxy.Forwarder;

namespace Mesh.Sidecar.Tests.Upstream.Http1;

public sealed partial class Http1ForwarderTests
{
    // 1. Truncation: a body that did not arrive in the first read must be flushed to the client when complete.
    [Theory]
    [InlineData(62)]
    [InlineData(5 * 1024)]
    [InlineData(20_000)]
    public async Task SendAsync_BodyInLaterWrites_IsFlushedWhenComplete(int size)
    {
        var body = new string('b', size - 1) + "!";
        var rest = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var upstream = new ScriptedUpstream(_ => new ScriptedReply($"HTTP/1.1 200 OK\r\nContent-Length: {size}\r\n\r\n", Later: rest.Task));
        var context = Context();

        var sending = _forwarder.SendAsync(context, Endpoint(upstream), Settings, RouteTransformer.None).AsTask();
        await upstream.NextRequestAsync();
        rest.SetResult(body);

        Assert.Equal(ForwarderError.None, await sending.WaitAsync(TimeSpan.FromSeconds(20)));
        // What reached the client's stream, without a flush from the test: all of it.
        Assert.Equal(body, Encoding.ASCII.GetString(((MemoryStream)context.Response.Body).ToArray()));
    }

    // 2. Queue poisoning: bytes that arrive on an idle pooled connection must never answer the next request.
    [Fact]
    public async Task SendAsync_ResponseArrivingWhileIdle_IsNeverTakenForTheNextResponse()
    {
        var poison = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
        var first = true;
        await using var upstream = new ScriptedUpstream(request =>
        {
            if (first)
            {
                first = false;
                return new ScriptedReply("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", Later: poison.Task);
            }

            return new ScriptedReply("HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nmine");
        });
        var endpoint = Endpoint(upstream);
        var context = Context();
        Assert.Equal(ForwarderError.None, await _forwarder.SendAsync(context, endpoint, Settings, RouteTransformer.None));
        Assert.Equal("ok", await BodyAsync(context));

        // A second response nobody asked for lands on the idle connection.
        poison.SetResult("HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nPOISON");
        await upstream.NextSentAsync();

        var next = Context();
        Assert.Equal(ForwarderError.None, await _forwarder.SendAsync(next, endpoint, Settings, RouteTransformer.None));
        Assert.Equal("mine", await BodyAsync(next));
        Assert.Equal(2, upstream.Connections);
    }

    [Theory]
    [InlineData("HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n{body}")]
    [InlineData("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n186a0\r\n{body}\r\n0\r\n\r\n")]
    [InlineData("HTTP/1.1 204 No Content\r\n\r\n")]
    [InlineData("HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n")]
    public async Task SendAsync_ResponseAppendedInTheSameWrite_IsNeverTakenForTheNextResponse(string reply)
    {
        var bytes = reply.Replace("{body}", new string('x', 100_000), StringComparison.Ordinal) + "HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nPOISON";
        var count = 0;
        await using var upstream = new ScriptedUpstream(_ => new ScriptedReply(Interlocked.Increment(ref count) == 1 ? bytes : "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nmine"));
        var endpoint = Endpoint(upstream);
        Assert.Equal(ForwarderError.None, await _forwarder.SendAsync(Context(), endpoint, Settings, RouteTransformer.None));
        await upstream.NextSentAsync();

        var next = Context();
        Assert.Equal(ForwarderError.None, await _forwarder.SendAsync(next, endpoint, Settings, RouteTransformer.None));

        Assert.Equal("mine", await BodyAsync(next));
    }

    [Fact]
    public async Task TryRent_PeerClosedWhileIdle_OpensANewConnection()
    {
        await using var upstream = new ScriptedUpstream(_ => new ScriptedReply("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", Close: true));
        var endpoint = Endpoint(upstream);
        Assert.Equal(ForwarderError.None, await _forwarder.SendAsync(Context(), endpoint, Settings, RouteTransformer.None));
        await upstream.NextClosedAsync();

        Assert.Null(endpoint.Http1Pool.TryRent());
        Assert.Equal(0, endpoint.Http1Pool.IdleCount);
    }

    // 3. Header-name injection: nothing that is not a token is written as a name, from the client or a transform.
    [Theory]
    [InlineData("x-a: 1\r\ntransfer-encoding")]
    [InlineData("x-a\nx-b")]
    [InlineData("x a")]
    [InlineData("x-a:")]
    [InlineData("")]
    [InlineData("x\0a")]
    public async Task SendAsync_ClientHeaderNameNotAToken_IsRefusedNotSent(string name)
    {
        await using var upstream = new ScriptedUpstream(_ => new ScriptedReply("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"));
        var context = Context(method: "POST", body: "0\r\n\r\nGET /internal/secret HTTP/1.1\r\nHost: x\r\n\r\n");
        context.Request.Headers[name] = "chunked";

        var error = await _forwarder.SendAsync(context, Endpoint(upstream), Settings, RouteTransformer.None);

        Assert.Equal(ForwarderError.Request, error);
        Assert.Equal(502, context.Response.StatusCode);
        Assert.Equal(0, context.Response.Body.Length);
        Assert.False(upstream.Requests.Reader.TryRead(out _));
    }

    [Fact]
    public async Task SendAsync_TransformHeaderNameNotAToken_IsRefusedNotSent()
    {
        await using var upstream = new ScriptedUpstream(_ => new ScriptedReply("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"));
        var transformer = new RouteTransformer(new TransformOptions
        {
            RequestHeaders = new HeaderTransformOptions { Add = new Dictionary<string, string> { ["x-a: 1\r\nx-injected"] = "1" } },
        });
        var context = Context();

        Assert.Equal(ForwarderError.Request, await _forwarder.SendAsync(context, Endpoint(upstream), Settings, transformer));

        Assert.Equal(502, context.Response.StatusCode);
        Assert.False(upstream.Requests.Reader.TryRead(out _));
    }

    [Theory]
    [InlineData("?q=a b", "?q=a%20b")]
    [InlineData("?q=a\tb\"<>", "?q=a%09b%22%3C%3E")]
    [InlineData("?q=\\^`{|}", "?q=%5C%5E%60%7B%7C%7D")]
    [InlineData("?q=100%&r=%41", "?q=100%25&r=%41")]
    [InlineData("?q=a#b", "?q=a%23b")]
    [InlineData("?q=\u00e9", "?q=%C3%A9")]
    [InlineData("?q=a\r\nHost: evil", "?q=a%0D%0AHost:%20evil")]
    [InlineData("?a=1&b=[x]:@/?!$'()*+,;=~", "?a=1&b=[x]:@/?!$'()*+,;=~")]
    public async Task SendAsync_QueryWithCharactersATargetCannotHold_IsPercentEncoded(string query, string sent)
    {
        await using var upstream = new ScriptedUpstream(_ => new ScriptedReply("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"));
        var context = Context(path: "/search");
        context.Request.QueryString = QueryString.FromUriComponent(query);

        Assert.Equal(ForwarderError.None, await _forwarder.SendAsync(context, Endpoint(upstream), Settings, RouteTransformer.None));

        Assert.Equal($"GET /search{sent} HTTP/1.1", (await upstream.NextRequestAsync()).RequestLine);
    }

    // 4. A receive ValueTask is consumed exactly once, even when it completed just before the check.
    [Fact]
    public async Task Received_ReceiveCompletedOnAnotherThreadJustBeforeTheCheck_IsConsumedOnce()
    {
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        using var connection = new Http1Connection(socket);
        var receive = new ReusableReceive();
        receive.Complete(42);

        var received = await Http1Forwarder.Received(connection, new ValueTask<int>(receive, receive.Version));

        Assert.Equal(42, received);
        Assert.Equal(42, connection.ReadEnd);
        Assert.Equal(1, receive.Results);
    }

    [Fact]
    public async Task Received_ReceiveStillPending_IsAwaitedOnce()
    {
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        using var connection = new Http1Connection(socket);
        var receive = new ReusableReceive();

        var pending = Http1Forwarder.Received(connection, new ValueTask<int>(receive, receive.Version)).AsTask();
        receive.Complete(7);

        Assert.Equal(7, await pending.WaitAsync(TimeSpan.FromSeconds(20)));
        Assert.Equal(7, connection.ReadEnd);
        Assert.Equal(1, receive.Results);
    }

    // Smaller laxities: each refused at once with 502 (or read as RFC 9112 says), never taken for something else.
    [Theory]
    [InlineData("HTTP/1.1 2000 OK\r\nContent-Length: 0\r\n\r\n")]
    [InlineData("HTTP/1.1 200X OK\r\nContent-Length: 0\r\n\r\n")]
    [InlineData("HTTP/1.1 1000 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")]
    [InlineData("HTTP/1.1 099 Low\r\nContent-Length: 0\r\n\r\n")]
    [InlineData("HTTP/1.2 200 OK\r\nContent-Length: 0\r\n\r\n")]
    [InlineData("HTTP/1.1  200 OK\r\nContent-Length: 0\r\n\r\n")]
    [InlineData("HTTP/1.1 200 OK\r\nContent-Length: +5\r\n\r\nhello")]
    [InlineData("HTTP/1.1 200 OK\r\nContent-Length: -0\r\n\r\n")]
    [InlineData("HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\n\r\nhello")]
    [InlineData("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!")]
    [InlineData("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok")]
    [InlineData("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n")]
    [InlineData("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")]
    [InlineData("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nContent-Length: 5\r\n\r\nhello")]
    [InlineData("HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n")]
    [InlineData("HTTP/1.1 200 OK\r\nx-folded: a\r\n b\r\nContent-Length: 0\r\n\r\n")]
    [InlineData("HTTP/1.1 200 OK\r\nx-name : a\r\nContent-Length: 0\r\n\r\n")]
    [InlineData("HTTP/1.1 200 OK\r\nx-nul: a\0b\r\nContent-Length: 0\r\n\r\n")]
    [InlineData("HTTP/1.1 200 OK\r\nx-cr: a\rb\r\nContent-Length: 0\r\n\r\n")]
    [InlineData("HTTP/1.1 200 OK\r\nx(a): b\r\nContent-Length: 0\r\n\r\n")]
    [InlineData("HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\n\r\n")]
    public async Task SendAsync_MalformedHead_Returns502(string reply)
    {
        await using var upstream = new ScriptedUpstream(_ => new ScriptedReply(reply));
        var context = Context();

        var error = await _forwarder.SendAsync(context, Endpoint(upstream), Settings, RouteTransformer.None);

        Assert.Equal(ForwarderError.Request, error);
        Assert.Equal(502, context.Response.StatusCode);
    }

    [Theory]
    [InlineData("HTTP/1.1 200 OK\nContent-Length: 0\n\n")]
    [InlineData("HTTP/1.1 200 OK\r\nContent-Length: 0\n\r\n")]
    [InlineData("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\n")]
    public async Task SendAsync_HeadWithBareLineFeeds_Returns502AtOnce(string reply)
    {
        // The reply is all there and the connection stays open: only the parser can end the wait.
        await using var upstream = new ScriptedUpstream(_ => new ScriptedReply(reply));
        var context = Context();

        var error = await _forwarder.SendAsync(context, Endpoint(upstream), Settings with { RequestTimeoutMs = 60_000 }, RouteTransformer.None).AsTask().WaitAsync(TimeSpan.FromSeconds(20));

        Assert.Equal(ForwarderError.Request, error);
        Assert.Equal(502, context.Response.StatusCode);
    }

    [Fact]
    public async Task SendAsync_ChunkLineWithBareLineFeed_AbortsAtOnce()
    {
        await using var upstream = new ScriptedUpstream(_ => new ScriptedReply("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\nhello\r\n0\r\n\r\n"));
        var context = Context();

        var error = await _forwarder.SendAsync(context, Endpoint(upstream), Settings with { RequestTimeoutMs = 60_000 }, RouteTransformer.None).AsTask().WaitAsync(TimeSpan.FromSeconds(20));

        Assert.Equal(ForwarderError.ResponseBodyDestination, error);
        Assert.True(Lifetime(context).Aborted);
    }

    [Theory]
    [InlineData("Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked")]
    [InlineData("Transfer-Encoding: gzip,\r\nTransfer-Encoding: , chunked")]
    [InlineData("Transfer-Encoding: CHUNKED")]
    [InlineData("Transfer-Encoding: chunked\r\nContent-Length: 3")]
    public async Task SendAsync_TransferEncodingEndingInChunked_IsDechunked(string fields)
    {
        await using var upstream = new ScriptedUpstream(_ => new ScriptedReply($"HTTP/1.1 200 OK\r\n{fields}\r\n\r\n5\r\nhello\r\n0\r\n\r\n"));
        var context = Context();

        Assert.Equal(ForwarderError.None, await _forwarder.SendAsync(context, Endpoint(upstream), Settings, RouteTransformer.None));

        Assert.Equal("hello", await BodyAsync(context));
        Assert.False(context.Response.Headers.ContainsKey("Transfer-Encoding"));
    }

    [Theory]
    [InlineData("xchunked")]
    [InlineData("chunkedx")]
    [InlineData("identity")]
    public async Task SendAsync_TransferEncodingNotEndingInChunked_ReadsToTheCloseAndDoesNotReuse(string coding)
    {
        const string Raw = "5\r\nhello\r\n0\r\n\r\n";
        await using var upstream = new ScriptedUpstream(_ => new ScriptedReply($"HTTP/1.1 200 OK\r\nTransfer-Encoding: {coding}\r\n\r\n{Raw}", Close: true));
        var endpoint = Endpoint(upstream);
        var context = Context();

        Assert.Equal(ForwarderError.None, await _forwarder.SendAsync(context, endpoint, Settings, RouteTransformer.None));

        Assert.Equal(Raw, await BodyAsync(context));
        Assert.Equal(0, endpoint.Http1Pool.IdleCount);
    }

    [Fact]
    public async Task SendAsync_ContentLengthAndChunked_DechunksAndDoesNotReuse()
    {
        await using var upstream = new ScriptedUpstream(_ => new ScriptedReply("HTTP/1.1 200 OK\r\nContent-Length: 100\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"));
        var endpoint = Endpoint(upstream);
        var context = Context();

        Assert.Equal(ForwarderError.None, await _forwarder.SendAsync(context, endpoint, Settings, RouteTransformer.None));

        Assert.Equal("hello", await BodyAsync(context));
        Assert.Null(context.Response.ContentLength);
        Assert.Equal(0, endpoint.Http1Pool.IdleCount);
    }

    [Theory]
    [InlineData("HTTP/1.1 200\r\nContent-Length: 2\r\n\r\nok", 200)]
    [InlineData("HTTP/1.1 404 \r\nContent-Length: 2\r\n\r\nok", 404)]
    [InlineData("HTTP/1.1 599 Whatever It Says\r\nContent-Length: 2\r\n\r\nok", 599)]
    [InlineData("HTTP/1.1 200 OK\r\nContent-Length:2\r\nx-empty:\r\nx-tab:\tv\t\r\n\r\nok", 200)]
    [InlineData("HTTP/1.1 200 OK\r\nContent-Length: 0002\r\n\r\nok", 200)]
    public async Task SendAsync_UnusualButValidHead_IsAccepted(string reply, int status)
    {
        await using var upstream = new ScriptedUpstream(_ => new ScriptedReply(reply));
        var context = Context();

        Assert.Equal(ForwarderError.None, await _forwarder.SendAsync(context, Endpoint(upstream), Settings, RouteTransformer.None));

        Assert.Equal(status, context.Response.StatusCode);
        Assert.Equal("ok", await BodyAsync(context));
    }

    [Fact]
    public async Task SendAsync_TenThousandSameNamedHeaders_KeepsEveryValueInOrder()
    {
        var head = new StringBuilder("HTTP/1.1 200 OK\r\n");
        for (var i = 0; i < 10_000; i++)
        {
            // Six bytes a line: 10,000 of them fit in the 64 KiB head limit.
            head.Append(CultureInfo.InvariantCulture, $"r: {i % 10}\r\n");
        }

        await using var upstream = new ScriptedUpstream(_ => new ScriptedReply(head.Append("Content-Length: 2\r\n\r\nok").ToString()));
        var context = Context();

        Assert.Equal(ForwarderError.None, await _forwarder.SendAsync(context, Endpoint(upstream), Settings, RouteTransformer.None));

        var values = context.Response.Headers["r"];
        Assert.Equal(10_000, values.Count);
        for (var i = 0; i < 10_000; i++)
        {
            Assert.Equal((i % 10).ToString(CultureInfo.InvariantCulture), values[i]);
        }

        Assert.Equal("ok", await BodyAsync(context));
    }

    [Fact]
    public async Task SendAsync_InterimFlood_IsReadPast()
    {
        var flood = new StringBuilder();
        for (var i = 0; i < 2_000; i++)
        {
            flood.Append("HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n");
        }

        await using var upstream = new ScriptedUpstream(_ => new ScriptedReply(flood.Append("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok").ToString()));
        var context = Context();

        Assert.Equal(ForwarderError.None, await _forwarder.SendAsync(context, Endpoint(upstream), Settings, RouteTransformer.None));

        Assert.Equal("ok", await BodyAsync(context));
    }

    [Theory]
    [InlineData(Http1Forwarder.MaxResponseHeadBytes - 1024, true)]
    [InlineData(Http1Forwarder.MaxResponseHeadBytes + 1024, false)]
    public async Task SendAsync_HeadNearTheLimit_IsTakenBelowAndRefusedAbove(int size, bool taken)
    {
        var head = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nx-big: " + new string('h', size - 60) + "\r\n\r\nok";
        await using var upstream = new ScriptedUpstream(_ => new ScriptedReply(head));
        var context = Context();

        var error = await _forwarder.SendAsync(context, Endpoint(upstream), Settings, RouteTransformer.None);

        Assert.Equal(taken ? ForwarderError.None : ForwarderError.Request, error);
        Assert.Equal(taken ? 200 : 502, context.Response.StatusCode);
    }

    /// <summary>
    /// A receive that, like the socket's pooled operation, may be consumed once: reading its
    /// result releases it for the next operation, after which the old token is stale.
    /// </summary>
    private sealed class ReusableReceive : IValueTaskSource<int>
    {
        private ManualResetValueTaskSourceCore<int> _core;

        public short Version => _core.Version;

        public int Results { get; private set; }

        public void Complete(int received) => _core.SetResult(received);

        public int GetResult(short token)
        {
            var result = _core.GetResult(token);
            Results++;
            _core.Reset();
            return result;
        }

        public ValueTaskSourceStatus GetStatus(short token) => _core.GetStatus(token);

        public void OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags) =>
            _core.OnCompleted(continuation, state, token, flags);
    }
}
