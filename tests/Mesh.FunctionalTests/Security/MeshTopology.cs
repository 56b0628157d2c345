// Builds two-sidecar meshes on loopback for the mTLS tests: a CA folder, inbound and outbound sidecar configs, metrics reads.
using System.Globalization;
using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Cryptography.X509Certificates;
using Mesh.FunctionalTests.Infrastructure;

namespace Mesh.FunctionalTests.Security;

/// <summary>A temporary folder with a CA (ca.crt, ca.key) that sidecars with identity.source "ca" issue from.</summary>
public sealed class TestMeshCa : IDisposable
{
    public TestMeshCa()
    {
        Directory = System.IO.Directory.CreateTempSubdirectory("mesh-ca-").FullName;
        Ca = TestPki.CreateCa();
        TestPki.Write(Directory, "ca", Ca);
        BundleFile = Path.Combine(Directory, "ca.crt");
    }

    public string Directory { get; }

    public X509Certificate2 Ca { get; }

    public string BundleFile { get; }

    public object Identity(int leafTtlHours = 24) => new { source = "ca", caDir = Directory, trustDomain = TestPki.TrustDomain, leafTtlHours };

    /// <summary>A client certificate of <paramref name="service"/> from this CA, as a peer sidecar would hold.</summary>
    public X509Certificate2 Leaf(string service) => TestPki.IssueLeaf(Ca, TestPki.Spiffe(service));

    public void Dispose()
    {
        try
        {
            System.IO.Directory.Delete(Directory, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}

/// <summary>Sidecar configs for the mesh tests.</summary>
public static class MeshConfig
{
    /// <summary>
    /// A sidecar in front of <paramref name="app"/>: an inbound http listener named <c>inbound</c> with
    /// <paramref name="mtls"/>, plus any <paramref name="extraListeners"/>.
    /// </summary>
    public static object Inbound(string service, int appPort, object identity, string mtls = "strict", object? authorization = null, string appProtocol = "http1", object[]? extraListeners = null, Dictionary<string, object>? services = null) => new
    {
        service = new { name = service, address = "127.0.0.1", port = appPort, protocol = appProtocol },
        admin = new { address = "127.0.0.1", port = 0 },
        identity,
        listeners = new object[] { new { name = "inbound", address = "127.0.0.1", port = 0, direction = "inbound", protocol = "http", mtls } }.Concat(extraListeners ?? []).ToArray(),
        routes = Array.Empty<object>(),
        services = services ?? new Dictionary<string, object>(),
        authorization = authorization ?? new { defaultAction = "allow" },
        logging = new { level = "Warning", accessLog = false },
    };

    /// <summary>A sidecar for a client app: one outbound http listener named <c>outbound</c> routing everything to <paramref name="target"/>.</summary>
    public static object Outbound(string service, object identity, string target, Dictionary<string, object> services, object[]? extraListeners = null) => new
    {
        service = new { name = service, address = "127.0.0.1", port = 0 },
        admin = new { address = "127.0.0.1", port = 0 },
        identity,
        listeners = new object[] { new { name = "outbound", address = "127.0.0.1", port = 0, direction = "outbound", protocol = "http" } }.Concat(extraListeners ?? []).ToArray(),
        routes = new object[] { new { name = "to-" + target, service = target, match = new { } } },
        services,
        logging = new { level = "Warning", accessLog = false },
    };

    /// <summary>A service reached over mTLS at the given peer listeners.</summary>
    public static object MeshService(IEnumerable<IPEndPoint> endpoints, string? serverIdentity = null, string protocol = "http1") => new
    {
        endpoints = endpoints.Select(e => new { address = e.Address.ToString(), port = e.Port }).ToArray(),
        protocol,
        tls = serverIdentity is null ? (object)new { mode = "mesh" } : new { mode = "mesh", serverIdentity },
    };
}

/// <summary>Reads a sidecar's Prometheus metrics.</summary>
public static class MetricsReader
{
    public static async Task<double> ValueAsync(Uri admin, string series)
    {
        using var client = Clients.Http1();
        var text = await client.GetStringAsync(new Uri(admin, "/metrics"));
        foreach (var line in text.Split('\n'))
        {
            if (line.StartsWith(series + " ", StringComparison.Ordinal))
            {
                return double.Parse(line[(series.Length + 1)..], CultureInfo.InvariantCulture);
            }
        }

        return 0;
    }

    /// <summary>Waits until <paramref name="series"/> reaches <paramref name="atLeast"/> (counters are recorded as the connection is refused, which may be just after the client saw it).</summary>
    public static async Task<double> WaitForAsync(Uri admin, string series, double atLeast = 1)
    {
        using var deadline = new CancellationTokenSource(TestSidecar.Deadline);
        while (true)
        {
            var value = await ValueAsync(admin, series);
            if (value >= atLeast)
            {
                return value;
            }

            if (deadline.IsCancellationRequested)
            {
                Assert.Fail($"{series} stayed at {value}, expected at least {atLeast}");
            }

            await Task.Delay(20);
        }
    }
}

/// <summary>Clients that speak TLS to a sidecar's listener directly.</summary>
public static class TlsClients
{
    /// <summary>An HTTP client presenting <paramref name="certificate"/> (or none) that trusts servers chaining to <paramref name="trusted"/>.</summary>
    public static HttpClient Presenting(X509Certificate2? certificate, X509Certificate2 trusted, TimeProvider? clock = null, bool http2 = false)
    {
        var handler = new SocketsHttpHandler
        {
            UseProxy = false,
            SslOptions = new SslClientAuthenticationOptions
            {
                RemoteCertificateValidationCallback = (_, server, _, _) => ChainsTo(server, trusted, clock),
                ClientCertificates = certificate is null ? null : new X509CertificateCollection { certificate },
                LocalCertificateSelectionCallback = certificate is null ? null : (_, _, _, _, _) => certificate,
            },
        };
        return new HttpClient(handler)
        {
            Timeout = TestSidecar.Deadline,
            DefaultRequestVersion = http2 ? HttpVersion.Version20 : HttpVersion.Version11,
            DefaultVersionPolicy = http2 ? HttpVersionPolicy.RequestVersionExact : HttpVersionPolicy.RequestVersionOrLower,
        };
    }

    /// <summary>True when <paramref name="server"/> chains to <paramref name="trusted"/> (names are not checked: mesh peers are known by SPIFFE ID).</summary>
    public static bool ChainsTo(X509Certificate? server, X509Certificate2 trusted, TimeProvider? clock = null)
    {
        if (server is null)
        {
            return false;
        }

        using var chain = new X509Chain();
        chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        chain.ChainPolicy.CustomTrustStore.Add(trusted);
        chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        // A sidecar on a fake clock issues leaves dated by that clock.
        chain.ChainPolicy.VerificationTime = (clock ?? TimeProvider.System).GetUtcNow().UtcDateTime;
        return chain.Build(X509CertificateLoader.LoadCertificate(server.GetRawCertData()));
    }

    /// <summary>A TLS handshake to <paramref name="endpoint"/>; returns the server's certificate.</summary>
    public static async Task<X509Certificate2> ServerCertificateAsync(IPEndPoint endpoint, X509Certificate2? clientCertificate, string? serverName = null)
    {
        using var tcp = new TcpClient();
        await tcp.ConnectAsync(endpoint);
        await using var ssl = new SslStream(tcp.GetStream());
        X509Certificate2? seen = null;
        await ssl.AuthenticateAsClientAsync(new SslClientAuthenticationOptions
        {
            TargetHost = serverName ?? "localhost",
            ClientCertificates = clientCertificate is null ? null : new X509CertificateCollection { clientCertificate },
            LocalCertificateSelectionCallback = clientCertificate is null ? null : (_, _, _, _, _) => clientCertificate,
            // Any server certificate: the tests inspect what was presented.
            RemoteCertificateValidationCallback = (_, certificate, _, _) =>
            {
                seen = certificate is null ? null : X509CertificateLoader.LoadCertificate(certificate.GetRawCertData());
                return seen is not null;
            },
        }).WaitAsync(TestSidecar.Deadline);
        return seen!;
    }
}
