// The cost of one Consul answer: parsing a health response, choosing endpoints, re-translating the routing state.
using System.Diagnostics.Metrics;
using System.Text;
using System.Text.Json;
using BenchmarkDotNet.Attributes;
using Mesh.Discovery;
using Mesh.Discovery.Consul;
using Mesh.Sidecar.Configuration;
using Mesh.Sidecar.Metrics;
using Mesh.Sidecar.Security;
using Mesh.Sidecar.Security.Identity;
using Mesh.Sidecar.Security.Tls;
using Mesh.Sidecar.Translation;
using Mesh.Sidecar.Upstream;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;

namespace Mesh.Benchmarks;

/// <summary>
/// What a sidecar does each time a blocking query on a 100-instance Consul service returns: parse
/// the body, pick the passing instances at their weights, and build the next MeshState (reusing
/// unchanged endpoints). Runs off the request path, once per change.
/// </summary>
[MemoryDiagnoser]
public class ConsulDiscoveryBenchmarks
{
    private byte[] _body = [];
    private List<ServiceEntry> _entries = [];
    private StateTranslator _translator = null!;
    private UpstreamClients _clients = null!;
    private UpstreamTlsClients _tls = null!;
    private MeshOptions _options = null!;
    private Dictionary<string, IServiceCatalog> _catalogs = null!;
    private MeshState _previous = null!;

    [Params(100)]
    public int Instances { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        var json = new StringBuilder("[");
        for (var i = 0; i < Instances; i++)
        {
            var address = $"10.0.{i / 250}.{i % 250}";
            json.Append(i == 0 ? "" : ",")
                .Append("{\"Node\":{\"ID\":\"n").Append(i).Append("\",\"Node\":\"node-").Append(i).Append("\",\"Address\":\"").Append(address)
                .Append("\",\"Datacenter\":\"dc1\",\"TaggedAddresses\":{\"lan\":\"").Append(address).Append("\"},\"Meta\":{}},")
                .Append("\"Service\":{\"ID\":\"api-").Append(i).Append("\",\"Service\":\"api\",\"Tags\":[\"v1\",\"primary\"],\"Address\":\"").Append(address)
                .Append("\",\"Meta\":{\"version\":\"1.4.2\"},\"Port\":").Append(9000 + i).Append(",\"Weights\":{\"Passing\":10,\"Warning\":1},\"EnableTagOverride\":false},")
                .Append("\"Checks\":[{\"Node\":\"node-").Append(i).Append("\",\"CheckID\":\"serfHealth\",\"Name\":\"Serf Health Status\",\"Status\":\"passing\",\"Output\":\"Agent alive\"},")
                .Append("{\"Node\":\"node-").Append(i).Append("\",\"CheckID\":\"service:api-").Append(i).Append("\",\"Name\":\"api\",\"Status\":\"passing\",\"ServiceID\":\"api-").Append(i)
                .Append("\",\"ServiceName\":\"api\",\"ServiceTags\":[\"v1\",\"primary\"]}]}");
        }

        _body = Encoding.UTF8.GetBytes(json.Append(']').ToString());
        _entries = JsonSerializer.Deserialize(_body, ConsulJsonContext.Default.ListServiceEntry)!;

        _clients = new UpstreamClients();
        var services = new ServiceCollection().AddMetrics().BuildServiceProvider();
        var security = new SecurityMetrics(new MeshMetrics(services.GetRequiredService<IMeterFactory>()));
        _tls = new UpstreamTlsClients(new IdentityManager([], new IdentityClock(TimeProvider.System), security, NullLoggerFactory.Instance), security, NullLoggerFactory.Instance);
        _translator = new StateTranslator(_clients, _tls);
        _options = new MeshOptions
        {
            Listeners = [new ListenerOptions { Name = "outbound" }],
            Routes = [new RouteOptions { Name = "api", Service = "api" }],
            Services = new Dictionary<string, ServiceOptions> { ["api"] = new() { Discovery = "consul" } },
        };
        var endpoints = ConsulServiceCatalog.ToEndpoints(_entries, new ConsulServiceQuery("api"));
        var publisher = new SnapshotPublisher("consul");
        publisher.Publish(new Dictionary<string, IReadOnlyList<ServiceEndpoint>> { ["api"] = endpoints });
        _catalogs = new Dictionary<string, IServiceCatalog> { ["consul"] = new FixedCatalog(publisher) };
        _previous = _translator.Build(_options, _catalogs, null, 1);
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _tls.Dispose();
        _clients.Dispose();
    }

    [Benchmark]
    public int ParseHealthResponse() => JsonSerializer.Deserialize(_body, ConsulJsonContext.Default.ListServiceEntry)!.Count;

    [Benchmark]
    public int ChooseEndpoints() => ConsulServiceCatalog.ToEndpoints(_entries, new ConsulServiceQuery("api", Tag: "v1")).Count;

    [Benchmark]
    public int Retranslate() => _translator.Build(_options, _catalogs, _previous, 2).Clusters.Count;

    private sealed class FixedCatalog(SnapshotPublisher publisher) : IServiceCatalog
    {
        public string Name => "consul";

        public CatalogSnapshot Current => publisher.Current;

        public IAsyncEnumerable<CatalogSnapshot> WatchAsync(CancellationToken cancellationToken) => publisher.WatchAsync(cancellationToken);
    }
}
