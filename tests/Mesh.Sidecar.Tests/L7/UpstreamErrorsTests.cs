// The Warning for a failing endpoint: one line per endpoint per interval, carrying the count of the failures it did not log.
using Mesh.Sidecar.L7;
using Mesh.Sidecar.Tests.LoadBalancing;
using Microsoft.Extensions.Time.Testing;

namespace Mesh.Sidecar.Tests.L7;

public class UpstreamErrorsTests
{
    [Fact]
    public void Report_ManyFailuresOfOneEndpoint_OneLinePerIntervalWithTheCountInBetween()
    {
        var time = new FakeTimeProvider();
        var logger = new Recorder();
        var errors = new UpstreamErrors(logger, time);
        var dead = TestEndpoints.Create(9001);

        for (var i = 0; i < 50; i++)
        {
            errors.Report("api", dead, 502, "failed: refused");
        }

        Assert.Equal([0], logger.Suppressed);

        time.Advance(UpstreamErrors.LogInterval - TimeSpan.FromMilliseconds(1));
        errors.Report("api", dead, 502, "failed: refused");
        Assert.Single(logger.Suppressed);

        time.Advance(TimeSpan.FromMilliseconds(1));
        errors.Report("api", dead, 502, "failed: refused");
        Assert.Equal([0, 50], logger.Suppressed);
    }

    [Fact]
    public void Report_TwoEndpoints_EachGetsItsOwnLine()
    {
        var logger = new Recorder();
        var errors = new UpstreamErrors(logger, new FakeTimeProvider());

        errors.Report("api", TestEndpoints.Create(9001), 502, "failed");
        errors.Report("api", TestEndpoints.Create(9002), 504, "did not answer");

        Assert.Equal(2, logger.Suppressed.Count);
    }

    [Fact]
    public void Report_Concurrently_LogsOnceAndCountsEveryOtherFailure()
    {
        var time = new FakeTimeProvider();
        var logger = new Recorder();
        var errors = new UpstreamErrors(logger, time);
        var dead = TestEndpoints.Create(9001);

        Parallel.For(0, 10_000, new ParallelOptions { MaxDegreeOfParallelism = 4 }, _ => errors.Report("api", dead, 502, "failed"));
        Assert.Equal([0], logger.Suppressed);

        // Nothing lost under contention: the next line counts the other 9,999.
        time.Advance(UpstreamErrors.LogInterval);
        errors.Report("api", dead, 502, "failed");
        Assert.Equal([0, 9_999], logger.Suppressed);
    }

    private sealed class Recorder : ILogger
    {
        public List<int> Suppressed { get; } = [];

        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            Assert.Equal(LogLevel.Warning, logLevel);
            Assert.Equal(3050, eventId.Id);
            var values = (IReadOnlyList<KeyValuePair<string, object?>>)state!;
            lock (Suppressed)
            {
                Suppressed.Add((int)values.Single(v => v.Key == "Suppressed").Value!);
            }
        }
    }
}
