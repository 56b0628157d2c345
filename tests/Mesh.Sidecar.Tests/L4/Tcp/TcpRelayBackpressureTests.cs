using System.Diagnostics;
using System.Net.Sockets;
using Mesh.Sidecar.L4.Tcp;
using Xunit.Abstractions;
using static Mesh.Sidecar.Tests.L4.Tcp.RelayHarness;

namespace Mesh.Sidecar.Tests.L4.Tcp;

/// <summary>
/// The relay tests run with no other test in parallel: the memory measurements are process-wide,
/// the timing tests (idle timeout) want a quiet machine, and the bulk transfers should not starve
/// other engineers' timing-sensitive tests (UDP) of CPU.
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class TcpRelayCollection
{
    public const string Name = "TcpRelay (real sockets, runs alone)";
}

/// <summary>Bounded memory and back-pressure, with splice(2) from the first byte, copying only, and as shipped (adaptive).</summary>
public abstract class TcpRelayBackpressureTests(ITestOutputHelper output)
{
    private const long OneGiB = 1L << 30;

    /// <summary>How much the process may grow while 1 GiB passes: 1/16 of what went through.</summary>
    private const long MemoryBound = 64L << 20;

    /// <summary>How long the writer's count must stand still to count as stalled.</summary>
    private static readonly TimeSpan StallWindow = TimeSpan.FromSeconds(2);

    [Fact]
    public async Task OneGiB_ToASlowReader_PassesWithoutBufferingInTheRelay()
    {
        // Warm-up (JIT, socket engine, pools) so the measurement sees the steady state only.
        await TransferToSlowReaderAsync(16L << 20);
        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();

        var heapBefore = GC.GetTotalMemory(forceFullCollection: true);
        var workingSetBefore = Environment.WorkingSet;
        var allocatedBefore = GC.GetTotalAllocatedBytes(precise: true);
        long peakHeap = heapBefore, peakWorkingSet = workingSetBefore;
        using var stop = new CancellationTokenSource();
        var sampler = Task.Run(async () =>
        {
            while (!stop.IsCancellationRequested)
            {
                peakHeap = Math.Max(peakHeap, GC.GetTotalMemory(forceFullCollection: false));
                peakWorkingSet = Math.Max(peakWorkingSet, Environment.WorkingSet);
                try
                {
                    await Task.Delay(10, stop.Token);
                }
                catch (OperationCanceledException)
                {
                }
            }
        });

        var clock = Stopwatch.StartNew();
        var (received, result) = await TransferToSlowReaderAsync(OneGiB);
        clock.Stop();
        await stop.CancelAsync();
        await sampler;
        var allocated = GC.GetTotalAllocatedBytes(precise: true) - allocatedBefore;

        output.WriteLine($"1 GiB in {clock.Elapsed.TotalSeconds:F2} s ({OneGiB / clock.Elapsed.TotalSeconds / (1 << 20):F0} MiB/s)");
        output.WriteLine($"managed heap growth (peak): {Mib(peakHeap - heapBefore)}; working set growth (peak): {Mib(peakWorkingSet - workingSetBefore)}; allocated during the run: {Mib(allocated)}; bound {Mib(MemoryBound)}");

        Assert.Equal(OneGiB, received);
        Assert.Equal(new RelayResult(0, OneGiB, RelayOutcome.Completed), result);
        Assert.True(peakHeap - heapBefore < MemoryBound, $"managed heap grew by {Mib(peakHeap - heapBefore)}");
        Assert.True(peakWorkingSet - workingSetBefore < MemoryBound, $"working set grew by {Mib(peakWorkingSet - workingSetBefore)}");

        // Nothing is copied into fresh arrays per chunk: 1 GiB passed, a few MiB at most were allocated.
        Assert.True(allocated < MemoryBound, $"{Mib(allocated)} allocated while relaying 1 GiB");
    }

    [Fact]
    public async Task StalledReader_StallsTheWriter_InsteadOfTheRelayReadingAhead()
    {
        const long total = 256L << 20;
        await using var h = await StartAsync();
        long sent = 0;
        var writer = Task.Run(async () =>
        {
            var block = RandomBytes(256 * 1024);
            while (Volatile.Read(ref sent) < total)
            {
                await SendAllAsync(h.Backend, block, block.Length);
                Interlocked.Add(ref sent, block.Length);
            }

            h.Backend.Shutdown(SocketShutdown.Send);
        });

        // The client reads nothing: the backend must get stuck once the socket buffers on the way and
        // the relay's one buffer are full. Wait until its count stops moving for two seconds: on a
        // loaded machine a writer can be starved of CPU for half a second while the relay would still
        // take everything it sends, and a window that short would call that a stall.
        var clock = Stopwatch.StartNew();
        long last = -1;
        var unchangedSince = clock.Elapsed;
        while (clock.Elapsed - unchangedSince < StallWindow && clock.Elapsed < Deadline && !writer.IsCompleted)
        {
            var now = Volatile.Read(ref sent);
            if (now != last)
            {
                last = now;
                unchangedSince = clock.Elapsed;
            }

            await Task.Delay(20);
        }

        var stalledAt = Volatile.Read(ref sent);
        output.WriteLine($"the backend stalled after {Mib(stalledAt)} of {Mib(total)} (kernel socket buffers + one relay buffer)");
        Assert.False(writer.IsCompleted, "the whole payload was accepted although nobody read it");
        Assert.True(stalledAt < MemoryBound, $"{Mib(stalledAt)} accepted with a stalled reader");

        // Reading resumes: everything arrives.
        h.Client.Shutdown(SocketShutdown.Send);
        var atClient = await ReadToEndAsync(h.Client).WaitAsync(Deadline);
        await writer.WaitAsync(Deadline);
        Assert.Equal(total, atClient.Count);
        Assert.Equal(new RelayResult(0, total, RelayOutcome.Completed), await h.Result);
    }

    // The backend writes `total` bytes in 1 MiB sends; the client reads 64 KiB at a time and yields
    // after each read. Returns what the client counted and the relay's result.
    private async Task<(long Received, RelayResult Result)> TransferToSlowReaderAsync(long total)
    {
        await using var h = await StartAsync();
        h.Client.Shutdown(SocketShutdown.Send);

        var writer = Task.Run(async () =>
        {
            var block = RandomBytes(1024 * 1024);
            for (long sent = 0; sent < total;)
            {
                var length = (int)Math.Min(block.Length, total - sent);
                await SendAllAsync(h.Backend, block.AsMemory(0, length), length);
                sent += length;
            }

            h.Backend.Shutdown(SocketShutdown.Send);
        });

        var reader = Task.Run(async () =>
        {
            var buffer = new byte[64 * 1024];
            long received = 0;
            while (true)
            {
                var read = await h.Client.ReceiveAsync(buffer.AsMemory(), SocketFlags.None);
                if (read == 0)
                {
                    return received;
                }

                received += read;
                await Task.Yield();
            }
        });

        var timeout = TimeSpan.FromSeconds(90);
        var count = await reader.WaitAsync(timeout);
        await writer.WaitAsync(timeout);
        return (count, await h.Result);
    }

    private static string Mib(long bytes) => $"{bytes / (1024.0 * 1024.0):F1} MiB";

    /// <summary>The relay mode under test, applied to each test's options.</summary>
    private protected abstract RelayOptions Mode(RelayOptions options);

    private Task<RelayHarness> StartAsync() => RelayHarness.StartAsync(Mode(new RelayOptions()));

    [Collection(TcpRelayCollection.Name)]
    public sealed class Splice(ITestOutputHelper output) : TcpRelayBackpressureTests(output)
    {
        private protected override RelayOptions Mode(RelayOptions options) => options with { ZeroCopyThreshold = 0 };
    }

    [Collection(TcpRelayCollection.Name)]
    public sealed class Adaptive(ITestOutputHelper output) : TcpRelayBackpressureTests(output)
    {
        private protected override RelayOptions Mode(RelayOptions options) => options;
    }

    [Collection(TcpRelayCollection.Name)]
    public sealed class Copy(ITestOutputHelper output) : TcpRelayBackpressureTests(output)
    {
        private protected override RelayOptions Mode(RelayOptions options) => options with { ZeroCopy = false };
    }
}
