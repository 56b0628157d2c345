// Protocol detection: HttpVersionDetector.Classify on the first bytes of a connection.
using System.Buffers;
using System.Text;
using BenchmarkDotNet.Attributes;
using Mesh.Sidecar.Detection;
using Mesh.Sidecar.Listeners;

namespace Mesh.Benchmarks;

/// <summary>Classifies an HTTP/1 request line and the HTTP/2 preface, in one segment and split over two.</summary>
[MemoryDiagnoser]
public class DetectionBenchmarks
{
    private ReadOnlySequence<byte> _http1;
    private ReadOnlySequence<byte> _http2;
    private ReadOnlySequence<byte> _http2Split;

    [GlobalSetup]
    public void Setup()
    {
        _http1 = new ReadOnlySequence<byte>(Encoding.ASCII.GetBytes("GET /users/42 HTTP/1.1\r\nHost: api.example.com\r\n\r\n"));
        var preface = Encoding.ASCII.GetBytes("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
        var prefaceAndSettings = preface.Concat(new byte[] { 0, 0, 0, 4, 0, 0, 0, 0, 0 }).ToArray();
        _http2 = new ReadOnlySequence<byte>(prefaceAndSettings);

        // A preface that arrives in two reads, as a pipe may hand it over.
        _http2Split = Segments.Split(prefaceAndSettings, 10);
    }

    [Benchmark]
    public int Http1RequestLine() => Code(HttpVersionDetector.Classify(_http1));

    [Benchmark]
    public int Http2Preface() => Code(HttpVersionDetector.Classify(_http2));

    [Benchmark]
    public int Http2PrefaceTwoSegments() => Code(HttpVersionDetector.Classify(_http2Split));

    // The verdict's enum type is internal, so a public benchmark returns it as a number (-1: undecided).
    private static int Code(HttpPipeline? verdict) => verdict is { } v ? (int)v : -1;
}
