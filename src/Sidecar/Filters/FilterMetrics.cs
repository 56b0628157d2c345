// Filter and plugin instruments on the sidecar's meter: calls, errors, timeouts, durations, loads.
using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using Mesh.Plugins;
using Mesh.Sidecar.Metrics;

namespace Mesh.Sidecar.Filters;

/// <summary>
/// Per-filter counters live in <see cref="FilterStats"/> (kept across swaps, keyed by scope and
/// filter name) and are read on each scrape; durations go to a histogram as they happen.
/// </summary>
internal sealed class FilterMetrics
{
    private readonly ConcurrentDictionary<(string Kind, string Scope, string Filter), FilterStats> _stats = new();
    private readonly Histogram<double> _duration;
    private readonly Counter<long> _loads;

    public FilterMetrics(MeshMetrics metrics)
    {
        var meter = metrics.Meter;
        _duration = meter.CreateHistogram<double>("mesh.filter.duration", "s", "Time spent in each filter call, by route (or listener) and filter.", tags: null, advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = MeshMetrics.DurationBuckets });
        meter.CreateObservableCounter("mesh.filter.calls", () => Observe(static s => s.Calls), "{call}", "Filter calls by route (or listener) and filter.");
        meter.CreateObservableCounter("mesh.filter.errors", () => Observe(static s => s.Errors), "{error}", "Filter calls that threw, by route (or listener) and filter.");
        meter.CreateObservableCounter("mesh.filter.timeouts", () => Observe(static s => s.Timeouts), "{timeout}", "Filter calls past their timeoutMs, by route (or listener) and filter.");
        _loads = meter.CreateCounter<long>("mesh.plugin.loads", "{load}", "Plugin load attempts by source and result (loaded, refused).");
        meter.CreateObservableGauge("mesh.plugins.loaded", () => new Measurement<long>(Catalog?.Registry.Packages.Count ?? 0), "{plugin}", "Plugins whose filters are in the registry.");
        meter.CreateObservableGauge("mesh.plugins.draining", () => new Measurement<long>(Catalog?.Retired().Count(p => p.State == PackageState.Draining) ?? 0), "{plugin}", "Replaced or removed plugins still serving requests that started before the swap.");
    }

    /// <summary>Set by the filter runtime; read on each scrape.</summary>
    public FilterCatalog? Catalog { get; set; }

    /// <summary>The counters of one filter entry, created on first use and kept for the process's life.</summary>
    public FilterStats StatsFor(string kind, string scope, string filter) =>
        _stats.GetOrAdd((kind, scope, filter), static (key, duration) => new FilterStats(key.Scope, key.Filter, duration, key.Kind), _duration);

    /// <summary>Every filter's counters.</summary>
    public IEnumerable<FilterStats> AllStats => _stats.Values;

    public void PluginLoad(string source, bool loaded) =>
        _loads.Add(1, new KeyValuePair<string, object?>("source", source), new KeyValuePair<string, object?>("result", loaded ? "loaded" : "refused"));

    private List<Measurement<long>> Observe(Func<FilterStats, long> read)
    {
        var measurements = new List<Measurement<long>>(_stats.Count);
        foreach (var stats in _stats.Values)
        {
            measurements.Add(new Measurement<long>(read(stats), new KeyValuePair<string, object?>(stats.ScopeKind, stats.Scope), new KeyValuePair<string, object?>("filter", stats.Filter)));
        }

        return measurements;
    }
}
