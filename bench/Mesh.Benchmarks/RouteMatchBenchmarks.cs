// Stage 5 of the data path: RouteTable.Match over ten routes built with the sidecar's own matchers.
using BenchmarkDotNet.Attributes;
using Mesh.Sidecar.Configuration;
using Mesh.Sidecar.Routing;
using Mesh.Sidecar.Upstream;
using Microsoft.AspNetCore.Http;

namespace Mesh.Benchmarks;

/// <summary>
/// Ten routes mixing host, path (prefix, exact, pattern), method and header conditions, built the
/// way <c>StateTranslator</c> compiles them. Query and cookie conditions are left out: a
/// <see cref="DefaultHttpContext"/> caches the parsed collections, so a loop would not measure them.
/// </summary>
[MemoryDiagnoser]
public class RouteMatchBenchmarks
{
    private RouteTable _table = RouteTable.Empty;
    private HttpRequest _first = null!;
    private HttpRequest _last = null!;
    private HttpRequest _none = null!;
    private HttpRequest _lastWithPort = null!;

    [GlobalSetup]
    public void Setup()
    {
        _table = new RouteTable(
        [
            Route("api-users", hosts: ["api.example.com"], path: new() { Pattern = "/users/{id}" }, methods: ["GET"]),
            Route("api-orders", hosts: ["api.example.com"], path: new() { Prefix = "/orders" }),
            Route("api-canary", hosts: ["api.example.com"], path: new() { Prefix = "/" }, headers: [new() { Name = "x-canary", Exact = "true" }]),
            Route("admin", hosts: ["admin.example.com"], path: new() { Prefix = "/" }),
            Route("static", hosts: ["static.example.com", "cdn.example.com"], path: new() { Prefix = "/assets/" }),
            Route("health", path: new() { Exact = "/healthz" }),
            Route("grpc", hosts: ["*.svc.cluster.local"], path: new() { Prefix = "/mesh.Orders/" }, methods: ["POST"]),
            Route("reports", hosts: ["reports.example.com"], path: new() { Pattern = "/reports/{year}/{**rest}" }),
            Route("beta", path: new() { Prefix = "/beta/" }, headers: [new() { Name = "x-user-tier", Prefix = "beta" }]),
            Route("www", hosts: ["www.example.com"], path: new() { Prefix = "/" }, methods: ["GET", "HEAD"]),
        ]);

        _first = Request("api.example.com", "GET", "/users/42");
        _last = Request("www.example.com", "GET", "/index.html");
        _none = Request("unknown.example.org", "GET", "/nothing/here");
        _lastWithPort = Request("www.example.com:15001", "GET", "/index.html");
    }

    [Benchmark(Baseline = true)]
    public string? MatchFirst() => _table.Match(_first)?.Name;

    [Benchmark]
    public string? MatchLast() => _table.Match(_last)?.Name;

    [Benchmark]
    public string? MatchNone() => _table.Match(_none)?.Name;

    /// <summary>As <see cref="MatchLast"/> but the Host header carries a port, as a client of a sidecar on a non-default port sends it.</summary>
    [Benchmark]
    public string? MatchLastHostWithPort() => _table.Match(_lastWithPort)?.Name;

    private static CompiledRoute Route(
        string name,
        string[]? hosts = null,
        PathMatchOptions? path = null,
        string[]? methods = null,
        ValueMatchOptions[]? headers = null) => new()
        {
            Name = name,
            ClusterId = name,
            ServiceName = name,
            Hosts = [.. (hosts ?? []).Select(h => new HostMatcher(h))],
            Path = path is null ? null : PathMatcher.Create(path),
            Methods = methods ?? [],
            Headers = [.. (headers ?? []).Select(h => new ValueMatcher(h))],
            Transformer = RouteTransformer.None,
        };

    private static HttpRequest Request(string host, string method, string path)
    {
        var context = new DefaultHttpContext();
        var request = context.Request;
        request.Method = method;
        request.Scheme = "http";
        request.Host = new HostString(host);
        request.Path = path;
        request.Headers["user-agent"] = "bench";
        request.Headers["x-user-tier"] = "standard";
        return request;
    }
}
