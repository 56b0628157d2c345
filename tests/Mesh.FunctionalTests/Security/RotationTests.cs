// Leaf renewal (built-in CA, on a fake clock) and certificate file rotation under a bounded request loop: zero failed requests.
using System.Net;
using System.Security.Cryptography.X509Certificates;
using System.Text.Json;
using Mesh.FunctionalTests.Infrastructure;
using Mesh.Sidecar.Security.Identity;
using Microsoft.AspNetCore.Connections.Features;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.AspNetCore.Server.Kestrel.Https;
using Microsoft.Extensions.Time.Testing;

namespace Mesh.FunctionalTests.Security;

public sealed class RotationTests : IDisposable
{
    private const int Requests = 300;
    private const int Workers = 4;

    private readonly TestMeshCa _ca = new();

    public void Dispose() => _ca.Dispose();

    [Fact]
    public async Task CaSource_LeafRenewedAtTwoThirdsOfItsLife_UnderLoad_NoRequestFails_NewHandshakesUseNewLeaf()
    {
        var clock = new FakeTimeProvider(DateTimeOffset.UtcNow);
        void FakeClock(IServiceCollection services) => services.AddSingleton(new IdentityClock(clock));
        await using var app = await TestBackend.StartAsync("api-app");
        await using var peer = await RecordingPeer.StartAsync(TestPki.IssueLeaf(_ca.Ca, TestPki.Spiffe("peer")));
        await using var api = await TestSidecar.StartAsync(MeshConfig.Inbound("api", app.Port, _ca.Identity(leafTtlHours: 1)), FakeClock);
        await using var web = await TestSidecar.StartAsync(new
        {
            service = new { name = "web" },
            admin = new { address = "127.0.0.1", port = 0 },
            identity = _ca.Identity(leafTtlHours: 1),
            listeners = new object[] { new { name = "outbound", address = "127.0.0.1", port = 0, direction = "outbound", protocol = "http" } },
            routes = new object[]
            {
                new { name = "to-peer", service = "peer", match = new { path = new { prefix = "/peer" } } },
                new { name = "to-api", service = "api", match = new { } },
            },
            services = new Dictionary<string, object>
            {
                ["api"] = MeshConfig.MeshService([api.Sidecar.EndpointOf("inbound")]),
                ["peer"] = MeshConfig.MeshService([peer.Endpoint]),
            },
            logging = new { level = "Warning" },
        }, FakeClock);
        using var client = Clients.Http1();
        var apiBefore = await IdentityAsync(api);
        var webBefore = await IdentityAsync(web);
        Assert.Equal(webBefore.Serial, await client.GetStringAsync(new Uri(web.Listener(), "/peer")));

        // Half the workers go through the web sidecar (its HTTP/2 connection to api stays open across
        // the renewal); the others call api directly with mTLS and reconnect every few requests, so
        // handshakes keep happening while the leaf changes.
        var loop = new RequestLoop(web.Listener(), new Uri($"https://{api.Sidecar.EndpointOf("inbound")}/"), () => TlsClients.Presenting(_ca.Leaf("web"), _ca.Ca, clock));
        await loop.Progress(Requests / 3);
        // Two-thirds of one hour, and a minute more.
        clock.Advance(TimeSpan.FromMinutes(41));
        var apiAfter = await IdentityAsync(api, changedFrom: apiBefore.Serial);
        var webAfter = await IdentityAsync(web, changedFrom: webBefore.Serial);
        loop.Release();
        await loop.Completion;

        Assert.Equal(0, loop.Failures);
        Assert.Equal(Requests, loop.Succeeded);
        Assert.True(apiAfter.NotAfter > apiBefore.NotAfter);
        // New handshakes take the new leaf at once, both as server and as client.
        Assert.Equal(apiAfter.Serial, (await TlsClients.ServerCertificateAsync(api.Sidecar.EndpointOf("inbound"), _ca.Leaf("probe"))).SerialNumber);
        Assert.Equal(webBefore.Serial, await client.GetStringAsync(new Uri(web.Listener(), "/peer/close")));
        Assert.Equal(webAfter.Serial, await client.GetStringAsync(new Uri(web.Listener(), "/peer")));
        await MetricsReader.WaitForAsync(api.Admin, "mesh_identity_rotations_total{source=\"ca\"}", 2);
    }

    [Fact]
    public async Task FilesSource_CertificateAndKeyRewritten_UnderLoad_NoRequestFails_NewHandshakesUseNewFiles()
    {
        var directory = _ca.Directory;
        var first = TestPki.Write(directory, "api-leaf", _ca.Leaf("api"));
        var identity = new { source = "files", trustDomain = TestPki.TrustDomain, certificateFile = first.CertificateFile, keyFile = first.KeyFile, trustBundleFile = _ca.BundleFile };
        await using var app = await TestBackend.StartAsync("api-app");
        await using var api = await TestSidecar.StartAsync(MeshConfig.Inbound("api", app.Port, identity));
        await using var web = await TestSidecar.StartAsync(MeshConfig.Outbound("web", _ca.Identity(), "api", new Dictionary<string, object>
        {
            ["api"] = MeshConfig.MeshService([api.Sidecar.EndpointOf("inbound")]),
        }));
        var before = await IdentityAsync(api);
        Assert.Equal("files", before.Source);

        var loop = new RequestLoop(web.Listener(), new Uri($"https://{api.Sidecar.EndpointOf("inbound")}/"), () => TlsClients.Presenting(_ca.Leaf("web"), _ca.Ca));
        await loop.Progress(Requests / 3);
        // The key first, then the certificate (one rename each): for a moment the pair does not match.
        var next = _ca.Leaf("api");
        using (var key = next.GetECDsaPrivateKey()!)
        {
            TestPki.WriteAtomically(first.KeyFile, key.ExportPkcs8PrivateKeyPem());
        }

        TestPki.WriteAtomically(first.CertificateFile, next.ExportCertificatePem());
        var after = await IdentityAsync(api, changedFrom: before.Serial);
        loop.Release();
        await loop.Completion;

        Assert.Equal(0, loop.Failures);
        Assert.Equal(next.SerialNumber, after.Serial);
        Assert.Equal(next.SerialNumber, (await TlsClients.ServerCertificateAsync(api.Sidecar.EndpointOf("inbound"), _ca.Leaf("probe"))).SerialNumber);
    }

    [Fact]
    public async Task FilesSource_RewrittenWithAnExpiredCertificate_KeepsServingTheLastGoodOne()
    {
        var first = TestPki.Write(_ca.Directory, "api-leaf", _ca.Leaf("api"));
        var identity = new { source = "files", trustDomain = TestPki.TrustDomain, certificateFile = first.CertificateFile, keyFile = first.KeyFile, trustBundleFile = _ca.BundleFile };
        await using var app = await TestBackend.StartAsync("api-app");
        await using var api = await TestSidecar.StartAsync(MeshConfig.Inbound("api", app.Port, identity));
        var before = await IdentityAsync(api);

        TestPki.Write(_ca.Directory, "api-leaf", TestPki.IssueLeaf(_ca.Ca, TestPki.Spiffe("api"), DateTimeOffset.UtcNow.AddDays(-3), DateTimeOffset.UtcNow.AddDays(-1)));

        await MetricsReader.WaitForAsync(api.Admin, "mesh_identity_failures_total{source=\"files\",reason=\"reload-failed\"}");
        Assert.Equal(before.Serial, (await IdentityAsync(api)).Serial);
        using var client = TlsClients.Presenting(_ca.Leaf("web"), _ca.Ca);
        using var response = await client.GetAsync(new Uri($"https://{api.Sidecar.EndpointOf("inbound")}/"));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
    }

    private sealed record Identity(string Serial, DateTimeOffset NotAfter, string Source);

    /// <summary>Reads /admin/identity; with <paramref name="changedFrom"/>, waits until the serial differs.</summary>
    private static async Task<Identity> IdentityAsync(TestSidecar sidecar, string? changedFrom = null)
    {
        using var client = Clients.Http1();
        using var deadline = new CancellationTokenSource(TestSidecar.Deadline);
        while (true)
        {
            using var json = JsonDocument.Parse(await client.GetStringAsync(new Uri(sidecar.Admin, "/admin/identity"), deadline.Token));
            var root = json.RootElement;
            var identity = new Identity(
                root.GetProperty("serial").GetString()!,
                DateTimeOffset.Parse(root.GetProperty("notAfter").GetString()!, System.Globalization.CultureInfo.InvariantCulture),
                root.GetProperty("source").GetString()!);
            if (changedFrom is null || identity.Serial != changedFrom)
            {
                return identity;
            }

            await Task.Delay(20, deadline.Token);
        }
    }

    /// <summary>
    /// A bounded loop of <see cref="Requests"/> requests from <see cref="Workers"/> workers, counting
    /// failures. Half the workers send through an outbound sidecar; the others call the inbound
    /// listener directly over mTLS with a new client (a new handshake) every ten requests. The second
    /// half of the requests waits for <see cref="Release"/>, so it runs after the rotation.
    /// </summary>
    private sealed class RequestLoop
    {
        private readonly List<(int Count, TaskCompletionSource Reached)> _waiters = [];
        private readonly TaskCompletionSource _released = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private readonly Lock _lock = new();
        private int _started;
        private int _succeeded;
        private int _failures;

        public RequestLoop(Uri outbound, Uri inbound, Func<HttpClient> direct)
        {
            Completion = Task.WhenAll(Enumerable.Range(0, Workers).Select(i => Task.Run(() => i % 2 == 0
                ? WorkAsync(Clients.Http1, new Uri(outbound, "/work"), reconnectEvery: int.MaxValue)
                : WorkAsync(direct, inbound, reconnectEvery: 10))));
        }

        public Task Completion { get; }

        public int Succeeded => Volatile.Read(ref _succeeded);

        public int Failures => Volatile.Read(ref _failures);

        /// <summary>Lets the second half of the requests go.</summary>
        public void Release() => _released.TrySetResult();

        /// <summary>Completes once <paramref name="count"/> requests have finished.</summary>
        public Task Progress(int count)
        {
            lock (_lock)
            {
                var waiter = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                if (Succeeded + Failures >= count)
                {
                    waiter.SetResult();
                }
                else
                {
                    _waiters.Add((count, waiter));
                }

                return waiter.Task.WaitAsync(TestSidecar.Deadline);
            }
        }

        private async Task WorkAsync(Func<HttpClient> create, Uri target, int reconnectEvery)
        {
            var client = create();
            var sent = 0;
            try
            {
                int number;
                while ((number = Interlocked.Increment(ref _started)) <= Requests)
                {
                    if (number > Requests / 2)
                    {
                        await _released.Task.WaitAsync(TestSidecar.Deadline);
                    }

                    if (++sent % reconnectEvery == 0)
                    {
                        client.Dispose();
                        client = create();
                    }

                    try
                    {
                        using var response = await client.GetAsync(target);
                        await response.Content.ReadAsStringAsync();
                        Interlocked.Increment(ref response.StatusCode == HttpStatusCode.OK ? ref _succeeded : ref _failures);
                    }
                    catch (HttpRequestException)
                    {
                        Interlocked.Increment(ref _failures);
                    }

                    Signal();
                }
            }
            finally
            {
                client.Dispose();
            }
        }

        private void Signal()
        {
            lock (_lock)
            {
                var done = Succeeded + Failures;
                _waiters.RemoveAll(w =>
                {
                    if (done < w.Count)
                    {
                        return false;
                    }

                    w.Reached.TrySetResult();
                    return true;
                });
            }
        }
    }

    /// <summary>
    /// A Kestrel HTTPS server posing as a peer sidecar (HTTP/2 by ALPN, a SPIFFE leaf): it answers each
    /// request with the serial of the client certificate its connection was opened with, and
    /// <c>/peer/close</c> asks the client to close the connection (GOAWAY) after answering.
    /// </summary>
    private sealed class RecordingPeer : IAsyncDisposable
    {
        private readonly WebApplication _app;

        private RecordingPeer(WebApplication app, IPEndPoint endpoint)
        {
            _app = app;
            Endpoint = endpoint;
        }

        public IPEndPoint Endpoint { get; }

        public static async Task<RecordingPeer> StartAsync(X509Certificate2 certificate)
        {
            var builder = WebApplication.CreateSlimBuilder();
            builder.Logging.ClearProviders();
            builder.WebHost.UseKestrelHttpsConfiguration();
            builder.WebHost.ConfigureKestrel(kestrel =>
            {
                kestrel.AllowAlternateSchemes = true;
                kestrel.Listen(IPAddress.Loopback, 0, listen =>
                {
                    listen.Protocols = HttpProtocols.Http2;
                    listen.UseHttps(new HttpsConnectionAdapterOptions
                    {
                        ServerCertificate = certificate,
                        ClientCertificateMode = ClientCertificateMode.RequireCertificate,
                        // A recorder, not a judge: the sidecar's leaf is dated by its fake clock.
                        ClientCertificateValidation = (presented, _, _) => presented is not null,
                    });
                });
            });
            var app = builder.Build();
            app.Run(context =>
            {
                if (context.Request.Path == "/peer/close")
                {
                    context.Features.Get<IConnectionLifetimeNotificationFeature>()?.RequestClose();
                }

                return context.Response.WriteAsync(context.Connection.ClientCertificate?.SerialNumber ?? "none");
            });
            await app.StartAsync();
            var address = new Uri(app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First());
            return new RecordingPeer(app, new IPEndPoint(IPAddress.Loopback, address.Port));
        }

        public async ValueTask DisposeAsync()
        {
            await _app.StopAsync();
            await _app.DisposeAsync();
        }
    }
}
