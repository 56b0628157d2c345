using System.Threading.Channels;
using Mesh.Plugins.Loading;
using Mesh.Tests;
using Microsoft.Extensions.Time.Testing;

namespace Mesh.Plugins.Tests.Loading;

/// <summary>
/// The watcher on a real directory. Time is a fake clock so "the file has been quiet for 300 ms" is
/// decided by the test, not by the machine's load; the files and the file events are real.
/// </summary>
public sealed class PluginDirectorySourceTests : IDisposable
{
    private static readonly TimeSpan Settled = TimeSpan.FromSeconds(1);
    private readonly string _directory = Directory.CreateTempSubdirectory("mesh-plugins-").FullName;
    private readonly FakeTimeProvider _time = new();
    private readonly PluginDirectorySource _source;
    private readonly List<FilterPackage> _loaded = [];

    public PluginDirectorySourceTests()
    {
        _source = new PluginDirectorySource(time: _time);
        _source.SetDirectory(_directory);
    }

    public void Dispose()
    {
        _source.Dispose();
        foreach (var package in _loaded)
        {
            package.Retire();
        }

        Directory.Delete(_directory, recursive: true);
    }

    // Sees the files, lets the quiet period pass, and returns what the watcher reports then.
    private List<FilterSourceChange> Settle()
    {
        var changes = new List<FilterSourceChange>(_source.PollOnce());
        _time.Advance(Settled);
        changes.AddRange(_source.PollOnce());
        _loaded.AddRange(changes.Where(c => c.Package is not null).Select(c => c.Package!));
        return changes;
    }

    private static byte[] Stamp(string version) => PluginCompiler.Compile("Stamp", TestPlugins.Stamp(version), version: version);

    private string PluginPath => Path.Combine(_directory, "Stamp.dll");

    [Fact]
    public void ScanNow_PluginsPresent_LoadsEveryUnitAtOnce()
    {
        File.WriteAllBytes(PluginPath, Stamp("1.0.0"));
        File.WriteAllBytes(Path.Combine(_directory, "Broken.dll"), PluginCompiler.Compile("Broken", TestPlugins.ConstructorThrows));

        var changes = _source.ScanNow();
        _loaded.AddRange(changes.Where(c => c.Package is not null).Select(c => c.Package!));

        Assert.Equal(2, changes.Count);
        Assert.Contains(changes, c => c.Kind == FilterSourceChangeKind.Loaded && c.Package!.Version == "1.0.0" && c.File == PluginPath);
        Assert.Contains(changes, c => c.Kind == FilterSourceChangeKind.Refused && c.File.EndsWith("Broken.dll", StringComparison.Ordinal) && c.Reason!.Contains("threw InvalidOperationException", StringComparison.Ordinal));
        // Nothing changed since: the watcher reports nothing.
        Assert.Empty(Settle());
    }

    [Fact]
    public void Poll_FileAdded_LoadedOnlyAfterQuietPeriod()
    {
        File.WriteAllBytes(PluginPath, Stamp("1.0.0"));

        Assert.Empty(_source.PollOnce());
        _time.Advance(TimeSpan.FromMilliseconds(100));
        Assert.Empty(_source.PollOnce());
        _time.Advance(_source.QuietPeriod);
        var change = Assert.Single(_source.PollOnce());
        _loaded.Add(change.Package!);

        Assert.Equal(FilterSourceChangeKind.Loaded, change.Kind);
        Assert.Equal("1.0.0", change.Package!.Version);
    }

    [Fact]
    public void Poll_ReplacedInPlace_NewVersionLoaded()
    {
        File.WriteAllBytes(PluginPath, Stamp("1.0.0"));
        Settle();

        // Truncate and rewrite the same file, as cp does.
        using (var file = new FileStream(PluginPath, FileMode.Truncate, FileAccess.Write))
        {
            file.Write(Stamp("2.0.0"));
        }

        var change = Assert.Single(Settle());
        Assert.Equal(FilterSourceChangeKind.Loaded, change.Kind);
        Assert.Equal("2.0.0", change.Package!.Version);
    }

    [Fact]
    public void Poll_ReplacedByRename_NewVersionLoaded()
    {
        File.WriteAllBytes(PluginPath, Stamp("1.0.0"));
        Settle();

        var temp = Path.Combine(_directory, ".Stamp.dll.tmp");
        File.WriteAllBytes(temp, Stamp("2.0.0"));
        File.Move(temp, PluginPath, overwrite: true);

        var change = Assert.Single(Settle());
        Assert.Equal("2.0.0", change.Package!.Version);
    }

    [Fact]
    public async Task Poll_RenamedOverWithSameSizeAndTime_FileEventTriggersContentCheck()
    {
        var v1 = Stamp("1.0.1");
        var v2 = Stamp("1.0.2");
        Assert.Equal(v1.Length, v2.Length);
        File.WriteAllBytes(PluginPath, v1);
        Settle();
        var time = File.GetLastWriteTimeUtc(PluginPath);

        // Size and modification time are identical, so only the file event tells the two apart.
        var temp = Path.Combine(_directory, ".Stamp.dll.tmp");
        File.WriteAllBytes(temp, v2);
        File.SetLastWriteTimeUtc(temp, time);
        var events = WaitForEventAsync();
        File.Move(temp, PluginPath, overwrite: true);
        await events;

        var change = Assert.Single(Settle());
        Assert.Equal("1.0.2", change.Package!.Version);
    }

    [Fact]
    public void Poll_Deleted_RemovedAfterQuietPeriod()
    {
        File.WriteAllBytes(PluginPath, Stamp("1.0.0"));
        Settle();

        File.Delete(PluginPath);

        Assert.Empty(_source.PollOnce());
        _time.Advance(Settled);
        var change = Assert.Single(_source.PollOnce());
        Assert.Equal(FilterSourceChangeKind.Removed, change.Kind);
        Assert.Equal(PluginPath, change.Id);
    }

    [Fact]
    public void Poll_DeletedAndPutBackWithinQuietPeriod_ReplacementNotRemoval()
    {
        File.WriteAllBytes(PluginPath, Stamp("1.0.0"));
        Settle();

        File.Delete(PluginPath);
        Assert.Empty(_source.PollOnce());
        File.WriteAllBytes(PluginPath, Stamp("2.0.0"));

        var changes = Settle();
        var change = Assert.Single(changes);
        Assert.Equal(FilterSourceChangeKind.Loaded, change.Kind);
        Assert.Equal("2.0.0", change.Package!.Version);
    }

    [Fact]
    public void Poll_HalfWrittenFileQuietLongerThanQuietPeriod_NeverLoadedNorRefused()
    {
        var image = Stamp("1.0.0");
        using (var file = new FileStream(PluginPath, FileMode.CreateNew, FileAccess.Write))
        {
            // A writer that stalls halfway for longer than the quiet period.
            file.Write(image.AsSpan(0, image.Length / 2));
            file.Flush();
            Assert.Empty(Settle());
            _time.Advance(Settled);
            Assert.Empty(_source.PollOnce());
            file.Write(image.AsSpan(image.Length / 2));
        }

        var change = Assert.Single(Settle());
        Assert.Equal(FilterSourceChangeKind.Loaded, change.Kind);
    }

    [Fact]
    public void Poll_TruncatedFileNeverCompleted_RefusedAfterGrace()
    {
        var image = Stamp("1.0.0");
        File.WriteAllBytes(PluginPath, image[..(image.Length / 2)]);
        Assert.Empty(Settle());

        _time.Advance(_source.IncompleteGrace);
        var change = Assert.Single(_source.PollOnce());

        Assert.Equal(FilterSourceChangeKind.Refused, change.Kind);
        Assert.StartsWith("truncated:", change.Reason, StringComparison.Ordinal);
    }

    [Fact]
    public void Poll_RenamedToAnotherFile_RemovalReportedBeforeTheNewFile()
    {
        File.WriteAllBytes(PluginPath, Stamp("1.0.0"));
        Settle();

        File.Move(PluginPath, Path.Combine(_directory, "Stamp2.dll"));
        var changes = Settle();

        Assert.Equal([FilterSourceChangeKind.Removed, FilterSourceChangeKind.Loaded], changes.Select(c => c.Kind));
        Assert.Equal(PluginPath, changes[0].Id);
    }

    [Fact]
    public void Recheck_UnchangedUnit_LoadedAgainOnTheNextPass()
    {
        File.WriteAllBytes(PluginPath, Stamp("1.0.0"));
        Settle();

        _source.Recheck(PluginPath);

        var change = Assert.Single(_source.PollOnce());
        _loaded.Add(change.Package!);
        Assert.Equal(FilterSourceChangeKind.Loaded, change.Kind);
        Assert.Empty(Settle());
    }

    [Fact]
    public void Poll_TouchedWithoutChange_NotReloaded()
    {
        File.WriteAllBytes(PluginPath, Stamp("1.0.0"));
        Settle();

        File.SetLastWriteTimeUtc(PluginPath, DateTime.UtcNow.AddMinutes(1));

        Assert.Empty(Settle());
    }

    [Fact]
    public void Poll_HiddenAndNonDllFiles_Ignored()
    {
        File.WriteAllBytes(Path.Combine(_directory, ".Stamp.dll"), Stamp("1.0.0"));
        File.WriteAllText(Path.Combine(_directory, "README.md"), "notes");
        Directory.CreateDirectory(Path.Combine(_directory, "..data"));

        Assert.Empty(Settle());
    }

    [Fact]
    public void Poll_PluginFolderWithDependency_LoadsAndResolvesTheDependencyFromTheFolder()
    {
        var folder = Directory.CreateDirectory(Path.Combine(_directory, "Greeter")).FullName;
        var dependency = PluginCompiler.Compile("Greeting", "namespace Greeting; public static class Words { public static string Hello => \"hello from a dependency\"; }");
        File.WriteAllBytes(Path.Combine(folder, "Greeting.dll"), dependency);
        File.WriteAllBytes(Path.Combine(folder, "Greeter.dll"), PluginCompiler.Compile(
            "Greeter",
            """
            namespace Greeter;
            public sealed class GreeterFactory : IRequestFilterFactory
            {
                public string Name => "greeter";
                public IRequestFilter Create(FilterSettings settings) => new GreeterFilter();
            }
            public sealed class GreeterFilter : IRequestFilter
            {
                public ValueTask<FilterResult> OnRequestAsync(IRequestContext context, CancellationToken cancellationToken)
                {
                    context.SetHeader("x-greeting", Greeting.Words.Hello);
                    return ValueTask.FromResult(FilterResult.Continue);
                }
            }
            """,
            references: [Microsoft.CodeAnalysis.MetadataReference.CreateFromImage(dependency)]));

        var change = Assert.Single(Settle());

        Assert.Equal(folder, change.Id);
        var filter = change.Package!.RequestFactories[0].Create(FilterSettings.FromJson("greeter", "{}"));
        var context = new TestRequestContext();
        var pending = filter.OnRequestAsync(context, CancellationToken.None);
        Assert.True(pending.IsCompletedSuccessfully);
        Assert.Equal("hello from a dependency", context.GetHeader("x-greeting"));
    }

    [Fact]
    public void Poll_FolderWithoutMainAssembly_Refused()
    {
        var folder = Directory.CreateDirectory(Path.Combine(_directory, "Empty")).FullName;
        File.WriteAllBytes(Path.Combine(folder, "Other.dll"), Stamp("1.0.0"));

        var change = Assert.Single(Settle());

        Assert.Equal(FilterSourceChangeKind.Refused, change.Kind);
        Assert.Contains("no Empty.dll in the plugin folder", change.Reason);
    }

    [Fact]
    public async Task WatchAsync_RealClock_ReportsAddReplaceDelete()
    {
        using var source = new PluginDirectorySource { PollInterval = TimeSpan.FromMilliseconds(50), QuietPeriod = TimeSpan.FromMilliseconds(150) };
        var directory = Directory.CreateDirectory(Path.Combine(_directory, ".watched")).FullName;
        source.SetDirectory(directory);
        var changes = Channel.CreateUnbounded<FilterSourceChange>();
        using var stop = new CancellationTokenSource();
        var watching = source.WatchAsync(changes.Writer, stop.Token);
        var path = Path.Combine(directory, "Stamp.dll");

        File.WriteAllBytes(path, Stamp("1.0.0"));
        var added = await changes.Reader.ReadAsync().AsTask().WaitAsync(TimeSpan.FromSeconds(20));
        File.WriteAllBytes(path + ".new", Stamp("2.0.0"));
        File.Move(path + ".new", path, overwrite: true);
        var replaced = await changes.Reader.ReadAsync().AsTask().WaitAsync(TimeSpan.FromSeconds(20));
        File.Delete(path);
        var removed = await changes.Reader.ReadAsync().AsTask().WaitAsync(TimeSpan.FromSeconds(20));
        await stop.CancelAsync();
        await watching;

        Assert.Equal(("1.0.0", FilterSourceChangeKind.Loaded), (added.Package!.Version, added.Kind));
        Assert.Equal(("2.0.0", FilterSourceChangeKind.Loaded), (replaced.Package!.Version, replaced.Kind));
        Assert.Equal(FilterSourceChangeKind.Removed, removed.Kind);
        added.Package.Retire();
        replaced.Package.Retire();
    }

    // Completes once the source's own file watcher has marked the renamed unit.
    private Task WaitForEventAsync()
    {
        var seen = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        _source.Touched += () => seen.TrySetResult();
        return seen.Task.WaitAsync(TimeSpan.FromSeconds(20));
    }
}
