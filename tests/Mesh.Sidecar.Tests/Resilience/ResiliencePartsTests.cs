// The resilience building blocks on a fake clock: budget, token bucket, grpc-timeout, seeded draws, body replay, availability under concurrency.
using System.Text;
using Mesh.Discovery;
using Mesh.Sidecar.Configuration;
using Mesh.Sidecar.Endpoints;
using Mesh.Sidecar.LoadBalancing;
using Mesh.Sidecar.Metrics;
using Mesh.Sidecar.Resilience;
using Mesh.Sidecar.Tests.LoadBalancing;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Primitives;
using Microsoft.Extensions.Time.Testing;

namespace Mesh.Sidecar.Tests.Resilience;

public sealed class ResiliencePartsTests
{
    private static ResilienceClock Clock(out FakeTimeProvider fake)
    {
        fake = new FakeTimeProvider(new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero));
        return new ResilienceClock(fake);
    }

    [Fact]
    public void RetryBudget_CapsRetriesAtTheShareOfRequests_WithAFloor_AndForgetsAfterTenSeconds()
    {
        var budget = new RetryBudget(20, Clock(out var fake));

        // A quiet service still gets the floor.
        Assert.Equal(RetryBudget.MinRetries, Enumerable.Range(0, 300).Count(_ => budget.TryRetry()));

        for (var i = 0; i < 1000; i++)
        {
            budget.RecordRequest();
        }

        Assert.Equal(200 - RetryBudget.MinRetries, Enumerable.Range(0, 300).Count(_ => budget.TryRetry()));

        // Ten seconds later the window holds nothing of that.
        fake.Advance(TimeSpan.FromSeconds(10));
        Assert.Equal(RetryBudget.MinRetries, Enumerable.Range(0, 300).Count(_ => budget.TryRetry()));
    }

    [Fact]
    public void RetryBudget_ZeroPercent_DoesNotCap()
    {
        var budget = new RetryBudget(0, Clock(out _));

        Assert.Equal(1000, Enumerable.Range(0, 1000).Count(_ => budget.TryRetry()));
    }

    [Fact]
    public void TokenBucket_RefillsWholePeriods_UpToTheBurst_WithRetryAfter()
    {
        using var bucket = new TokenBucketLimiter(rate: 2, burst: 3, periodMs: 1000, Clock(out var fake));

        Assert.Equal(3, Enumerable.Range(0, 5).Count(_ => bucket.AttemptAcquire().IsAcquired));
        using (var refused = bucket.AttemptAcquire())
        {
            Assert.False(refused.IsAcquired);
            Assert.True(refused.TryGetMetadata(System.Threading.RateLimiting.MetadataName.RetryAfter, out var retryAfter));
            Assert.Equal(TimeSpan.FromSeconds(1), retryAfter);
        }

        fake.Advance(TimeSpan.FromMilliseconds(999));
        Assert.False(bucket.AttemptAcquire().IsAcquired);
        fake.Advance(TimeSpan.FromMilliseconds(1));
        Assert.Equal(2, Enumerable.Range(0, 5).Count(_ => bucket.AttemptAcquire().IsAcquired));
        fake.Advance(TimeSpan.FromMinutes(1));
        Assert.Equal(3, Enumerable.Range(0, 5).Count(_ => bucket.AttemptAcquire().IsAcquired));
        Assert.Null(bucket.IdleDuration);
        fake.Advance(TimeSpan.FromSeconds(2));
        Assert.Equal(TimeSpan.Zero, bucket.IdleDuration);
    }

    [Theory]
    [InlineData("100m", 100)]
    [InlineData("2S", 2000)]
    [InlineData("1M", 60_000)]
    [InlineData("1H", 3_600_000)]
    [InlineData("1500u", 2)]
    [InlineData("1n", 1)]
    [InlineData("99999999m", 99_999_999)]
    public void GrpcTimeout_Parse_Units(string header, int ms) => Assert.Equal(ms, GrpcTimeout.Parse(new StringValues(header)));

    [Theory]
    [InlineData("")]
    [InlineData("m")]
    [InlineData("10")]
    [InlineData("10x")]
    [InlineData("-1S")]
    [InlineData("123456789S")]
    public void GrpcTimeout_Parse_Malformed_IsNull(string header) => Assert.Null(GrpcTimeout.Parse(new StringValues(header)));

    [Fact]
    public void PolicyRandom_SameSeed_SameDraws_UniformEnough()
    {
        var a = new PolicyRandom(42);
        var b = new PolicyRandom(42);
        var draws = Enumerable.Range(0, 100_000).Select(_ => a.Next()).ToArray();

        Assert.Equal(draws.Take(100), Enumerable.Range(0, 100).Select(_ => b.Next()));
        Assert.All(draws, d => Assert.InRange(d, 0, 0.9999999999));
        var buckets = new int[10];
        foreach (var d in draws)
        {
            buckets[(int)(d * 10)]++;
        }

        Assert.All(buckets, count => Assert.InRange(count, 9_500, 10_500));
    }

    [Fact]
    public void SplitPicker_FollowsWeights_SkipsZero()
    {
        var picker = new SplitPicker([new SplitOptions { Service = "a", Weight = 90 }, new SplitOptions { Service = "z", Weight = 0 }, new SplitOptions { Service = "b", Weight = 10 }]);

        Assert.Equal("a", picker.Pick(0).Service);
        Assert.Equal("a", picker.Pick(0.8999).Service);
        Assert.Equal("b", picker.Pick(0.9).Service);
        Assert.Equal("b", picker.Pick(0.99999).Service);
    }

    [Fact]
    public async Task ReplayableBody_EachReaderGetsTheWholeBody_ContinuingFromTheClient()
    {
        var payload = Encoding.ASCII.GetBytes(string.Concat(Enumerable.Range(0, 2000).Select(i => i.ToString(System.Globalization.CultureInfo.InvariantCulture))));
        using var body = new ReplayableBody(new MemoryStream(payload), limit: payload.Length);

        // The first try reads only part of it, the second the whole, the third again.
        var first = new byte[1000];
        await body.NewReader().ReadExactlyAsync(first);
        Assert.Equal(payload.AsSpan(0, 1000).ToArray(), first);
        Assert.Equal(payload, await ReadAllAsync(body.NewReader()));
        Assert.Equal(payload, await ReadAllAsync(body.NewReader()));
        Assert.True(body.Complete);
        Assert.Equal(payload, body.Recorded.ToArray());
    }

    [Fact]
    public async Task ReplayableBody_OverTheLimit_StopsRecording()
    {
        using var body = new ReplayableBody(new MemoryStream(new byte[5000]), limit: 4096);

        Assert.Equal(5000, (await ReadAllAsync(body.NewReader())).Length);
        Assert.False(body.Replayable);
        Assert.False(body.Complete);
    }

    [Fact]
    public async Task ReplayableBody_ZeroByteRead_IsNotTheEnd()
    {
        using var body = new ReplayableBody(new MemoryStream(new byte[10]), limit: 100);
        var reader = body.NewReader();

        Assert.Equal(0, await reader.ReadAsync(Memory<byte>.Empty));
        Assert.Equal(10, (await ReadAllAsync(reader)).Length);
    }

    private static async Task<byte[]> ReadAllAsync(Stream stream)
    {
        using var copy = new MemoryStream();
        var buffer = new byte[333];
        int read;
        while ((read = await stream.ReadAsync(buffer)) > 0)
        {
            copy.Write(buffer, 0, read);
        }

        return copy.ToArray();
    }

    [Fact]
    public async Task Availability_FlagsFlippingWhilePicking_PicksFromOneSnapshot_AndEndsConsistent()
    {
        // Ejections, checks and breakers flip flags from timer and request threads while HTTP/2 streams pick at once.
        var endpoints = TestEndpoints.Many(8);
        var cluster = new Cluster("api", LoadBalancingPolicies.RoundRobin, endpoints, LoadBalancer.Create(LoadBalancingPolicies.RoundRobin, endpoints), null, new HttpMessageInvoker(new SocketsHttpHandler()), new Yarp.ReverseProxy.Forwarder.ForwarderRequestConfig());
        cluster.Activate();
        using var stop = new CancellationTokenSource();
        var flippers = Enumerable.Range(0, 4).Select(t => Task.Run(() =>
        {
            var random = new Random(t);
            for (var i = 0; i < 20_000; i++)
            {
                var endpoint = endpoints[random.Next(endpoints.Length)];
                switch (random.Next(3))
                {
                    case 0:
                        endpoint.SetFailingCheck(random.Next(2) == 0);
                        break;
                    case 1:
                        endpoint.SetEjected(random.Next(2) == 0 ? DateTimeOffset.UnixEpoch : null);
                        break;
                    default:
                        endpoint.SetBreakerOpen(random.Next(2) == 0);
                        break;
                }
            }
        })).ToArray();
        var pickers = Enumerable.Range(0, 4).Select(_ => Task.Run(() =>
        {
            var picks = 0;
            while (!stop.IsCancellationRequested || picks < 10_000)
            {
                var balancer = cluster.Balancer;
                var picked = balancer.Pick(null);
                Assert.True(picked is null || Array.IndexOf(balancer.Endpoints, picked) >= 0);
                picks++;
            }

            return picks;
        })).ToArray();

        await Task.WhenAll(flippers);
        await stop.CancelAsync();
        Assert.All(await Task.WhenAll(pickers), picks => Assert.True(picks > 0));

        // Whatever the interleaving, the last rebuild saw the final flags.
        Assert.Equal(endpoints.Where(e => e.IsAvailable).ToArray(), cluster.Balancer.Endpoints);
        foreach (var endpoint in endpoints)
        {
            endpoint.SetFailingCheck(false);
            endpoint.SetEjected(null);
            endpoint.SetBreakerOpen(false);
        }

        Assert.Equal(endpoints, cluster.Balancer.Endpoints);
    }

    [Fact]
    public void Outlier_ConcurrentFailures_EjectOnce_WithinTheCap()
    {
        var endpoints = TestEndpoints.Many(4);
        var cluster = new Cluster("api", LoadBalancingPolicies.RoundRobin, endpoints, LoadBalancer.Create(LoadBalancingPolicies.RoundRobin, endpoints), null, new HttpMessageInvoker(new SocketsHttpHandler()), new Yarp.ReverseProxy.Forwarder.ForwarderRequestConfig());
        cluster.Activate();
        using var meters = new TestMeterFactory();
        var detector = new OutlierDetector("api", new OutlierDetectionOptions { ConsecutiveFailures = 3, MaxEjectionPercent = 50 }, Clock(out _), new ResilienceMetrics(new MeshMetrics(meters)), NullLogger.Instance);

        Parallel.For(0, 10_000, i => detector.Failure(cluster, endpoints[i % endpoints.Length]));

        Assert.Equal(2, endpoints.Count(e => e.IsEjected));
        Assert.Equal(2, cluster.Balancer.Endpoints.Length);
    }
}

/// <summary>A meter factory for tests that owns its meters.</summary>
internal sealed class TestMeterFactory : System.Diagnostics.Metrics.IMeterFactory
{
    private readonly List<System.Diagnostics.Metrics.Meter> _meters = [];

    public System.Diagnostics.Metrics.Meter Create(System.Diagnostics.Metrics.MeterOptions options)
    {
        var meter = new System.Diagnostics.Metrics.Meter(options.Name, options.Version, options.Tags, this);
        _meters.Add(meter);
        return meter;
    }

    public void Dispose()
    {
        foreach (var meter in _meters)
        {
            meter.Dispose();
        }
    }
}
