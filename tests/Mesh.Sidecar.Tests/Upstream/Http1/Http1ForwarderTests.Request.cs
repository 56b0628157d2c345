// Mesh's HTTP/1.1 client, request side: the request line and Host, headers not copied, refusals with their reasons, buffers that grow, bodies Kestrel already holds.
using System.IO.Pipelines;
using System.Text;
using Mesh.Discovery;
using Mesh.Sidecar.Endpoints;
using Mesh.Sidecar.Upstream;
using Mesh.Sidecar.Upstream.Http1;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.Primitives;
using Yarp.ReverseProxy.Forwarder;

namespace Mesh.Sidecar.Tests.Upstream.Http1;

public sealed partial class Http1ForwarderTests
{
    private const string Ok = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";

    [Fact]
    public async Task SendAsync_EmptyPath_SendsSlash()
    {
        await using var upstream = new ScriptedUpstream(_ => new ScriptedReply(Ok));

        Assert.Equal(ForwarderError.None, await _forwarder.SendAsync(Context(path: ""), Endpoint(upstream), Settings, RouteTransformer.None));

        Assert.Equal("GET / HTTP/1.1", (await upstream.NextRequestAsync()).RequestLine);
    }

    [Fact]
    public async Task SendAsync_RequestWithoutHost_SendsTheEndpointAuthority()
    {
        await using var upstream = new ScriptedUpstream(_ => new ScriptedReply(Ok));
        var endpoint = Endpoint(upstream);
        var context = Context();
        context.Request.Host = default;

        Assert.Equal(ForwarderError.None, await _forwarder.SendAsync(context, endpoint, Settings, RouteTransformer.None));

        Assert.Equal([$"127.0.0.1:{upstream.Port}"], (await upstream.NextRequestAsync()).Header("Host"));
    }

    [Theory]
    [InlineData("GE T", null, "x-ok", "the method is not a token")]
    [InlineData("GET", "example.test\r\nx-evil: 1", "x-ok", "the Host holds a line break")]
    [InlineData("GET", null, "", "a request header name is not a token")]
    [InlineData("GET", null, "x-bad", "the value of request header 'x-bad' holds CR, LF or NUL")]
    public async Task SendAsync_RequestThatCannotBeWritten_IsRefusedNamingTheReason(string method, string? host, string header, string reason)
    {
        await using var upstream = new ScriptedUpstream(_ => new ScriptedReply(Ok));
        var context = Context(method: method);
        if (host is not null)
        {
            context.Request.Headers.Host = host;
        }

        context.Request.Headers[header] = header == "x-bad" ? "a\r\nb" : "v";

        Assert.Equal(ForwarderError.Request, await _forwarder.SendAsync(context, Endpoint(upstream), Settings, RouteTransformer.None));

        Assert.Equal(502, context.Response.StatusCode);
        Assert.Equal(reason, Reason(context));
        Assert.False(upstream.Requests.Reader.TryRead(out _));
    }

    [Fact]
    public async Task SendAsync_HopByHopAndPseudoRequestHeaders_AreNotCopied()
    {
        await using var upstream = new ScriptedUpstream(_ => new ScriptedReply(Ok));
        var context = Context();
        context.Request.Headers["TE"] = "trailers";
        context.Request.Headers["Trailer"] = "x-sum";
        context.Request.Headers["Upgrade"] = "h2c";
        context.Request.Headers["Keep-Alive"] = "timeout=5";
        context.Request.Headers["HTTP2-Settings"] = "AAMAAABkAAQAoAAAAAIAAAAA";
        context.Request.Headers["Proxy-Connection"] = "keep-alive";
        context.Request.Headers["Transfer-Encoding"] = "chunked";
        context.Request.Headers[":path"] = "/";
        context.Request.Headers["x-kept"] = "yes";

        Assert.Equal(ForwarderError.None, await _forwarder.SendAsync(context, Endpoint(upstream), Settings, RouteTransformer.None));

        var request = await upstream.NextRequestAsync();
        Assert.Equal(["GET / HTTP/1.1", "Host: example.test", "x-kept: yes"], request.Head.Split("\r\n"));
    }

    [Fact]
    public async Task SendAsync_HeaderWithANullValue_SendsItEmpty()
    {
        await using var upstream = new ScriptedUpstream(_ => new ScriptedReply(Ok));
        var context = Context();
        context.Request.Headers["x-null"] = new StringValues(new string?[] { null, "b" });

        Assert.Equal(ForwarderError.None, await _forwarder.SendAsync(context, Endpoint(upstream), Settings, RouteTransformer.None));

        Assert.Equal(["", "b"], (await upstream.NextRequestAsync()).Header("x-null"));
    }

    [Fact]
    public async Task SendAsync_HeaderLargerThanTwiceTheBuffer_IsSentWhole()
    {
        await using var upstream = new ScriptedUpstream(_ => new ScriptedReply(Ok));
        var context = Context(path: "/first");
        var big = new string('b', 20_000);
        context.Request.Headers["x-small"] = "s";
        context.Request.Headers["x-big"] = big;

        Assert.Equal(ForwarderError.None, await _forwarder.SendAsync(context, Endpoint(upstream), Settings, RouteTransformer.None));

        var request = await upstream.NextRequestAsync();
        Assert.Equal("GET /first HTTP/1.1", request.RequestLine);
        Assert.Equal(["example.test"], request.Header("Host"));
        Assert.Equal(["s"], request.Header("x-small"));
        Assert.Equal([big], request.Header("x-big"));
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(2)]
    public async Task SendAsync_ContentLengthAtTheEndOfTheBuffer_IsWrittenWhole(int room)
    {
        // The head fills the 4 KiB write buffer up to "Content-Length: ", leaving `room` bytes for its digits.
        await using var upstream = new ScriptedUpstream(_ => new ScriptedReply(Ok, Close: true));
        const string Fixed = "POST / HTTP/1.1\r\nHost: example.test\r\nx-pad: \r\nContent-Length: ";
        var context = Context(method: "POST", body: "0123456789abc");
        context.Request.Headers["x-pad"] = new string('p', Http1Connection.BufferSize - Fixed.Length - room);

        Assert.Equal(ForwarderError.None, await _forwarder.SendAsync(context, Endpoint(upstream), Settings, RouteTransformer.None));

        var request = await upstream.NextRequestAsync();
        Assert.Equal(["13"], request.Header("Content-Length"));
        Assert.Equal("0123456789abc", request.Body);
    }

    [Theory]
    [InlineData(11)]
    [InlineData(4096)]
    public async Task SendAsync_BodyAlreadyBuffered_IsSentOnceWithItsLength(int size)
    {
        await using var upstream = new ScriptedUpstream(_ => new ScriptedReply(Ok));
        var body = new string('x', size - 1) + "!";
        var context = Context(method: "POST", body: body);
        var client = new Pipe();
        await client.Writer.WriteAsync(Encoding.ASCII.GetBytes(body));
        await client.Writer.CompleteAsync();
        context.Features.Set<IRequestBodyPipeFeature>(new PipeRequestBody(client.Reader));

        Assert.Equal(ForwarderError.None, await _forwarder.SendAsync(context, Endpoint(upstream), Settings, RouteTransformer.None));

        var request = await upstream.NextRequestAsync();
        Assert.Equal("POST / HTTP/1.1", request.RequestLine);
        Assert.Equal(body, request.Body);
        // Whoever reads the client's body next (Kestrel, draining it) finds its end.
        Assert.True(context.Request.BodyReader.TryRead(out var rest));
        Assert.True(rest.IsCompleted);
        Assert.True(rest.Buffer.IsEmpty);
    }

    [Fact]
    public async Task SendAsync_BodyPartlyBuffered_SendsAllOfIt()
    {
        await using var upstream = new ScriptedUpstream(_ => new ScriptedReply(Ok));
        var endpoint = Endpoint(upstream);
        // A pooled connection, so the head (and the look at the buffered body) is written before SendAsync first waits.
        Assert.Equal(ForwarderError.None, await _forwarder.SendAsync(Context(), endpoint, Settings, RouteTransformer.None));
        await upstream.NextRequestAsync();
        var context = Context(method: "POST", body: "hello world");
        var client = new Pipe();
        await client.Writer.WriteAsync("hello"u8.ToArray());
        context.Features.Set<IRequestBodyPipeFeature>(new PipeRequestBody(client.Reader));

        var sending = _forwarder.SendAsync(context, endpoint, Settings, RouteTransformer.None).AsTask();
        await client.Writer.WriteAsync(" world"u8.ToArray());
        await client.Writer.CompleteAsync();

        Assert.Equal(ForwarderError.None, await sending.WaitAsync(TimeSpan.FromSeconds(20)));
        Assert.Equal("hello world", (await upstream.NextRequestAsync()).Body);
    }

    [Fact]
    public async Task SendAsync_ClientBodyShorterThanItsLength_Returns400()
    {
        await using var upstream = new ScriptedUpstream(_ => new ScriptedReply(Ok));
        var context = Context(method: "POST", body: "abc");
        context.Request.ContentLength = 10;

        var error = await _forwarder.SendAsync(context, Endpoint(upstream), Settings, RouteTransformer.None);

        Assert.Equal(ForwarderError.RequestBodyClient, error);
        Assert.Equal(400, context.Response.StatusCode);
        Assert.Equal("the client's body does not match its Content-Length of 10", Reason(context));
    }

    [Fact]
    public async Task SendAsync_ClientGoesAwayDuringItsBody_ReturnsRequestBodyCanceled()
    {
        await using var upstream = new ScriptedUpstream(_ => new ScriptedReply(Ok));
        using var client = new CancellationTokenSource();
        var context = Context(method: "POST", aborted: client.Token);
        // Writes wait until the forwarder has taken them, so the test knows when it waits for the rest of the body.
        var body = new Pipe(new PipeOptions(pauseWriterThreshold: 1, resumeWriterThreshold: 1));
        context.Request.ContentLength = 10;
        context.Features.Set<IRequestBodyPipeFeature>(new PipeRequestBody(body.Reader));

        var sending = _forwarder.SendAsync(context, Endpoint(upstream), Settings, RouteTransformer.None).AsTask();
        await body.Writer.WriteAsync("abc"u8.ToArray()).AsTask().WaitAsync(TimeSpan.FromSeconds(20));
        // The client resets: Kestrel cancels RequestAborted and fails the body read.
        await client.CancelAsync();
        await body.Writer.CompleteAsync(new IOException("the client reset the connection"));

        Assert.Equal(ForwarderError.RequestBodyCanceled, await sending.WaitAsync(TimeSpan.FromSeconds(20)));
    }

    [Fact]
    public async Task SendAsync_Failure_ClearsResponseHeadersSetBefore()
    {
        int port;
        await using (var closed = new ScriptedUpstream(_ => new ScriptedReply(null)))
        {
            port = closed.Port;
        }

        var context = Context();
        context.Response.Headers["x-set-by-a-filter"] = "1";

        var error = await _forwarder.SendAsync(context, new EndpointState(new ServiceEndpoint("127.0.0.1", port), "http", _pools), Settings, RouteTransformer.None);

        Assert.Equal(ForwarderError.Request, error);
        Assert.Equal(502, context.Response.StatusCode);
        Assert.False(context.Response.Headers.ContainsKey("x-set-by-a-filter"));
        Assert.IsType<System.Net.Http.HttpRequestException>(context.Features.Get<IForwarderErrorFeature>()?.Exception);
    }

    [Fact]
    public async Task SendAsync_PooledConnectionClosedAfterTheRequestArrived_RetriesOnceOnANewConnection()
    {
        // The peer takes the second request on the kept connection and closes it without an answer
        // (its keep-alive timer fired just then): nothing reached the app's response, so one retry is safe.
        var served = 0;
        await using var upstream = new ScriptedUpstream(request =>
            request.Connection == 0 && Interlocked.Increment(ref served) == 2 ? new ScriptedReply("", Close: true) : new ScriptedReply(Ok));
        var endpoint = Endpoint(upstream);
        Assert.Equal(ForwarderError.None, await _forwarder.SendAsync(Context(), endpoint, Settings, RouteTransformer.None));
        var context = Context();

        Assert.Equal(ForwarderError.None, await _forwarder.SendAsync(context, endpoint, Settings, RouteTransformer.None));

        Assert.Equal("ok", await BodyAsync(context));
        Assert.Equal(2, upstream.Connections);
    }

    private sealed class PipeRequestBody(PipeReader reader) : IRequestBodyPipeFeature
    {
        public PipeReader Reader => reader;
    }
}
