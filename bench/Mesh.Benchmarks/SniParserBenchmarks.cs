// The TLS passthrough route key: ClientHelloParser on real client captures from ../shared/tls-clienthellos.
using System.Buffers;
using BenchmarkDotNet.Attributes;
using Mesh.Sidecar.L4.Tls;

namespace Mesh.Benchmarks;

/// <summary>
/// Parses real ClientHellos (Chromium, curl with h2, OpenSSL without SNI) in one buffer, and
/// Chromium's split over three TLS records read as a three-segment sequence.
/// </summary>
[MemoryDiagnoser]
public class SniParserBenchmarks
{
    private byte[] _chromium = [];
    private byte[] _curl = [];
    private byte[] _noSni = [];
    private ReadOnlySequence<byte> _chromiumThreeRecords;

    [GlobalSetup]
    public void Setup()
    {
        var folder = CapturesFolder();
        _chromium = File.ReadAllBytes(Path.Combine(folder, "chromium-sni.bin"));
        _curl = File.ReadAllBytes(Path.Combine(folder, "curl-h2.bin"));
        _noSni = File.ReadAllBytes(Path.Combine(folder, "openssl-no-sni.bin"));

        // The three-record capture, handed over as three reads would deliver it.
        var records = File.ReadAllBytes(Path.Combine(folder, "chromium-sni.three-records.bin"));
        _chromiumThreeRecords = Segments.Split(records, records.Length / 3, 2 * records.Length / 3);
    }

    [Benchmark(Baseline = true)]
    public string? Chromium() => ClientHelloParser.Parse(_chromium).ServerName;

    [Benchmark]
    public string? CurlH2() => ClientHelloParser.Parse(_curl).ServerName;

    [Benchmark]
    public string? OpenSslNoSni() => ClientHelloParser.Parse(_noSni).ServerName;

    [Benchmark]
    public string? ChromiumThreeRecordsThreeSegments() => ClientHelloParser.Parse(_chromiumThreeRecords).ServerName;

    // ../shared/tls-clienthellos beside the repository, found from the working directory upwards.
    private static string CapturesFolder()
    {
        for (var dir = new DirectoryInfo(Directory.GetCurrentDirectory()); dir is not null; dir = dir.Parent)
        {
            var candidate = Path.Combine(dir.FullName, "shared", "tls-clienthellos");
            if (Directory.Exists(candidate))
            {
                return candidate;
            }
        }

        throw new DirectoryNotFoundException("shared/tls-clienthellos not found above the working directory; run from the repository.");
    }
}
