// Mesh's HTTP/1.1 client, request timer on a fake clock: the pool's clock runs it, each request counts from its own start, a shorter timeout re-arms it.
using Mesh.Discovery;
using Mesh.Sidecar.Endpoints;
using Mesh.Sidecar.Upstream;
using Mesh.Sidecar.Upstream.Http1;
using Microsoft.Extensions.Time.Testing;
using Yarp.ReverseProxy.Forwarder;

namespace Mesh.Sidecar.Tests.Upstream.Http1;

public sealed partial class Http1ForwarderTests
{
    [Fact]
    public async Task SendAsync_LongTimeoutOnTheFakeClock_TimesOutWhenTheFakeClockReachesIt()
    {
        // A minute on the fake clock, not on the wall: the connection's timer runs on the clock it was given.
        var time = new FakeTimeProvider();
        using var pools = new Http1PoolSet(time: time);
        await using var upstream = new ScriptedUpstream(_ => new ScriptedReply(null));
        var endpoint = new EndpointState(new ServiceEndpoint("127.0.0.1", upstream.Port), "http", pools);
        var context = Context();

        var sending = _forwarder.SendAsync(context, endpoint, Settings with { RequestTimeoutMs = 60_000 }, RouteTransformer.None).AsTask();
        await upstream.NextRequestAsync();
        time.Advance(TimeSpan.FromMinutes(1));

        Assert.Equal(ForwarderError.RequestTimedOut, await sending.WaitAsync(TimeSpan.FromSeconds(20)));
        Assert.Equal(504, context.Response.StatusCode);
    }

    [Fact]
    public async Task SendAsync_NextRequestOnAKeptConnection_CountsItsTimeoutFromItsOwnStart()
    {
        // The first request arms the timer for t=1000; the second starts at t=900 and may wait until t=1900.
        var time = new FakeTimeProvider();
        using var pools = new Http1PoolSet(time: time);
        var answer = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
        var served = 0;
        await using var upstream = new ScriptedUpstream(_ => Interlocked.Increment(ref served) == 1
            ? new ScriptedReply(Ok)
            : new ScriptedReply("", Later: answer.Task));
        var endpoint = new EndpointState(new ServiceEndpoint("127.0.0.1", upstream.Port), "http", pools);
        var settings = Settings with { RequestTimeoutMs = 1000 };
        Assert.Equal(ForwarderError.None, await _forwarder.SendAsync(Context(), endpoint, settings, RouteTransformer.None));
        await upstream.NextRequestAsync();
        time.Advance(TimeSpan.FromMilliseconds(900));
        var context = Context();

        var sending = _forwarder.SendAsync(context, endpoint, settings, RouteTransformer.None).AsTask();
        await upstream.NextRequestAsync();
        time.Advance(TimeSpan.FromMilliseconds(100));
        answer.SetResult(Ok);

        Assert.Equal(ForwarderError.None, await sending.WaitAsync(TimeSpan.FromSeconds(20)));
        Assert.Equal("ok", await BodyAsync(context));
        Assert.Equal(1, upstream.Connections);
    }

    [Fact]
    public async Task SendAsync_ShorterTimeoutOnAKeptConnection_TimesOutAtItsOwnDeadline()
    {
        // Two services on one endpoint: a request with a 10 s timeout, then one with 1 s on the same connection.
        var time = new FakeTimeProvider();
        using var pools = new Http1PoolSet(time: time);
        var served = 0;
        await using var upstream = new ScriptedUpstream(_ => Interlocked.Increment(ref served) == 1 ? new ScriptedReply(Ok) : new ScriptedReply(null));
        var endpoint = new EndpointState(new ServiceEndpoint("127.0.0.1", upstream.Port), "http", pools);
        Assert.Equal(ForwarderError.None, await _forwarder.SendAsync(Context(), endpoint, Settings with { RequestTimeoutMs = 10_000 }, RouteTransformer.None));
        await upstream.NextRequestAsync();
        var context = Context();

        var sending = _forwarder.SendAsync(context, endpoint, Settings with { RequestTimeoutMs = 1000 }, RouteTransformer.None).AsTask();
        await upstream.NextRequestAsync();
        time.Advance(TimeSpan.FromMilliseconds(1000));

        Assert.Equal(ForwarderError.RequestTimedOut, await sending.WaitAsync(TimeSpan.FromSeconds(20)));
        Assert.Equal(504, context.Response.StatusCode);
    }

    [Fact]
    public async Task SendAsync_RequestAfterTheTimerWentIdle_StillTimesOut()
    {
        // The timer ticks once with no request in flight and stops; the next request must arm it again.
        var time = new FakeTimeProvider();
        using var pools = new Http1PoolSet(time: time);
        var served = 0;
        await using var upstream = new ScriptedUpstream(_ => Interlocked.Increment(ref served) == 1 ? new ScriptedReply(Ok) : new ScriptedReply(null));
        var endpoint = new EndpointState(new ServiceEndpoint("127.0.0.1", upstream.Port), "http", pools);
        var settings = Settings with { RequestTimeoutMs = 1000 };
        Assert.Equal(ForwarderError.None, await _forwarder.SendAsync(Context(), endpoint, settings, RouteTransformer.None));
        await upstream.NextRequestAsync();
        time.Advance(TimeSpan.FromMilliseconds(1000));
        var context = Context();

        var sending = _forwarder.SendAsync(context, endpoint, settings, RouteTransformer.None).AsTask();
        await upstream.NextRequestAsync();
        time.Advance(TimeSpan.FromMilliseconds(1000));

        Assert.Equal(ForwarderError.RequestTimedOut, await sending.WaitAsync(TimeSpan.FromSeconds(20)));
        Assert.Equal(504, context.Response.StatusCode);
    }

    [Fact]
    public async Task SendAsync_UpstreamStallsMidBody_TimesOutCountingFromItsLastActivity()
    {
        // Half the body at t=500 moves the deadline to t=1500: the tick at t=1000 re-arms the timer, which fires at t=1500.
        var time = new FakeTimeProvider();
        using var pools = new Http1PoolSet(time: time);
        var part = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var upstream = new ScriptedUpstream(_ => new ScriptedReply("", Later: part.Task));
        var endpoint = new EndpointState(new ServiceEndpoint("127.0.0.1", upstream.Port), "http", pools);
        var context = Context();
        var client = new SignallingStream("hello");
        context.Response.Body = client;

        var sending = _forwarder.SendAsync(context, endpoint, Settings with { RequestTimeoutMs = 1000 }, RouteTransformer.None).AsTask();
        await upstream.NextRequestAsync();
        time.Advance(TimeSpan.FromMilliseconds(500));
        part.SetResult("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhello");
        await client.Seen.WaitAsync(TimeSpan.FromSeconds(20));
        time.Advance(TimeSpan.FromMilliseconds(500));
        Assert.False(sending.IsCompleted);
        time.Advance(TimeSpan.FromMilliseconds(500));

        Assert.Equal(ForwarderError.ResponseBodyDestination, await sending.WaitAsync(TimeSpan.FromSeconds(20)));
        Assert.True(Lifetime(context).Aborted);
    }
}
