// The conformance suite's world, started once: five kinds of upstream, and two sidecars, one per upstream client (Mesh's own, YARP's).
using System.Text;
using Mesh.FunctionalTests.Infrastructure;
using Microsoft.AspNetCore.Http.Features;

namespace Mesh.FunctionalTests.Upstream.Conformance;

/// <summary>The upstreams a case can run against.</summary>
public enum UpstreamKind
{
    Scripted,
    Python,
    Node,
    Nginx,
    Kestrel,
}

/// <summary>The three ways a request reaches the upstream.</summary>
public enum RoutePath
{
    /// <summary>Through a sidecar with Mesh's own HTTP/1.1 client (the default).</summary>
    Mesh,

    /// <summary>Through a sidecar with <c>performance.meshHttp1Client: false</c>: HttpClient and YARP's forwarder.</summary>
    Yarp,

    /// <summary>Straight to the upstream, no proxy: the reference.</summary>
    Direct,
}

[CollectionDefinition(Name)]
public sealed class ConformanceCollection : ICollectionFixture<ConformanceFixture>
{
    public const string Name = "upstream conformance";
}

/// <summary>
/// Starts the scripted server, Python's http.server, Node's http module, nginx and Kestrel, then
/// two sidecars that route <c>{upstream}.test</c> to each: one on Mesh's client, one on YARP. The
/// clients keep one connection each, so a case and the request after it share connections as
/// real traffic does.
/// </summary>
public sealed class ConformanceFixture : IAsyncLifetime
{
    private readonly Dictionary<(RoutePath, ClientKind), HttpClient> _clients = [];
    private PeerProcess? _python;
    private PeerProcess? _node;
    private PeerProcess? _nginx;
    private TestBackend? _kestrel;
    private TestSidecar? _mesh;
    private TestSidecar? _yarp;

    internal ScriptedServer Scripted { get; } = new();

    public static string HostOf(UpstreamKind upstream) => upstream.ToString().ToLowerInvariant() + ".test";

    /// <summary>The port a client connects to for <paramref name="path"/>: a sidecar's listener, or the upstream itself.</summary>
    public int PortOf(RoutePath path, UpstreamKind upstream) => path switch
    {
        RoutePath.Mesh => _mesh!.Listener().Port,
        RoutePath.Yarp => _yarp!.Listener().Port,
        _ => UpstreamPort(upstream),
    };

    internal HttpClient Client(RoutePath path, ClientKind kind) => _clients[(path, kind)];

    public async Task InitializeAsync()
    {
        ConformanceCases.RegisterScripts(Scripted);
        _python = await PeerProcess.StartPythonAsync();
        _node = await PeerProcess.StartNodeAsync();
        _nginx = await PeerProcess.StartNginxAsync();
        _kestrel = await TestBackend.StartAsync("kestrel", configure: app => app.Run(KestrelPeerAsync));
        _mesh = await TestSidecar.StartAsync(Config(meshClient: true));
        _yarp = await TestSidecar.StartAsync(Config(meshClient: false));
        foreach (var path in Enum.GetValues<RoutePath>())
        {
            _clients[(path, ClientKind.KeepAlive)] = ConformanceClients.Create(http2: false);
            _clients[(path, ClientKind.Http2)] = ConformanceClients.Create(http2: true);
        }
    }

    public async Task DisposeAsync()
    {
        foreach (var client in _clients.Values)
        {
            client.Dispose();
        }

        foreach (var disposable in new IAsyncDisposable?[] { _mesh, _yarp, _kestrel, _nginx, _node, _python, Scripted })
        {
            if (disposable is not null)
            {
                await disposable.DisposeAsync();
            }
        }
    }

    private int UpstreamPort(UpstreamKind upstream) => upstream switch
    {
        UpstreamKind.Scripted => Scripted.Port,
        UpstreamKind.Python => _python!.Port,
        UpstreamKind.Node => _node!.Port,
        UpstreamKind.Nginx => _nginx!.Port,
        _ => _kestrel!.Port,
    };

    private object Config(bool meshClient) => new
    {
        service = new { name = "conformance", address = "127.0.0.1", port = 0 },
        admin = new { address = "127.0.0.1", port = 0 },
        listeners = new object[] { new { name = "outbound", address = "127.0.0.1", port = 0, direction = "outbound", protocol = "http" } },
        routes = Enum.GetValues<UpstreamKind>().Select(u => new { name = u.ToString().ToLowerInvariant(), service = u.ToString().ToLowerInvariant(), match = new { hosts = new[] { HostOf(u) } } }).ToArray(),
        services = Enum.GetValues<UpstreamKind>().ToDictionary(u => u.ToString().ToLowerInvariant(), u => (object)new
        {
            endpoints = new[] { new { address = "127.0.0.1", port = UpstreamPort(u) } },
            protocol = "http1",
            requestTimeoutMs = 15_000,
        }),
        logging = new { level = "Warning" },
        performance = new { meshHttp1Client = meshClient },
    };

    /// <summary>Kestrel as an upstream: the same endpoints as the Python and Node peers.</summary>
    private static async Task KestrelPeerAsync(HttpContext context)
    {
        var request = context.Request;
        var response = context.Response;
        var segments = request.Path.Value!.Split('/');
        if (HttpMethods.IsPost(request.Method))
        {
            using var buffer = new MemoryStream();
            await request.Body.CopyToAsync(buffer);
            var sum = 0L;
            foreach (var b in buffer.GetBuffer().AsSpan(0, (int)buffer.Length))
            {
                sum = (sum + b) % 1000003;
            }

            var text = Encoding.ASCII.GetBytes($"posted {buffer.Length} {sum}");
            response.ContentLength = text.Length;
            await response.Body.WriteAsync(text);
        }
        else if (request.Path.StartsWithSegments("/echo"))
        {
            var target = Encoding.Latin1.GetBytes(context.Features.Get<IHttpRequestFeature>()!.RawTarget);
            response.ContentLength = target.Length;
            await response.Body.WriteAsync(target);
        }
        else if (request.Path.StartsWithSegments("/size"))
        {
            var body = PeerProcess.Pattern(int.Parse(segments[2], System.Globalization.CultureInfo.InvariantCulture));
            response.ContentLength = body.Length;
            await response.Body.WriteAsync(body);
        }
        else if (request.Path.StartsWithSegments("/chunked"))
        {
            for (var i = int.Parse(segments[2], System.Globalization.CultureInfo.InvariantCulture) - 1; i >= 0; i--)
            {
                await response.Body.WriteAsync(PeerProcess.Pattern(900 + i));
                await response.Body.FlushAsync();
            }
        }
        else if (request.Path.StartsWithSegments("/204"))
        {
            response.StatusCode = StatusCodes.Status204NoContent;
        }
        else
        {
            response.StatusCode = StatusCodes.Status404NotFound;
        }
    }
}
