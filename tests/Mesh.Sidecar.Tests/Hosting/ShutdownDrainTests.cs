// The drain's count of requests in flight: striped per processor, exact in sum even when requests end on another thread.
using Mesh.Sidecar.Hosting;
using Microsoft.Extensions.Logging.Abstractions;

namespace Mesh.Sidecar.Tests.Hosting;

public class ShutdownDrainTests
{
    [Fact]
    public async Task TrackRequest_ManyConcurrentRequestsHoppingThreads_CountIsExact()
    {
        var drain = new ShutdownDrain(NullLogger<ShutdownDrain>.Instance);
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var held = Enumerable.Range(0, 16).Select(_ => Task.Run(async () =>
        {
            using var scope = drain.TrackRequest();
            await release.Task;
        })).ToArray();

        // Bounded churn on every core, each request ending after an await, usually on another thread.
        var churn = Enumerable.Range(0, 8).Select(_ => Task.Run(async () =>
        {
            for (var i = 0; i < 5_000; i++)
            {
                using var scope = drain.TrackRequest();
                await Task.Yield();
            }
        })).ToArray();
        await Task.WhenAll(churn);

        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        while (drain.RequestsInFlight != 16)
        {
            // The held requests are entering on the thread pool; they all do, and nothing else is counted.
            await Task.Delay(10, deadline.Token);
        }

        release.SetResult();
        await Task.WhenAll(held);
        Assert.Equal(0, drain.RequestsInFlight);
    }
}
