// The sidecar's instruments, created through IMeterFactory with dotted names and units.
using System.Diagnostics;
using System.Diagnostics.Metrics;
using Mesh.Sidecar.Listeners;

namespace Mesh.Sidecar.Metrics;

/// <summary>Every metric Mesh records. Tags are passed in a fixed order so exporters can key on position.</summary>
internal sealed class MeshMetrics
{
    public const string MeterName = "Mesh.Sidecar";

    private static readonly string[] StatusClasses = ["1xx", "1xx", "2xx", "3xx", "4xx", "5xx"];

    private readonly Counter<long> _requests;
    private readonly Histogram<double> _duration;
    private readonly UpDownCounter<long> _activeConnections;
    private readonly Counter<long> _connections;
    private readonly Counter<long> _reloads;

    public MeshMetrics(IMeterFactory meterFactory)
    {
        Meter = meterFactory.Create(MeterName);
        _requests = Meter.CreateCounter<long>("mesh.http.server.requests", "{request}", "Requests by route, service and status class.");
        _duration = Meter.CreateHistogram<double>(
            "mesh.http.server.request.duration",
            "s",
            "Time from request start to the end of the response.",
            tags: null,
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = DurationBuckets });
        _activeConnections = Meter.CreateUpDownCounter<long>("mesh.connections.active", "{connection}", "Open client connections by listener.");
        _connections = Meter.CreateCounter<long>("mesh.connections.accepted", "{connection}", "Accepted client connections by listener and detected protocol.");
        _reloads = Meter.CreateCounter<long>("mesh.config.reloads", "{reload}", "Config reloads by result (applied or rejected).");
    }

    /// <summary>Histogram boundaries in seconds, from 250 µs to 10 s.</summary>
    public static IReadOnlyList<double> DurationBuckets { get; } = [0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

    public Meter Meter { get; }

    public void RequestCompleted(string route, string service, int statusCode, long startTimestamp)
    {
        var statusClass = StatusClasses[Math.Clamp(statusCode / 100, 0, 5)];
        _requests.Add(1, new KeyValuePair<string, object?>("route", route), new KeyValuePair<string, object?>("service", service), new KeyValuePair<string, object?>("status_class", statusClass));
        if (_duration.Enabled)
        {
            _duration.Record(Stopwatch.GetElapsedTime(startTimestamp).TotalSeconds, new KeyValuePair<string, object?>("route", route), new KeyValuePair<string, object?>("service", service));
        }
    }

    public void ConnectionOpened(string listener) => _activeConnections.Add(1, new KeyValuePair<string, object?>("listener", listener));

    public void ConnectionClosed(string listener) => _activeConnections.Add(-1, new KeyValuePair<string, object?>("listener", listener));

    public void ConnectionDetected(string listener, HttpPipeline pipeline) =>
        _connections.Add(1, new KeyValuePair<string, object?>("listener", listener), new KeyValuePair<string, object?>("protocol", pipeline == HttpPipeline.Http2 ? "http2" : "http1"));

    public void ConfigReloaded(bool applied) => _reloads.Add(1, new KeyValuePair<string, object?>("result", applied ? "applied" : "rejected"));
}
