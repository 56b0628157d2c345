// The sidecar's instruments, created through IMeterFactory with dotted names and units.
using System.Diagnostics;
using System.Diagnostics.Metrics;
using Mesh.Sidecar.L4.Udp;
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
    private readonly Counter<long> _l4Connections;
    private readonly UpDownCounter<long> _l4Active;
    private readonly Counter<long> _l4Bytes;
    private readonly Counter<long> _l4ConnectFailures;
    private readonly Counter<long> _detections;
    private readonly Histogram<double> _detectionTime;
    private readonly Counter<long> _sniMisses;

    public MeshMetrics(IMeterFactory meterFactory)
    {
        Meter = meterFactory.Create(MeterName);
        _requests = Meter.CreateCounter<long>("mesh.http.server.requests", "{request}", "Requests by route, service and status class.");
        _duration = SecondsHistogram("mesh.http.server.request.duration", "Time from request start to the end of the response.");
        _activeConnections = Meter.CreateUpDownCounter<long>("mesh.connections.active", "{connection}", "Open client connections by listener.");
        _connections = Meter.CreateCounter<long>("mesh.connections.accepted", "{connection}", "Accepted client connections by listener and detected protocol.");
        _reloads = Meter.CreateCounter<long>("mesh.config.reloads", "{reload}", "Config reloads by result (applied or rejected).");
        _l4Connections = Meter.CreateCounter<long>("mesh.l4.connections", "{connection}", "L4 connections by listener and result (proxied, refused-limit, denied, connect-failed, no-service).");
        _l4Active = Meter.CreateUpDownCounter<long>("mesh.l4.connections.active", "{connection}", "Open L4 client connections by listener.");
        _l4Bytes = Meter.CreateCounter<long>("mesh.l4.bytes", "By", "Bytes relayed by listener and direction (upstream is client to service).");
        _l4ConnectFailures = Meter.CreateCounter<long>("mesh.l4.connect.failures", "{failure}", "Failed upstream connects by listener and service.");
        _detections = Meter.CreateCounter<long>("mesh.detection.results", "{connection}", "Protocol detection outcomes on auto listeners (tls, http1, http2, opaque, silent).");
        _detectionTime = SecondsHistogram("mesh.detection.duration", "Time spent detecting the protocol on auto listeners.");
        Meter.CreateObservableGauge("mesh.udp.flows.active", () => ObserveUdp(static p => p.ActiveFlows), "{flow}", "Open UDP flows by listener.");
        Meter.CreateObservableCounter("mesh.udp.flows.created", () => ObserveUdp(static p => p.FlowsCreated), "{flow}", "UDP flows created by listener.");
        Meter.CreateObservableCounter("mesh.udp.flows.expired", () => ObserveUdp(static p => p.FlowsExpired), "{flow}", "UDP flows expired by listener.");
        Meter.CreateObservableCounter("mesh.udp.datagrams.dropped", () => ObserveUdp(static p => p.DatagramsDropped), "{datagram}", "UDP datagrams not delivered by listener.");
        _sniMisses = Meter.CreateCounter<long>("mesh.tls.sni.misses", "{connection}", "TLS passthrough connections not routed, by reason (no-route, no-sni, not-tls, invalid, timeout).");
        Meter.CreateObservableGauge("mesh.discovery.staleness", ObserveStaleness, "s", "Seconds since each service's endpoints were last confirmed by their source (0 while synced), by service and source.");
        Meter.CreateObservableGauge("mesh.discovery.endpoints", ObserveEndpoints, "{endpoint}", "Healthy endpoints in routing by service and discovery source.");
    }

    /// <summary>Each service's discovery source and freshness; set by the discovery status reader, read on each scrape.</summary>
    public Func<IReadOnlyList<Hosting.ServiceDiscoveryView>>? Discovery { get; set; }

    private IEnumerable<Measurement<double>> ObserveStaleness()
    {
        var views = Discovery?.Invoke() ?? [];
        var measurements = new List<Measurement<double>>(views.Count);
        foreach (var view in views)
        {
            measurements.Add(new Measurement<double>(view.StalenessSeconds, new KeyValuePair<string, object?>("service", view.Service), new KeyValuePair<string, object?>("source", view.Source)));
        }

        return measurements;
    }

    private IEnumerable<Measurement<long>> ObserveEndpoints()
    {
        var views = Discovery?.Invoke() ?? [];
        var measurements = new List<Measurement<long>>(views.Count);
        foreach (var view in views)
        {
            measurements.Add(new Measurement<long>(view.Endpoints, new KeyValuePair<string, object?>("service", view.Service), new KeyValuePair<string, object?>("source", view.Source)));
        }

        return measurements;
    }

    /// <summary>Histogram boundaries in seconds, from 250 µs to 10 s.</summary>
    public static IReadOnlyList<double> DurationBuckets { get; } = [0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

    public Meter Meter { get; }

    private Histogram<double> SecondsHistogram(string name, string description) =>
        Meter.CreateHistogram<double>(name, "s", description, tags: null, advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = DurationBuckets });

    /// <summary>The running UDP proxies by listener; set by the listener manager, read on each metrics scrape.</summary>
    public Func<IReadOnlyList<(string Listener, UdpProxy Proxy)>>? UdpProxies { get; set; }

    private IEnumerable<Measurement<long>> ObserveUdp(Func<UdpProxy, long> read)
    {
        var proxies = UdpProxies?.Invoke() ?? [];
        var measurements = new List<Measurement<long>>(proxies.Count);
        foreach (var (listener, proxy) in proxies)
        {
            measurements.Add(new Measurement<long>(read(proxy), new KeyValuePair<string, object?>("listener", listener)));
        }

        return measurements;
    }

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

    public void L4Connection(string listener, string result) =>
        _l4Connections.Add(1, new KeyValuePair<string, object?>("listener", listener), new KeyValuePair<string, object?>("result", result));

    public void L4Opened(string listener) => _l4Active.Add(1, new KeyValuePair<string, object?>("listener", listener));

    public void L4Closed(string listener) => _l4Active.Add(-1, new KeyValuePair<string, object?>("listener", listener));

    public void L4Bytes(string listener, long fromClient, long fromUpstream)
    {
        _l4Bytes.Add(fromClient, new KeyValuePair<string, object?>("listener", listener), new KeyValuePair<string, object?>("direction", "upstream"));
        _l4Bytes.Add(fromUpstream, new KeyValuePair<string, object?>("listener", listener), new KeyValuePair<string, object?>("direction", "downstream"));
    }

    public void L4ConnectFailure(string listener, string service) =>
        _l4ConnectFailures.Add(1, new KeyValuePair<string, object?>("listener", listener), new KeyValuePair<string, object?>("service", service));

    public void Detected(string listener, string result, long startTimestamp)
    {
        _detections.Add(1, new KeyValuePair<string, object?>("listener", listener), new KeyValuePair<string, object?>("result", result));
        _detectionTime.Record(Stopwatch.GetElapsedTime(startTimestamp).TotalSeconds, new KeyValuePair<string, object?>("listener", listener));
    }

    public void SniMiss(string listener, string reason) =>
        _sniMisses.Add(1, new KeyValuePair<string, object?>("listener", listener), new KeyValuePair<string, object?>("reason", reason));

    public void ConfigReloaded(bool applied) => _reloads.Add(1, new KeyValuePair<string, object?>("result", applied ? "applied" : "rejected"));
}
