using System.Diagnostics;
using System.Diagnostics.Metrics;
using System.Globalization;
using Mesh.Sidecar.Listeners;
using Mesh.Sidecar.Metrics;

namespace Mesh.Sidecar.Tests.Metrics;

public sealed class PrometheusExporterTests : IDisposable
{
    private readonly List<IDisposable> _disposables = [];

    public void Dispose()
    {
        for (var i = _disposables.Count - 1; i >= 0; i--)
        {
            _disposables[i].Dispose();
        }
    }

    [Fact]
    public void Render_TwoRequests_CountsThemByRouteServiceAndStatusClass()
    {
        var (metrics, exporter) = CreateHost();

        metrics.RequestCompleted("r", "s", 200, Stopwatch.GetTimestamp());
        metrics.RequestCompleted("r", "s", 204, Stopwatch.GetTimestamp());
        metrics.RequestCompleted("r", "s", 503, Stopwatch.GetTimestamp());
        var text = exporter.Render();

        Assert.Contains("# TYPE mesh_http_server_requests_total counter\n", text, StringComparison.Ordinal);
        Assert.Contains("\nmesh_http_server_requests_total{route=\"r\",service=\"s\",status_class=\"2xx\"} 2\n", text, StringComparison.Ordinal);
        Assert.Contains("\nmesh_http_server_requests_total{route=\"r\",service=\"s\",status_class=\"5xx\"} 1\n", text, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(101, "1xx")]
    [InlineData(302, "3xx")]
    [InlineData(404, "4xx")]
    [InlineData(599, "5xx")]
    public void Render_StatusCode_IsGroupedIntoClass(int status, string statusClass)
    {
        var (metrics, exporter) = CreateHost();

        metrics.RequestCompleted("r", "s", status, Stopwatch.GetTimestamp());

        Assert.Contains($"mesh_http_server_requests_total{{route=\"r\",service=\"s\",status_class=\"{statusClass}\"}} 1\n", exporter.Render(), StringComparison.Ordinal);
    }

    [Fact]
    public void Render_RequestDurations_RendersHistogramBucketsSumAndCount()
    {
        var (metrics, exporter) = CreateHost();

        metrics.RequestCompleted("r", "s", 200, Stopwatch.GetTimestamp());
        metrics.RequestCompleted("r", "s", 200, Stopwatch.GetTimestamp());
        var lines = exporter.Render().Split('\n');

        Assert.Contains("# TYPE mesh_http_server_request_duration_seconds histogram", lines);
        var buckets = lines.Where(l => l.StartsWith("mesh_http_server_request_duration_seconds_bucket{route=\"r\",service=\"s\",le=\"", StringComparison.Ordinal)).ToArray();
        Assert.Equal(MeshMetrics.DurationBuckets.Count + 1, buckets.Length);
        Assert.Contains("mesh_http_server_request_duration_seconds_bucket{route=\"r\",service=\"s\",le=\"0.00025\"}", buckets[0], StringComparison.Ordinal);
        Assert.Contains("mesh_http_server_request_duration_seconds_bucket{route=\"r\",service=\"s\",le=\"10\"}", buckets[^2], StringComparison.Ordinal);
        Assert.Equal("mesh_http_server_request_duration_seconds_bucket{route=\"r\",service=\"s\",le=\"+Inf\"} 2", buckets[^1]);

        // Buckets are cumulative.
        var counts = buckets.Select(b => long.Parse(b[(b.LastIndexOf(' ') + 1)..], CultureInfo.InvariantCulture)).ToArray();
        for (var i = 1; i < counts.Length; i++)
        {
            Assert.True(counts[i] >= counts[i - 1], $"bucket {i} is below bucket {i - 1}");
        }

        Assert.Contains("mesh_http_server_request_duration_seconds_count{route=\"r\",service=\"s\"} 2", lines);
        var sum = Assert.Single(lines, l => l.StartsWith("mesh_http_server_request_duration_seconds_sum{route=\"r\",service=\"s\"} ", StringComparison.Ordinal));
        Assert.InRange(double.Parse(sum[(sum.LastIndexOf(' ') + 1)..], CultureInfo.InvariantCulture), 0, 60);
    }

    [Fact]
    public void Render_SlowRequest_LandsInUpperBuckets()
    {
        var (metrics, exporter) = CreateHost();

        // A start 3 s in the past records about 3 s.
        metrics.RequestCompleted("r", "s", 200, Stopwatch.GetTimestamp() - (3 * Stopwatch.Frequency));
        var text = exporter.Render();

        Assert.Contains("mesh_http_server_request_duration_seconds_bucket{route=\"r\",service=\"s\",le=\"2.5\"} 0\n", text, StringComparison.Ordinal);
        Assert.Contains("mesh_http_server_request_duration_seconds_bucket{route=\"r\",service=\"s\",le=\"5\"} 1\n", text, StringComparison.Ordinal);
        Assert.Contains("mesh_http_server_request_duration_seconds_bucket{route=\"r\",service=\"s\",le=\"+Inf\"} 1\n", text, StringComparison.Ordinal);
    }

    [Fact]
    public void Render_Connections_RendersGaugeAndCounter()
    {
        var (metrics, exporter) = CreateHost();

        metrics.ConnectionOpened("out");
        metrics.ConnectionOpened("out");
        metrics.ConnectionOpened("in");
        metrics.ConnectionClosed("out");
        metrics.ConnectionDetected("out", HttpPipeline.Http2);
        metrics.ConnectionDetected("out", HttpPipeline.Http1);
        metrics.ConnectionDetected("out", HttpPipeline.Http1);
        var text = exporter.Render();

        Assert.Contains("# TYPE mesh_connections_active gauge\n", text, StringComparison.Ordinal);
        Assert.Contains("\nmesh_connections_active{listener=\"out\"} 1\n", text, StringComparison.Ordinal);
        Assert.Contains("\nmesh_connections_active{listener=\"in\"} 1\n", text, StringComparison.Ordinal);
        Assert.Contains("# TYPE mesh_connections_accepted_total counter\n", text, StringComparison.Ordinal);
        Assert.Contains("\nmesh_connections_accepted_total{listener=\"out\",protocol=\"http2\"} 1\n", text, StringComparison.Ordinal);
        Assert.Contains("\nmesh_connections_accepted_total{listener=\"out\",protocol=\"http1\"} 2\n", text, StringComparison.Ordinal);
    }

    [Fact]
    public void Render_ConfigReloads_CountsByResult()
    {
        var (metrics, exporter) = CreateHost();

        metrics.ConfigReloaded(applied: true);
        metrics.ConfigReloaded(applied: false);
        metrics.ConfigReloaded(applied: false);
        var text = exporter.Render();

        Assert.Contains("\nmesh_config_reloads_total{result=\"applied\"} 1\n", text, StringComparison.Ordinal);
        Assert.Contains("\nmesh_config_reloads_total{result=\"rejected\"} 2\n", text, StringComparison.Ordinal);
    }

    [Fact]
    public void Render_HelpLine_PrecedesTypeLine()
    {
        var (metrics, exporter) = CreateHost();

        metrics.ConfigReloaded(applied: true);
        var lines = exporter.Render().Split('\n');

        var type = Array.IndexOf(lines, "# TYPE mesh_config_reloads_total counter");
        Assert.True(type > 0);
        Assert.Equal("# HELP mesh_config_reloads_total Config reloads by result (applied or rejected).", lines[type - 1]);
    }

    [Fact]
    public void Render_LabelValueWithQuoteBackslashAndNewline_IsEscaped()
    {
        var (metrics, exporter) = CreateHost();

        metrics.ConnectionOpened("a\"b\\c\nd");

        Assert.Contains("mesh_connections_active{listener=\"a\\\"b\\\\c\\nd\"} 1\n", exporter.Render(), StringComparison.Ordinal);
    }

    [Fact]
    public void Render_NothingRecorded_IsEmpty()
    {
        var (_, exporter) = CreateHost();

        Assert.Equal("", exporter.Render());
    }

    [Fact]
    public void Render_AnotherHostsMetrics_AreNotSeen()
    {
        var (first, firstExporter) = CreateHost();
        var (second, secondExporter) = CreateHost();

        first.RequestCompleted("r", "s", 200, Stopwatch.GetTimestamp());
        first.RequestCompleted("r", "s", 200, Stopwatch.GetTimestamp());
        first.ConnectionOpened("out");
        second.RequestCompleted("r", "s", 200, Stopwatch.GetTimestamp());

        Assert.Contains("mesh_http_server_requests_total{route=\"r\",service=\"s\",status_class=\"2xx\"} 2\n", firstExporter.Render(), StringComparison.Ordinal);
        var text = secondExporter.Render();
        Assert.Contains("mesh_http_server_requests_total{route=\"r\",service=\"s\",status_class=\"2xx\"} 1\n", text, StringComparison.Ordinal);
        Assert.DoesNotContain("mesh_connections_active", text, StringComparison.Ordinal);
    }

    [Fact]
    public void Render_OtherMeterWithSameName_IsNotSeen()
    {
        var (metrics, exporter) = CreateHost();
        using var stranger = new Meter(MeshMetrics.MeterName);
        var counter = stranger.CreateCounter<long>("mesh.http.server.requests");

        counter.Add(5, new KeyValuePair<string, object?>("route", "r"), new KeyValuePair<string, object?>("service", "s"), new KeyValuePair<string, object?>("status_class", "2xx"));
        metrics.RequestCompleted("r", "s", 200, Stopwatch.GetTimestamp());

        Assert.Contains("mesh_http_server_requests_total{route=\"r\",service=\"s\",status_class=\"2xx\"} 1\n", exporter.Render(), StringComparison.Ordinal);
    }

    [Fact]
    public void Render_AfterDispose_StopsCounting()
    {
        var (metrics, exporter) = CreateHost();
        metrics.ConfigReloaded(applied: true);

        exporter.Dispose();
        metrics.ConfigReloaded(applied: true);

        Assert.Contains("mesh_config_reloads_total{result=\"applied\"} 1\n", exporter.Render(), StringComparison.Ordinal);
    }

    [Fact]
    public void MeshMetrics_Meter_IsNamedMeshSidecar()
    {
        var (metrics, _) = CreateHost();

        Assert.Equal("Mesh.Sidecar", metrics.Meter.Name);
    }

    // Each call is one host: its own service provider, meter factory, metrics and exporter.
    private (MeshMetrics Metrics, PrometheusExporter Exporter) CreateHost()
    {
        var services = new ServiceCollection();
        services.AddMetrics();
        var provider = services.BuildServiceProvider();
        _disposables.Add(provider);
        var metrics = new MeshMetrics(provider.GetRequiredService<IMeterFactory>());
        var exporter = new PrometheusExporter(metrics);
        _disposables.Add(exporter);
        return (metrics, exporter);
    }
}
