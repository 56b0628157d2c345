// Watches plugins/ itself (McMaster's watcher misses files moved in by rename): add, replace in place, replace by rename, delete.
using System.Security.Cryptography;
using System.Text;
using System.Threading.Channels;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Mesh.Plugins.Loading;

/// <summary>
/// The C# plugin source. Each top-level <c>Name.dll</c> and each folder <c>Name/</c> (main assembly
/// <c>Name/Name.dll</c>, dependencies beside it) is one plugin. The directory is polled and watched:
/// a unit whose files changed (size, time, or any file event, which catches a rename that keeps
/// both) is loaded once nothing has changed for <see cref="QuietPeriod"/> and its assembly is
/// complete, so a half-written file is never loaded. Content that did not change is not reloaded.
/// Names starting with a dot (editors' and copy tools' temporary files, Kubernetes' <c>..data</c>) are ignored.
/// </summary>
public sealed partial class PluginDirectorySource : IFilterSource
{
    private readonly ILogger _logger;
    private readonly TimeProvider _time;
    private readonly object _gate = new();
    private readonly Dictionary<string, UnitState> _units = new(StringComparer.Ordinal);
    private FileSystemWatcher? _watcher;
    private string? _directory;
    private string? _watched;
    private bool _disposed;

    /// <summary>Creates the source; <see cref="SetDirectory"/> points it at a folder.</summary>
    public PluginDirectorySource(ILogger? logger = null, TimeProvider? time = null)
    {
        _logger = logger ?? NullLogger.Instance;
        _time = time ?? TimeProvider.System;
    }

    /// <summary>How long a unit's files must stay unchanged before it is loaded.</summary>
    public TimeSpan QuietPeriod { get; init; } = TimeSpan.FromMilliseconds(300);

    /// <summary>How often the directory is checked.</summary>
    public TimeSpan PollInterval { get; init; } = TimeSpan.FromMilliseconds(200);

    /// <summary>How long an assembly that is shorter than its headers declare is waited for before it is refused as truncated.</summary>
    public TimeSpan IncompleteGrace { get; init; } = TimeSpan.FromSeconds(5);

    /// <inheritdoc />
    public string Name => PluginAssemblyLoader.SourceName;

    /// <inheritdoc />
    public string? Directory
    {
        get
        {
            lock (_gate)
            {
                return _directory;
            }
        }
    }

    /// <inheritdoc />
    public void SetDirectory(string directory)
    {
        ArgumentException.ThrowIfNullOrEmpty(directory);
        lock (_gate)
        {
            _directory = Path.GetFullPath(directory);
        }
    }

    /// <inheritdoc />
    public IReadOnlyList<FilterSourceChange> ScanNow() => Poll(waitForQuiet: false);

    /// <inheritdoc />
    public void Recheck(string id)
    {
        ArgumentNullException.ThrowIfNull(id);
        lock (_gate)
        {
            if (_units.TryGetValue(id, out var state))
            {
                // Not null: the unit was processed once, so its removal is still reported.
                state.ProcessedHash = "";
                state.ProcessedFingerprint = "\0";
            }
        }
    }

    /// <summary>Raised after a file event marked units for a check (tests wait on it).</summary>
    internal event Action? Touched;

    /// <summary>One pass of the watcher: the changes whose files have settled by now.</summary>
    internal IReadOnlyList<FilterSourceChange> PollOnce() => Poll(waitForQuiet: true);

    /// <inheritdoc />
    public async Task WatchAsync(ChannelWriter<FilterSourceChange> changes, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(changes);
        while (!cancellationToken.IsCancellationRequested)
        {
            try
            {
                foreach (var change in Poll(waitForQuiet: true))
                {
                    await changes.WriteAsync(change, cancellationToken).ConfigureAwait(false);
                }
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                break;
            }
            catch (Exception ex)
            {
                Log.PollFailed(_logger, Directory ?? "", ex);
            }

            try
            {
                await Task.Delay(PollInterval, _time, cancellationToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                break;
            }
        }
    }

    /// <summary>Stops the file watcher.</summary>
    public void Dispose()
    {
        lock (_gate)
        {
            _disposed = true;
            _watcher?.Dispose();
            _watcher = null;
        }
    }

    private List<FilterSourceChange> Poll(bool waitForQuiet)
    {
        var changes = new List<FilterSourceChange>();
        string? directory;
        lock (_gate)
        {
            directory = _directory;
            if (directory is null || _disposed)
            {
                return changes;
            }

            EnsureWatcher(directory);
        }

        var now = _time.GetTimestamp();
        var present = Units(directory);

        // Loading happens under the lock too: file events that arrive meanwhile wait, so none is lost.
        lock (_gate)
        {
            // Removals first: a plugin renamed to another file (or moved to a new directory) frees its
            // filter names before the new file, which publishes the same names, is tried.
            foreach (var state in _units.Values.ToList())
            {
                if (present.ContainsKey(state.Path))
                {
                    continue;
                }

                if (state.MissingSince < 0)
                {
                    state.MissingSince = now;
                }

                // A unit deleted and put back at once (rm then cp) is a replacement, not a removal.
                if (!waitForQuiet || _time.GetElapsedTime(state.MissingSince, now) >= QuietPeriod)
                {
                    _units.Remove(state.Path);
                    if (state.ProcessedHash is not null)
                    {
                        changes.Add(new FilterSourceChange(Name, state.Path, state.Path, FilterSourceChangeKind.Removed));
                    }
                }
            }

            foreach (var (path, isFolder) in present)
            {
                var fingerprint = Fingerprint(path, isFolder);
                if (!_units.TryGetValue(path, out var state))
                {
                    state = new UnitState(path, isFolder) { Fingerprint = fingerprint, ChangedAt = now };
                    _units[path] = state;
                }

                state.MissingSince = -1;
                if (fingerprint != state.Fingerprint)
                {
                    state.Fingerprint = fingerprint;
                    state.ChangedAt = now;
                }

                if (!state.NeedsCheck && fingerprint == state.ProcessedFingerprint)
                {
                    continue;
                }

                if ((!waitForQuiet || _time.GetElapsedTime(Math.Max(state.ChangedAt, state.TouchedAt), now) >= QuietPeriod)
                    && Process(state, now, waitForQuiet) is { } change)
                {
                    changes.Add(change);
                }
            }
        }

        return changes;
    }

    // Reads the unit, skips content already processed, and loads it.
    private FilterSourceChange? Process(UnitState state, long now, bool waitForQuiet)
    {
        var main = state.IsFolder ? Path.Combine(state.Path, Path.GetFileName(state.Path) + ".dll") : state.Path;
        byte[] image;
        string hash;
        try
        {
            if (state.IsFolder && !File.Exists(main))
            {
                return Settle(state, "", Refused(state, main, $"no {Path.GetFileName(main)} in the plugin folder (a folder's main assembly is named after the folder)"));
            }

            image = File.ReadAllBytes(main);
            hash = state.IsFolder ? FolderHash(state.Path) : PluginAssemblyLoader.Hash(image);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            // Vanished or locked between listing and reading: look again on the next poll.
            Log.ReadFailed(_logger, main, ex.Message);
            return null;
        }

        if (hash == state.ProcessedHash)
        {
            state.ProcessedFingerprint = state.Fingerprint;
            state.NeedsCheck = false;
            return null;
        }

        var result = PluginAssemblyLoader.Load(state.Path, main, image, hash);
        if (result.Incomplete)
        {
            if (state.IncompleteSince < 0)
            {
                state.IncompleteSince = now;
            }

            if (waitForQuiet && _time.GetElapsedTime(state.IncompleteSince, now) < IncompleteGrace)
            {
                Log.StillWriting(_logger, main, result.Refusal ?? "");
                return null;
            }

            if (!waitForQuiet)
            {
                // At start-up a file still being written is left to the watcher.
                return null;
            }

            return Settle(state, hash, Refused(state, main, "truncated: " + result.Refusal));
        }

        state.IncompleteSince = -1;
        return Settle(state, hash, result.Package is { } package
            ? new FilterSourceChange(Name, state.Path, main, FilterSourceChangeKind.Loaded, package)
            : Refused(state, main, result.Refusal ?? "refused"));
    }

    private FilterSourceChange Refused(UnitState state, string file, string reason) =>
        new(Name, state.Path, file, FilterSourceChangeKind.Refused, Reason: reason);

    private static FilterSourceChange Settle(UnitState state, string hash, FilterSourceChange change)
    {
        state.ProcessedFingerprint = state.Fingerprint;
        state.ProcessedHash = hash;
        state.NeedsCheck = false;
        return change;
    }

    private static Dictionary<string, bool> Units(string directory)
    {
        var units = new Dictionary<string, bool>(StringComparer.Ordinal);
        if (!System.IO.Directory.Exists(directory))
        {
            return units;
        }

        try
        {
            foreach (var entry in new DirectoryInfo(directory).EnumerateFileSystemInfos())
            {
                if (entry.Name.StartsWith('.'))
                {
                    continue;
                }

                if (entry is DirectoryInfo)
                {
                    units[entry.FullName] = true;
                }
                else if (entry.Name.EndsWith(".dll", StringComparison.OrdinalIgnoreCase))
                {
                    units[entry.FullName] = false;
                }
            }
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            // The directory went away while listing; its units count as missing this time.
        }

        return units;
    }

    // Sizes and modification times of every file of the unit: cheap, and any write changes it.
    private static string Fingerprint(string path, bool isFolder)
    {
        try
        {
            if (!isFolder)
            {
                var file = new FileInfo(path);
                return file.Exists ? $"{file.Length}:{file.LastWriteTimeUtc.Ticks}" : "";
            }

            var text = new StringBuilder();
            foreach (var file in new DirectoryInfo(path).EnumerateFiles("*", SearchOption.AllDirectories).OrderBy(f => f.FullName, StringComparer.Ordinal))
            {
                text.Append(file.FullName).Append(':').Append(file.Length).Append(':').Append(file.LastWriteTimeUtc.Ticks).Append('|');
            }

            return text.ToString();
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return "unreadable:" + ex.Message;
        }
    }

    private static string FolderHash(string folder)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        foreach (var file in System.IO.Directory.EnumerateFiles(folder, "*", SearchOption.AllDirectories).Order(StringComparer.Ordinal))
        {
            hash.AppendData(Encoding.UTF8.GetBytes(Path.GetRelativePath(folder, file) + "\n"));
            hash.AppendData(File.ReadAllBytes(file));
        }

        return Convert.ToHexString(hash.GetHashAndReset());
    }

    // File events mark units to be checked by content even when size and time look the same (a rename
    // of a file with the same length and time); the poll still waits for the quiet period.
    private void EnsureWatcher(string directory)
    {
        if (_watched == directory && _watcher is not null)
        {
            return;
        }

        _watcher?.Dispose();
        _watcher = null;
        _watched = directory;
        if (!System.IO.Directory.Exists(directory))
        {
            _watched = null;
            return;
        }

        try
        {
            var watcher = new FileSystemWatcher(directory)
            {
                IncludeSubdirectories = true,
                NotifyFilter = NotifyFilters.FileName | NotifyFilters.DirectoryName | NotifyFilters.LastWrite | NotifyFilters.Size | NotifyFilters.CreationTime,
            };
            watcher.Changed += (_, e) => Touch(directory, e.FullPath);
            watcher.Created += (_, e) => Touch(directory, e.FullPath);
            watcher.Deleted += (_, e) => Touch(directory, e.FullPath);
            watcher.Renamed += (_, e) =>
            {
                Touch(directory, e.OldFullPath);
                Touch(directory, e.FullPath);
            };
            watcher.Error += (_, _) => Touch(directory, null);
            watcher.EnableRaisingEvents = true;
            _watcher = watcher;
        }
        catch (Exception ex) when (ex is IOException or ArgumentException or PlatformNotSupportedException)
        {
            // Polling alone still sees every change that alters a size or a time.
            Log.WatcherUnavailable(_logger, directory, ex.Message);
            _watched = null;
        }
    }

    private void Touch(string directory, string? path)
    {
        var now = _time.GetTimestamp();
        lock (_gate)
        {
            var relative = path is null ? null : Path.GetRelativePath(directory, path);
            var first = relative?.Split(Path.DirectorySeparatorChar, 2)[0];
            var unit = first is null ? null : Path.Combine(directory, first);
            if (unit is not null && _units.TryGetValue(unit, out var state))
            {
                state.NeedsCheck = true;
                state.TouchedAt = now;
            }
            else if (first is null || first.StartsWith('.'))
            {
                // A hidden entry (a symlink swap such as Kubernetes' ..data) or a lost event: check every unit.
                // (A new unit needs nothing: the poll finds it by listing.)
                foreach (var each in _units.Values)
                {
                    each.NeedsCheck = true;
                    each.TouchedAt = now;
                }
            }
        }

        Touched?.Invoke();
    }

    private sealed class UnitState(string path, bool isFolder)
    {
        public string Path { get; } = path;

        public bool IsFolder { get; } = isFolder;

        public string Fingerprint { get; set; } = "";

        public long ChangedAt { get; set; }

        public long TouchedAt { get; set; }

        public bool NeedsCheck { get; set; }

        public string ProcessedFingerprint { get; set; } = "\0";

        public string? ProcessedHash { get; set; }

        public long MissingSince { get; set; } = -1;

        public long IncompleteSince { get; set; } = -1;
    }

    private static partial class Log
    {
        [LoggerMessage(5101, LogLevel.Warning, "Checking plugin directory {Directory} failed")]
        public static partial void PollFailed(ILogger logger, string directory, Exception exception);

        [LoggerMessage(5102, LogLevel.Debug, "Plugin {File} could not be read yet: {Reason}")]
        public static partial void ReadFailed(ILogger logger, string file, string reason);

        [LoggerMessage(5103, LogLevel.Debug, "Plugin {File} is still being written ({Reason}); waiting")]
        public static partial void StillWriting(ILogger logger, string file, string reason);

        [LoggerMessage(5104, LogLevel.Warning, "Cannot watch plugin directory {Directory} for events ({Reason}); polling only")]
        public static partial void WatcherUnavailable(ILogger logger, string directory, string reason);
    }
}
