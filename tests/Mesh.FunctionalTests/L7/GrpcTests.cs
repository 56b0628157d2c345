// gRPC end to end: client -> real sidecar (h2c in, h2c out) -> real Grpc.AspNetCore backends, every call shape.
using System.Diagnostics;
using Grpc.Core;
using Grpc.Net.Client;
using Mesh.FunctionalTests.Grpc;
using Mesh.FunctionalTests.Infrastructure;

namespace Mesh.FunctionalTests.L7;

public sealed class GrpcFixture : IAsyncLifetime
{
    public EchoInstance Instance { get; } = new("grpc-1");

    public TestBackend Backend { get; private set; } = null!;

    public TestSidecar Sidecar { get; private set; } = null!;

    public GrpcChannel Channel { get; private set; } = null!;

    public Echo.EchoClient Client { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        Backend = await EchoGrpcBackend.StartAsync(Instance.Name, Instance);
        Sidecar = await TestSidecar.StartAsync(EchoGrpcBackend.SidecarConfig([Backend]));
        Channel = EchoGrpcBackend.Channel(Sidecar.Listener());
        Client = new Echo.EchoClient(Channel);
    }

    public async Task DisposeAsync()
    {
        Channel.Dispose();
        await Sidecar.DisposeAsync();
        await Backend.DisposeAsync();
    }
}

public sealed class GrpcTests(GrpcFixture fixture) : IClassFixture<GrpcFixture>
{
    private const int Messages = 25;

    private static CancellationTokenSource Deadline() => new(TestSidecar.Deadline);

    [Fact]
    public async Task Unary_ThroughSidecar_ReturnsReplyAndTrailers()
    {
        using var cts = Deadline();
        using var call = fixture.Client.UnaryAsync(new EchoRequest { Text = "hello" }, cancellationToken: cts.Token);

        var reply = await call.ResponseAsync.WaitAsync(cts.Token);

        Assert.Equal("hello", reply.Text);
        Assert.Equal(fixture.Instance.Name, reply.Instance);
        Assert.Equal(StatusCode.OK, call.GetStatus().StatusCode);
        Assert.Equal(EchoService.TrailerValue, call.GetTrailers().GetValue(EchoService.TrailerName));
        var headers = await call.ResponseHeadersAsync.WaitAsync(cts.Token);
        Assert.Equal(fixture.Instance.Name, headers.GetValue("x-backend"));
    }

    [Fact]
    public async Task ServerStream_CountReplies_ArriveInOrder()
    {
        using var cts = Deadline();
        using var call = fixture.Client.ServerStream(new EchoRequest { Text = "s", Count = Messages }, cancellationToken: cts.Token);

        var texts = new List<string>();
        await foreach (var reply in call.ResponseStream.ReadAllAsync(cts.Token))
        {
            Assert.Equal(fixture.Instance.Name, reply.Instance);
            texts.Add(reply.Text);
        }

        Assert.Equal(Enumerable.Range(0, Messages).Select(i => $"s-{i}"), texts);
        Assert.Equal(StatusCode.OK, call.GetStatus().StatusCode);
        Assert.Equal(EchoService.TrailerValue, call.GetTrailers().GetValue(EchoService.TrailerName));
    }

    [Fact]
    public async Task ClientStream_ManyRequests_ServerAggregatesAll()
    {
        using var cts = Deadline();
        using var call = fixture.Client.ClientStream(cancellationToken: cts.Token);
        var expected = Enumerable.Range(0, Messages).Select(i => $"c{i}").ToArray();
        foreach (var text in expected)
        {
            await call.RequestStream.WriteAsync(new EchoRequest { Text = text }, cts.Token);
        }

        await call.RequestStream.CompleteAsync().WaitAsync(cts.Token);
        var reply = await call.ResponseAsync.WaitAsync(cts.Token);

        Assert.Equal(string.Join(',', expected), reply.Text);
        Assert.Equal(fixture.Instance.Name, reply.Instance);
        Assert.Equal(EchoService.TrailerValue, call.GetTrailers().GetValue(EchoService.TrailerName));
    }

    [Fact]
    public async Task Duplex_WriteThenReadEach_BothDirectionsLiveAndTrailersArrive()
    {
        using var cts = Deadline();
        using var call = fixture.Client.Duplex(cancellationToken: cts.Token);

        // Each echo must arrive while the request stream is still open: a proxy that buffers
        // either direction until the other half completes would hang here until the deadline.
        for (var i = 0; i < Messages; i++)
        {
            await call.RequestStream.WriteAsync(new EchoRequest { Text = $"d{i}" }, cts.Token);
            Assert.True(await call.ResponseStream.MoveNext(cts.Token), $"stream ended before the echo of d{i}");
            Assert.Equal($"d{i}", call.ResponseStream.Current.Text);
            Assert.Equal(fixture.Instance.Name, call.ResponseStream.Current.Instance);
        }

        await call.RequestStream.CompleteAsync().WaitAsync(cts.Token);
        Assert.False(await call.ResponseStream.MoveNext(cts.Token));
        Assert.Equal(StatusCode.OK, call.GetStatus().StatusCode);
        Assert.Equal(EchoService.TrailerValue, call.GetTrailers().GetValue(EchoService.TrailerName));
    }

    [Fact]
    public async Task Unary_ServerError_StatusAndDetailReachClient()
    {
        using var cts = Deadline();
        using var call = fixture.Client.UnaryAsync(new EchoRequest { Text = EchoService.ErrorText }, cancellationToken: cts.Token);

        var error = await Assert.ThrowsAsync<RpcException>(() => call.ResponseAsync.WaitAsync(cts.Token));

        Assert.Equal(StatusCode.NotFound, error.StatusCode);
        Assert.Equal("nope", error.Status.Detail);
        Assert.Equal(EchoService.TrailerValue, call.GetTrailers().GetValue(EchoService.TrailerName));
    }

    [Fact]
    public async Task Unary_DeadlineShorterThanServerDelay_FailsWithDeadlineExceeded()
    {
        using var cts = Deadline();
        var started = Stopwatch.StartNew();
        using var call = fixture.Client.UnaryAsync(
            new EchoRequest { Text = "deadline", DelayMs = 10_000 },
            deadline: DateTime.UtcNow.AddMilliseconds(300),
            cancellationToken: cts.Token);

        var error = await Assert.ThrowsAsync<RpcException>(() => call.ResponseAsync.WaitAsync(cts.Token));

        Assert.Equal(StatusCode.DeadlineExceeded, error.StatusCode);
        Assert.True(started.Elapsed < TimeSpan.FromSeconds(9), $"the deadline fired after {started.Elapsed}, not before the server's 10 s delay");
        await fixture.Instance.Probe("deadline").Cancelled.WaitAsync(cts.Token);
    }

    [Fact]
    public async Task Unary_ClientCancels_BackendSeesCancellation()
    {
        // No deadline, so no grpc-timeout header: the backend only stops if the sidecar resets the upstream stream.
        using var cts = Deadline();
        using var cancel = new CancellationTokenSource();
        var probe = fixture.Instance.Probe("cancel");
        using var call = fixture.Client.UnaryAsync(new EchoRequest { Text = "cancel", DelayMs = 60_000 }, cancellationToken: cancel.Token);
        await probe.Started.WaitAsync(cts.Token);

        await cancel.CancelAsync();

        var error = await Assert.ThrowsAsync<RpcException>(() => call.ResponseAsync.WaitAsync(cts.Token));
        Assert.Equal(StatusCode.Cancelled, error.StatusCode);
        await probe.Cancelled.WaitAsync(cts.Token);
    }

    [Fact]
    public async Task Unary_RoundRobinOverOneConnection_BalancesPerRequest()
    {
        var backends = new TestBackend[3];
        for (var i = 0; i < backends.Length; i++)
        {
            backends[i] = await EchoGrpcBackend.StartAsync($"greeter-{i + 1}");
        }

        try
        {
            await using var sidecar = await TestSidecar.StartAsync(EchoGrpcBackend.SidecarConfig(backends, "round-robin"));
            using var channel = EchoGrpcBackend.Channel(sidecar.Listener());
            var client = new Echo.EchoClient(channel);
            using var cts = Deadline();

            var counts = new Dictionary<string, int>(StringComparer.Ordinal);
            for (var i = 0; i < 300; i++)
            {
                var reply = await client.UnaryAsync(new EchoRequest { Text = $"rr{i}" }, cancellationToken: cts.Token).ResponseAsync.WaitAsync(cts.Token);
                counts[reply.Instance] = counts.GetValueOrDefault(reply.Instance) + 1;
            }

            Assert.Equal(backends.Select(b => b.Name).Order(StringComparer.Ordinal), counts.Keys.Order(StringComparer.Ordinal));
            Assert.All(counts.Values, count => Assert.InRange(count, 60, 140));

            // All 300 calls shared one client connection, so the spread is per request, not per connection.
            using var admin = Clients.Http1();
            var metrics = await admin.GetStringAsync(new Uri(sidecar.Admin, "/metrics"), cts.Token);
            Assert.Contains("mesh_connections_accepted_total{listener=\"outbound\",protocol=\"http2\"} 1\n", metrics, StringComparison.Ordinal);
        }
        finally
        {
            foreach (var backend in backends)
            {
                await backend.DisposeAsync();
            }
        }
    }
}
