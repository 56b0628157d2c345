// The JavaScript filter source: each .js file in jsFilters.directory is a filter named by its file name.
using System.Security.Cryptography;
using System.Threading.Channels;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Mesh.Plugins.JavaScript;

/// <summary>
/// Watches a directory of <c>.js</c> files (polling plus file events, like the C# plugin source) and
/// publishes each file as a <see cref="FilterPackage"/> with one factory. A file is read once it has
/// not changed for <see cref="QuietPeriod"/>; it is parsed, checked and test-loaded (its top level run
/// in a sandboxed engine) before it is reported, so only a version that runs reaches the catalog. A
/// syntax error is a refusal naming <c>file:line:column</c>; the version serving keeps serving.
/// Names starting with a dot are ignored (editors' temporary files, Kubernetes' <c>..data</c>).
/// </summary>
public sealed partial class JsFilterSource : IFilterSource
{
    /// <summary>The source's name in the admin API and metrics.</summary>
    public const string SourceName = "javascript";

    private readonly ILogger _logger;
    private readonly object _gate = new();
    private readonly Dictionary<string, FileState> _files = new(StringComparer.Ordinal);
    private FileSystemWatcher? _watcher;
    private string? _directory;
    private string? _watched;
    private bool _disposed;

    /// <summary>Creates the source; <see cref="SetDirectory"/> points it at a folder.</summary>
    public JsFilterSource(ILoggerFactory? loggers = null, System.Diagnostics.Metrics.Meter? meter = null)
    {
        _logger = (loggers ?? NullLoggerFactory.Instance).CreateLogger<JsFilterSource>();
        Host = new JsFilterHost(loggers, meter);
    }

    /// <summary>How long a file must stay unchanged before it is loaded.</summary>
    public TimeSpan QuietPeriod { get; init; } = TimeSpan.FromMilliseconds(200);

    /// <summary>How often the directory is checked.</summary>
    public TimeSpan PollInterval { get; init; } = TimeSpan.FromMilliseconds(200);

    /// <summary>The limits a new version's top level is test-run with (the sidecar sets the configured ones).</summary>
    internal JsFilterLimits CheckLimits { get; set; } = JsFilterLimits.Default;

    /// <summary>Services every filter of this source shares (rate-limit buckets, log).</summary>
    internal JsFilterHost Host { get; }

    /// <inheritdoc />
    public string Name => SourceName;

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
            if (_files.TryGetValue(id, out var state))
            {
                state.ProcessedHash = state.ProcessedHash is null ? null : "";
                state.ProcessedFingerprint = "\0";
            }
        }
    }

    /// <summary>One pass of the watcher: the changes whose files have settled by now (tests).</summary>
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
                await Task.Delay(PollInterval, cancellationToken).ConfigureAwait(false);
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
        lock (_gate)
        {
            if (_directory is not { } directory || _disposed)
            {
                return changes;
            }

            EnsureWatcher(directory);
            var now = Environment.TickCount64;
            var present = Files(directory);

            // Removals first, so a file renamed to another name frees its filter name before the new one loads.
            foreach (var state in _files.Values.ToList())
            {
                if (present.Contains(state.Path))
                {
                    continue;
                }

                if (state.MissingSince < 0)
                {
                    state.MissingSince = now;
                }

                // Deleted and put back within the quiet period (rm then cp) is a replacement, not a removal.
                if (!waitForQuiet || now - state.MissingSince >= QuietPeriod.TotalMilliseconds)
                {
                    _files.Remove(state.Path);
                    if (state.ProcessedHash is not null)
                    {
                        changes.Add(new FilterSourceChange(Name, state.Path, state.Path, FilterSourceChangeKind.Removed));
                    }
                }
            }

            foreach (var path in present)
            {
                var fingerprint = Fingerprint(path);
                if (!_files.TryGetValue(path, out var state))
                {
                    state = new FileState(path) { Fingerprint = fingerprint, ChangedAt = now };
                    _files[path] = state;
                }

                state.MissingSince = -1;
                if (fingerprint != state.Fingerprint)
                {
                    state.Fingerprint = fingerprint;
                    state.ChangedAt = now;
                }

                if (!state.Touched && fingerprint == state.ProcessedFingerprint)
                {
                    continue;
                }

                if ((!waitForQuiet || now - Math.Max(state.ChangedAt, state.TouchedAt) >= QuietPeriod.TotalMilliseconds) && Process(state) is { } change)
                {
                    changes.Add(change);
                }
            }
        }

        return changes;
    }

    // Reads, parses and test-loads one file; null when its content was already processed.
    private FilterSourceChange? Process(FileState state)
    {
        byte[] content;
        try
        {
            content = File.ReadAllBytes(state.Path);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            // Vanished or locked between listing and reading: look again on the next poll.
            Log.ReadFailed(_logger, state.Path, ex.Message);
            return null;
        }

        var hash = Convert.ToHexString(SHA256.HashData(content));
        state.ProcessedFingerprint = state.Fingerprint;
        state.Touched = false;
        if (hash == state.ProcessedHash)
        {
            return null;
        }

        state.ProcessedHash = hash;
        try
        {
            var script = JsScript.Load(state.Path, content);
            // The new version runs once (its top level, in a sandboxed engine) before anyone can swap it in.
            JsEngine.Create(script, CheckLimits, "{}", Host, "").Dispose();
            var package = new FilterPackage(Name, state.Path, state.Path, [new JsFilterFactory(script, Host)], [])
            {
                ContentHash = hash,
                Version = hash[..12].ToLowerInvariant(),
            };
            return new FilterSourceChange(Name, state.Path, state.Path, FilterSourceChangeKind.Loaded, package);
        }
        catch (JsScriptException ex)
        {
            return new FilterSourceChange(Name, state.Path, state.Path, FilterSourceChangeKind.Refused, Reason: ex.Message);
        }
    }

    private static List<string> Files(string directory)
    {
        var files = new List<string>();
        if (!System.IO.Directory.Exists(directory))
        {
            return files;
        }

        try
        {
            foreach (var file in new DirectoryInfo(directory).EnumerateFiles("*.js"))
            {
                if (!file.Name.StartsWith('.') && file.Name.EndsWith(".js", StringComparison.Ordinal))
                {
                    files.Add(file.FullName);
                }
            }
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            // The directory went away while listing; its files count as missing this time.
        }

        return files;
    }

    private static string Fingerprint(string path)
    {
        try
        {
            var file = new FileInfo(path);
            return file.Exists ? $"{file.Length}:{file.LastWriteTimeUtc.Ticks}" : "";
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return "unreadable:" + ex.Message;
        }
    }

    // File events mark files to be read even when size and time look the same (a rename of a file
    // with the same length and time); the poll still waits for the quiet period.
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
            var watcher = new FileSystemWatcher(directory, "*.js")
            {
                NotifyFilter = NotifyFilters.FileName | NotifyFilters.LastWrite | NotifyFilters.Size | NotifyFilters.CreationTime,
            };
            watcher.Changed += (_, e) => Touch(e.FullPath);
            watcher.Created += (_, e) => Touch(e.FullPath);
            watcher.Deleted += (_, e) => Touch(e.FullPath);
            watcher.Renamed += (_, e) =>
            {
                Touch(e.OldFullPath);
                Touch(e.FullPath);
            };
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

    private void Touch(string path)
    {
        lock (_gate)
        {
            if (_files.TryGetValue(path, out var state))
            {
                state.Touched = true;
                state.TouchedAt = Environment.TickCount64;
            }
        }
    }

    private sealed class FileState(string path)
    {
        public string Path { get; } = path;

        public string Fingerprint { get; set; } = "";

        public string? ProcessedFingerprint { get; set; }

        /// <summary>Hash of the content last processed; null until the file was processed once.</summary>
        public string? ProcessedHash { get; set; }

        public long ChangedAt { get; set; }

        public long TouchedAt { get; set; }

        public bool Touched { get; set; }

        public long MissingSince { get; set; } = -1;
    }

    private static partial class Log
    {
        [LoggerMessage(5310, LogLevel.Warning, "Reading JavaScript filters in {Directory} failed")]
        public static partial void PollFailed(ILogger logger, string directory, Exception exception);

        [LoggerMessage(5311, LogLevel.Debug, "JavaScript filter {File} could not be read yet: {Message}")]
        public static partial void ReadFailed(ILogger logger, string file, string message);

        [LoggerMessage(5312, LogLevel.Warning, "Cannot watch {Directory} for JavaScript filter changes ({Message}); polling only")]
        public static partial void WatcherUnavailable(ILogger logger, string directory, string message);
    }
}
