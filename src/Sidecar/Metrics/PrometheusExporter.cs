// Aggregates Mesh's own instruments with a MeterListener and renders them in Prometheus text format.
using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using System.Globalization;
using System.Text;

namespace Mesh.Sidecar.Metrics;

/// <summary>
/// A small in-process Prometheus exporter. It listens only to this host's meter, so several
/// sidecars in one process (tests, the demo) keep separate numbers. Recording is lock-free and
/// allocation-free once a series exists.
/// </summary>
internal sealed class PrometheusExporter : IDisposable
{
    private readonly MeterListener _listener = new();
    private readonly ConcurrentDictionary<SeriesKey, Series> _series = new();
    private readonly Meter _meter;

    public PrometheusExporter(MeshMetrics metrics)
    {
        _meter = metrics.Meter;
        _listener.InstrumentPublished = (instrument, listener) =>
        {
            if (ReferenceEquals(instrument.Meter, _meter))
            {
                listener.EnableMeasurementEvents(instrument);
            }
        };
        _listener.SetMeasurementEventCallback<long>((instrument, value, tags, _) => Record(instrument, value, tags));
        _listener.SetMeasurementEventCallback<double>((instrument, value, tags, _) => Record(instrument, value, tags));
        _listener.Start();
    }

    public void Dispose() => _listener.Dispose();

    private void Record(Instrument instrument, double value, ReadOnlySpan<KeyValuePair<string, object?>> tags)
    {
        var key = new SeriesKey(instrument, Tag(tags, 0), Tag(tags, 1), Tag(tags, 2), Tag(tags, 3));
        if (!_series.TryGetValue(key, out var series))
        {
            series = _series.GetOrAdd(key, static (k, state) => new Series(state.Instrument, state.Names), (Instrument: instrument, Names: Names(tags)));
        }

        if (instrument.IsObservable)
        {
            // Observable instruments report their current value on each collection.
            series.Set(value);
        }
        else
        {
            series.Record(value);
        }
    }

    private static string? Tag(ReadOnlySpan<KeyValuePair<string, object?>> tags, int index) =>
        index < tags.Length ? tags[index].Value as string : null;

    private static string[] Names(ReadOnlySpan<KeyValuePair<string, object?>> tags)
    {
        var names = new string[tags.Length];
        for (var i = 0; i < tags.Length; i++)
        {
            names[i] = tags[i].Key;
        }

        return names;
    }

    /// <summary>Renders every series in Prometheus text exposition format 0.0.4.</summary>
    public string Render()
    {
        _listener.RecordObservableInstruments();
        var text = new StringBuilder();
        var byInstrument = new SortedDictionary<string, List<(SeriesKey Key, Series Series)>>(StringComparer.Ordinal);
        foreach (var (key, series) in _series)
        {
            var name = PrometheusName(key.Instrument);
            if (!byInstrument.TryGetValue(name, out var list))
            {
                byInstrument[name] = list = [];
            }

            list.Add((key, series));
        }

        foreach (var (name, list) in byInstrument)
        {
            var instrument = list[0].Key.Instrument;
            var type = instrument switch
            {
                Histogram<double> => "histogram",
                UpDownCounter<long> or ObservableGauge<long> or ObservableGauge<double> => "gauge",
                _ => "counter",
            };
            text.Append("# HELP ").Append(name).Append(' ').Append(instrument.Description).Append('\n');
            text.Append("# TYPE ").Append(name).Append(' ').Append(type).Append('\n');
            foreach (var (key, series) in list)
            {
                var labels = Labels(series.TagNames, key);
                if (type == "histogram")
                {
                    series.RenderHistogram(text, name, labels);
                }
                else
                {
                    text.Append(name).Append(labels).Append(' ').Append(series.Sum.ToString(CultureInfo.InvariantCulture)).Append('\n');
                }
            }
        }

        return text.ToString();
    }

    private static string PrometheusName(Instrument instrument)
    {
        var name = instrument.Name.Replace('.', '_');
        if (instrument is Histogram<double> or ObservableGauge<double> && instrument.Unit == "s")
        {
            return name + "_seconds";
        }

        return instrument is UpDownCounter<long> or ObservableGauge<long> or ObservableGauge<double> ? name : name.EndsWith("_total", StringComparison.Ordinal) ? name : name + "_total";
    }

    private static string Labels(string[] names, SeriesKey key)
    {
        if (names.Length == 0)
        {
            return "";
        }

        string?[] values = [key.Tag0, key.Tag1, key.Tag2, key.Tag3];
        var labels = new StringBuilder("{");
        for (var i = 0; i < names.Length && i < values.Length; i++)
        {
            if (i > 0)
            {
                labels.Append(',');
            }

            labels.Append(names[i]).Append("=\"").Append(Escape(values[i] ?? "")).Append('"');
        }

        return labels.Append('}').ToString();
    }

    private static string Escape(string value) => value.Replace("\\", "\\\\", StringComparison.Ordinal).Replace("\"", "\\\"", StringComparison.Ordinal).Replace("\n", "\\n", StringComparison.Ordinal);

    private readonly record struct SeriesKey(Instrument Instrument, string? Tag0, string? Tag1, string? Tag2, string? Tag3);

    private sealed class Series
    {
        private readonly double[] _bounds;
        private readonly long[] _buckets;
        private long _count;
        private double _sum;

        public Series(Instrument instrument, string[] tagNames)
        {
            TagNames = tagNames;
            _bounds = instrument is Histogram<double> ? [.. MeshMetrics.DurationBuckets] : [];
            _buckets = new long[_bounds.Length + 1];
        }

        public string[] TagNames { get; }

        public double Sum => Volatile.Read(ref _sum);

        public void Set(double value) => Volatile.Write(ref _sum, value);

        public void Record(double value)
        {
            double seen, next;
            do
            {
                seen = Volatile.Read(ref _sum);
                next = seen + value;
            }
            while (Interlocked.CompareExchange(ref _sum, next, seen) != seen);

            if (_bounds.Length == 0)
            {
                return;
            }

            Interlocked.Increment(ref _count);
            var bucket = Array.BinarySearch(_bounds, value);
            Interlocked.Increment(ref _buckets[bucket >= 0 ? bucket : ~bucket]);
        }

        public void RenderHistogram(StringBuilder text, string name, string labels)
        {
            var inner = labels.Length == 0 ? "" : labels[1..^1] + ",";
            long cumulative = 0;
            for (var i = 0; i < _bounds.Length; i++)
            {
                cumulative += Interlocked.Read(ref _buckets[i]);
                text.Append(name).Append("_bucket{").Append(inner).Append("le=\"").Append(_bounds[i].ToString(CultureInfo.InvariantCulture)).Append("\"} ").Append(cumulative).Append('\n');
            }

            cumulative += Interlocked.Read(ref _buckets[^1]);
            text.Append(name).Append("_bucket{").Append(inner).Append("le=\"+Inf\"} ").Append(cumulative).Append('\n');
            text.Append(name).Append("_sum").Append(labels).Append(' ').Append(Sum.ToString(CultureInfo.InvariantCulture)).Append('\n');
            text.Append(name).Append("_count").Append(labels).Append(' ').Append(Interlocked.Read(ref _count)).Append('\n');
        }
    }
}
