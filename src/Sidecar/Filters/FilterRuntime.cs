// Ties filter sources, the catalog and chain building to the sidecar's state swaps: load, refuse, replace, drain, unload.
using System.Threading.Channels;
using Mesh.Plugins;
using Mesh.Plugins.JavaScript;
using Mesh.Plugins.Loading;
using Mesh.Sidecar.Configuration;

namespace Mesh.Sidecar.Filters;

/// <summary>
/// The sidecar's side of filters. Sources (C# plugins here; JavaScript later) report changes; each
/// change is tried by building every chain of the current config with the candidate registry. A
/// change whose filters do not build is refused and the previous version keeps serving; one that
/// builds is swapped in with the routing state (by <c>MeshRuntime</c>, under its apply gate), after
/// which the replaced filters and packages drain and unload.
/// </summary>
internal sealed partial class FilterRuntime : IDisposable
{
    private readonly FilterMetrics _metrics;
    private readonly ILogger _logger;
    private readonly FilterPlanBuilder _builder;
    private readonly IFilterSource[] _sources;
    private readonly Channel<FilterSourceChange> _changes = Channel.CreateUnbounded<FilterSourceChange>(new UnboundedChannelOptions { SingleReader = true });

    // Units refused because another unit published the same filter name, by that other unit: when it
    // goes away they are loaded again. Written under the apply gate only.
    private readonly Dictionary<string, string> _conflicts = new(StringComparer.Ordinal);

    public FilterRuntime(FilterMetrics metrics, ILoggerFactory loggers, IEnumerable<IRequestFilterFactory> builtIn, IEnumerable<IFilterSource> sources)
    {
        _metrics = metrics;
        _logger = loggers.CreateLogger("Mesh.Filters");
        Catalog = new FilterCatalog(builtIn);
        _metrics.Catalog = Catalog;
        _builder = new FilterPlanBuilder(metrics.StatsFor, _logger, (instance, ex) => Log.DisposeFailed(_logger, instance.Key.Split('\n')[3], ex));
        Plugins = new PluginDirectorySource(loggers.CreateLogger<PluginDirectorySource>());
        _sources = [Plugins, .. sources];
    }

    public FilterCatalog Catalog { get; }

    /// <summary>The C# plugin source.</summary>
    public PluginDirectorySource Plugins { get; }

    /// <summary>Every source: C# plugins first.</summary>
    public IReadOnlyList<IFilterSource> Sources => _sources;

    /// <summary>The folder relative plugin directories resolve against: the config file's.</summary>
    public string BaseDirectory { get; set; } = Environment.CurrentDirectory;

    /// <summary>Changes reported by the sources, in order.</summary>
    public ChannelReader<FilterSourceChange> Changes => _changes.Reader;

    public string ResolveDirectory(MeshOptions options) => Path.GetFullPath(options.Plugins.Directory, BaseDirectory);

    /// <summary>The directory a source reads: <c>jsFilters.directory</c> for JavaScript files, <c>plugins.directory</c> otherwise.</summary>
    public string DirectoryFor(IFilterSource source, MeshOptions options) =>
        source is JsFilterSource ? Path.GetFullPath(options.JsFilters.Directory, BaseDirectory) : ResolveDirectory(options);

    /// <summary>Runs every source's watcher until <paramref name="stopping"/>.</summary>
    public Task WatchAsync(CancellationToken stopping) =>
        Task.WhenAll(_sources.Select(source => Task.Run(() => source.WatchAsync(_changes.Writer, stopping), CancellationToken.None)));

    /// <summary>
    /// Builds the chains of <paramref name="options"/>. The first call points the sources at the
    /// plugin directory and loads it at once (start-up); later calls with another directory let the
    /// watchers move over. Factory errors are config errors; the plan is then discarded and null returned.
    /// </summary>
    public FilterPlan? Prepare(MeshOptions options, FilterPlan? previous, List<ConfigError> errors)
    {
        foreach (var source in _sources)
        {
            var directory = DirectoryFor(source, options);
            if (source is JsFilterSource js)
            {
                // New versions of a file are test-run with the limits they will run with.
                js.CheckLimits = FilterPlanBuilder.JsLimits(options, TimeSpan.FromMilliseconds(options.JsFilters.TimeoutMs));
            }

            if (source.Directory is null)
            {
                source.SetDirectory(directory);
                foreach (var change in source.ScanNow())
                {
                    AcceptAtStart(change);
                }
            }
            else if (source.Directory != directory)
            {
                Log.DirectoryChanged(_logger, source.Name, source.Directory, directory);
                source.SetDirectory(directory);
            }
        }

        var failures = new List<FilterBuildError>();
        var missing = new List<MissingFilter>();
        var plan = _builder.Build(options, Catalog.Registry, previous, failures, missing);
        if (failures.Count > 0)
        {
            FilterPlanBuilder.Discard(plan, previous);
            errors.AddRange(failures.Select(f => f.Error));
            return null;
        }

        WarnMissing(missing);
        return plan;
    }

    /// <summary>
    /// Tries a source's change against the current config: the plan to swap in, or null when there is
    /// nothing to swap (a refusal, or a change the chains could not be built with, which is refused).
    /// </summary>
    public FilterPlan? Propose(FilterSourceChange change, MeshOptions options, FilterPlan current)
    {
        switch (change.Kind)
        {
            case FilterSourceChangeKind.Refused:
                Refuse(change, change.Reason ?? "refused");
                return null;

            case FilterSourceChangeKind.Loaded:
            {
                var package = change.Package!;
                var registry = Catalog.Propose(package, out var conflict, out var conflicting);
                if (registry is null)
                {
                    _conflicts[change.Id] = conflicting!;
                    Refuse(change, conflict!, package);
                    return null;
                }

                var failures = new List<FilterBuildError>();
                var missing = new List<MissingFilter>();
                var plan = _builder.Build(options, registry, current, failures, missing);
                if (failures.Count > 0)
                {
                    // The new version cannot serve the current config: the previous version keeps serving.
                    FilterPlanBuilder.Discard(plan, current);
                    Refuse(change, "its filters do not build with the current config: " + string.Join("; ", failures.Select(f => f.Error.ToString())), package);
                    return null;
                }

                WarnMissing(missing);
                return plan;
            }

            default:
            {
                var failures = new List<FilterBuildError>();
                var missing = new List<MissingFilter>();
                var plan = _builder.Build(options, Catalog.ProposeRemoval(change.Id), current, failures, missing);
                if (failures.Count > 0)
                {
                    FilterPlanBuilder.Discard(plan, current);
                    foreach (var failure in failures)
                    {
                        Log.RemovalNotApplied(_logger, change.File, failure.Error.Path, failure.Error.Message);
                    }

                    return null;
                }

                WarnMissing(missing);
                return plan;
            }
        }
    }

    /// <summary>After the state built from <paramref name="plan"/> was swapped in: retire what it replaced, accept or remove the change's unit.</summary>
    public void Committed(FilterPlan plan, FilterPlan? previous, FilterSourceChange? change = null)
    {
        FilterPlanBuilder.Commit(plan, previous);
        if (change is null)
        {
            return;
        }

        if (change.Kind == FilterSourceChangeKind.Loaded)
        {
            Accepted(change.Package!);
        }
        else if (change.Kind == FilterSourceChangeKind.Removed)
        {
            Catalog.Remove(change.Id);
            Log.PluginRemoved(_logger, change.File);
            RecheckConflicts(change.Id);
        }
    }

    /// <summary>A plan that will not be swapped in (the config could not be applied).</summary>
    public static void Discard(FilterPlan plan, FilterPlan? previous) => FilterPlanBuilder.Discard(plan, previous);

    public void Dispose()
    {
        _changes.Writer.TryComplete();
        foreach (var source in _sources)
        {
            source.Dispose();
        }
    }

    private void AcceptAtStart(FilterSourceChange change)
    {
        if (change.Kind == FilterSourceChangeKind.Refused)
        {
            Refuse(change, change.Reason ?? "refused");
        }
        else if (change.Kind == FilterSourceChangeKind.Loaded)
        {
            if (Catalog.Propose(change.Package!, out var conflict, out var conflicting) is null)
            {
                _conflicts[change.Id] = conflicting!;
                Refuse(change, conflict!, change.Package);
            }
            else
            {
                Accepted(change.Package!);
            }
        }
    }

    // The unit that held the names is gone: units refused for clashing with it get another try.
    private void RecheckConflicts(string removed)
    {
        foreach (var (unit, holder) in _conflicts.ToList())
        {
            if (holder == removed || unit == removed)
            {
                _conflicts.Remove(unit);
                if (holder == removed)
                {
                    foreach (var source in _sources)
                    {
                        source.Recheck(unit);
                    }
                }
            }
        }
    }

    private void Accepted(FilterPackage package)
    {
        _conflicts.Remove(package.Id);
        package.Unloaded += unloaded => Log.PluginUnloaded(_logger, unloaded.File, unloaded.Version ?? "");
        Catalog.Accept(package);
        _metrics.PluginLoad(package.Source, loaded: true);
        Log.PluginLoaded(_logger, package.File, package.Version ?? "", string.Join(", ", package.FactoryNames));
    }

    private void Refuse(FilterSourceChange change, string reason, FilterPackage? package = null)
    {
        Catalog.Refuse(new FilterRefusal(change.Source, change.Id, change.File, reason, DateTimeOffset.UtcNow), package);
        _metrics.PluginLoad(change.Source, loaded: false);
        Log.PluginRefused(_logger, change.File, reason);
    }

    private void WarnMissing(List<MissingFilter> missing)
    {
        foreach (var filter in missing)
        {
            Log.FilterMissing(_logger, filter.Path, filter.Name, filter.Detail ?? "is not loaded");
        }
    }

    private static partial class Log
    {
        [LoggerMessage(5201, LogLevel.Warning, "Plugin {File} refused: {Reason}")]
        public static partial void PluginRefused(ILogger logger, string file, string reason);

        [LoggerMessage(5202, LogLevel.Information, "Plugin {File} {Version} loaded: {Filters}")]
        public static partial void PluginLoaded(ILogger logger, string file, string version, string filters);

        [LoggerMessage(5203, LogLevel.Information, "Plugin {File} removed")]
        public static partial void PluginRemoved(ILogger logger, string file);

        [LoggerMessage(5204, LogLevel.Information, "Plugin {File} {Version} unloaded (its last request ended)")]
        public static partial void PluginUnloaded(ILogger logger, string file, string version);

        [LoggerMessage(5205, LogLevel.Warning, "{Path}: filter '{Filter}' {Problem}; requests (or connections) through it are refused until it loads")]
        public static partial void FilterMissing(ILogger logger, string path, string filter, string problem);

        [LoggerMessage(5206, LogLevel.Warning, "Plugin {File} is gone but the chains cannot be rebuilt without it ({Path}: {Message}); keeping it")]
        public static partial void RemovalNotApplied(ILogger logger, string file, string path, string message);

        [LoggerMessage(5207, LogLevel.Information, "Filter source {Source} moves from {Old} to {New}")]
        public static partial void DirectoryChanged(ILogger logger, string source, string old, string @new);

        [LoggerMessage(5208, LogLevel.Warning, "Disposing filter {Filter} threw")]
        public static partial void DisposeFailed(ILogger logger, string filter, Exception exception);
    }
}
