// The config watcher outlives whatever a change handler throws: one bad edit never ends hot reload.
using System.Threading.Channels;
using Mesh.Sidecar.Configuration;

namespace Mesh.Sidecar.Tests.Configuration;

public class ConfigWatcherTests
{
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(20);

    [Fact]
    public async Task Run_HandlerThrows_ReportsItAndHandlesTheNextChange()
    {
        var path = Path.Combine(Directory.CreateTempSubdirectory("mesh-watcher-").FullName, "sidecar.json");
        await File.WriteAllTextAsync(path, "v0");
        var changes = Channel.CreateUnbounded<string>();
        var errors = Channel.CreateUnbounded<Exception>();
        var calls = 0;
        var watcher = new ConfigWatcher(
            path,
            TimeSpan.FromMilliseconds(20),
            async _ =>
            {
                var content = await File.ReadAllTextAsync(path);
                if (Interlocked.Increment(ref calls) == 1)
                {
                    // What a loader bug looked like: an exception out of the handler.
                    throw new NullReferenceException("loader bug on " + content);
                }

                changes.Writer.TryWrite(content);
            },
            ex => errors.Writer.TryWrite(ex));
        watcher.Seen(await File.ReadAllBytesAsync(path));
        using var stop = new CancellationTokenSource();
        var running = watcher.RunAsync(stop.Token);
        using var deadline = new CancellationTokenSource(Deadline);

        await ReplaceAsync(path, "v1");
        var error = await errors.Reader.ReadAsync(deadline.Token);
        Assert.Equal("loader bug on v1", error.Message);
        Assert.False(running.IsCompleted);

        await ReplaceAsync(path, "v2");
        Assert.Equal("v2", await changes.Reader.ReadAsync(deadline.Token));

        await stop.CancelAsync();
        await running.WaitAsync(Deadline);
    }

    // Write then rename, so the watcher never reads half a file.
    private static async Task ReplaceAsync(string path, string content)
    {
        await File.WriteAllTextAsync(path + ".tmp", content);
        File.Move(path + ".tmp", path, overwrite: true);
    }
}
