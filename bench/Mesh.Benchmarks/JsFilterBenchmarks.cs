// The header-routing JavaScript sample per call, as the data path runs it: a pooled engine, the lazy request view.
using System.Runtime.CompilerServices;
using System.Text.Json;
using BenchmarkDotNet.Attributes;
using Mesh.Plugins;
using Mesh.Plugins.JavaScript;
using Mesh.Sidecar.Filters;
using Mesh.Sidecar.Routing;
using Mesh.Sidecar.Upstream;
using Microsoft.AspNetCore.Http;

namespace Mesh.Benchmarks;

/// <summary>
/// plugins-samples/js/header-routing.js on a route entry with the default limits, called with the
/// sidecar's own <c>HttpRequestContext</c> (created per call, as per request): a request with neither
/// header (it reads two headers and continues), one with <c>x-canary: 1</c> (reroute to the v2 subset)
/// and one with <c>x-tenant</c> (a config lookup and a reroute). Target: median at most 5 µs per call.
/// </summary>
[MemoryDiagnoser]
[MedianColumn]
public class JsFilterBenchmarks
{
    private readonly CompiledRoute _route = new()
    {
        Name = "api",
        ClusterId = "api",
        ServiceName = "api",
        Transformer = RouteTransformer.None,
    };

    private IRequestFilter _filter = null!;
    private HttpContext _plain = null!;
    private HttpContext _canary = null!;
    private HttpContext _tenant = null!;

    [GlobalSetup]
    public void Setup()
    {
        var path = Path.Combine(RepositoryRoot(), "plugins-samples", "js", "header-routing.js");
        var script = JsScript.Load(path, File.ReadAllBytes(path));
        using var config = JsonDocument.Parse("""{ "tenants": { "acme": "acme-api", "globex": "globex-api" } }""");
        var settings = new FilterSettings("header-routing.js", config.RootElement.Clone(), "routes[0].filters[0].config") { Route = "api" };
        _filter = new JsFilterFactory(script, new JsFilterHost()).Create(settings, JsFilterLimits.Default);
        _plain = Request();
        _canary = Request();
        _canary.Request.Headers["x-canary"] = "1";
        _tenant = Request();
        _tenant.Request.Headers["x-tenant"] = "acme";
    }

    [Benchmark(Baseline = true)]
    public FilterAction NoHeaderContinues() => Run(_plain);

    [Benchmark]
    public FilterAction CanaryToV2() => Run(_canary);

    [Benchmark]
    public FilterAction TenantToItsService() => Run(_tenant);

    private FilterAction Run(HttpContext context)
    {
        var pending = _filter.OnRequestAsync(new HttpRequestContext(context, _route), CancellationToken.None);
        return pending.IsCompletedSuccessfully ? pending.Result.Action : pending.AsTask().GetAwaiter().GetResult().Action;
    }

    private static DefaultHttpContext Request()
    {
        var context = new DefaultHttpContext();
        context.Request.Method = "GET";
        context.Request.Host = new HostString("api.example.com");
        context.Request.Path = "/users/42";
        context.Request.Headers["accept"] = "application/json";
        context.Request.Headers["user-agent"] = "bench";
        return context;
    }

    // The sample is read from the source tree this file was compiled from.
    private static string RepositoryRoot([CallerFilePath] string file = "") => Path.GetFullPath(Path.Combine(Path.GetDirectoryName(file)!, "..", ".."));
}
