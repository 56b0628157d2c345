// Stage 3 of the data path: a route's filter chain, run the way HttpDataPath runs it.
using BenchmarkDotNet.Attributes;
using Mesh.Plugins;
using Mesh.Sidecar.Filters;
using Mesh.Sidecar.Routing;
using Mesh.Sidecar.Upstream;
using Microsoft.AspNetCore.Http;

namespace Mesh.Benchmarks;

/// <summary>
/// Chains of filters that finish synchronously (as header checks and rate limits do), over the
/// sidecar's own <c>HttpRequestContext</c>: one filter that continues, three that continue, and
/// three where the last answers. The context is created per run, as the data path creates it per request.
/// <c>OneConfiguredContinues</c> is one filter as a plugin's is configured (error policy, timeout,
/// counters and duration histogram), with the lease the data path takes and returns per request.
/// </summary>
[MemoryDiagnoser]
public class FilterChainBenchmarks
{
    private readonly CompiledRoute _route = new()
    {
        Name = "api",
        ClusterId = "api",
        ServiceName = "api",
        Transformer = RouteTransformer.None,
    };

    private HttpContext _context = null!;
    private FilterChain _one = FilterChain.Empty;
    private FilterChain _three = FilterChain.Empty;
    private FilterChain _threeResponding = FilterChain.Empty;
    private FilterChain _configured = FilterChain.Empty;
    private System.Diagnostics.Metrics.Meter? _meter;
    private System.Diagnostics.Metrics.MeterListener? _listener;

    [GlobalSetup]
    public void Setup()
    {
        _context = new DefaultHttpContext();
        _context.Request.Method = "GET";
        _context.Request.Host = new HostString("api.example.com");
        _context.Request.Path = "/users/42";
        _context.Request.Headers["x-tenant"] = "blue";
        _one = new FilterChain([new HeaderPresent("x-tenant")]);
        _three = new FilterChain([new HeaderPresent("x-tenant"), new HeaderPresent("host"), new HeaderPresent("x-tenant")]);
        _threeResponding = new FilterChain([new HeaderPresent("x-tenant"), new HeaderPresent("x-tenant"), new HeaderPresent("x-missing")]);

        // A histogram someone listens to, as the sidecar's Prometheus exporter does.
        _meter = new System.Diagnostics.Metrics.Meter("bench.filters");
        var duration = _meter.CreateHistogram<double>("mesh.filter.duration", "s");
        _listener = new System.Diagnostics.Metrics.MeterListener { InstrumentPublished = (instrument, listener) => listener.EnableMeasurementEvents(instrument) };
        _listener.SetMeasurementEventCallback<double>(static (_, _, _, _) => { });
        _listener.Start();
        var entry = new FilterEntry("header-present", new FilterInstance(new HeaderPresent("x-tenant"), null, "k"), FilterErrorPolicy.Reject, TimeSpan.FromSeconds(1), new FilterStats("api", "header-present", duration));
        _configured = new FilterChain([entry], "api");
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _listener?.Dispose();
        _meter?.Dispose();
    }

    [Benchmark(Baseline = true)]
    public FilterAction OneContinues() => Run(_one);

    [Benchmark]
    public FilterAction ThreeContinue() => Run(_three);

    [Benchmark]
    public FilterAction ThirdResponds() => Run(_threeResponding);

    [Benchmark]
    public FilterAction OneConfiguredContinues()
    {
        _configured.TryEnter();
        try
        {
            return Run(_configured);
        }
        finally
        {
            _configured.Leave();
        }
    }

    private FilterAction Run(FilterChain chain)
    {
        var pending = chain.RunAsync(new HttpRequestContext(_context, _route), CancellationToken.None);
        return pending.IsCompletedSuccessfully ? pending.Result.Action : pending.AsTask().GetAwaiter().GetResult().Action;
    }

    /// <summary>Continues when the header is there, answers 400 otherwise; completes synchronously.</summary>
    private sealed class HeaderPresent(string name) : IRequestFilter
    {
        public ValueTask<FilterResult> OnRequestAsync(IRequestContext context, CancellationToken cancellationToken) =>
            new(context.GetHeader(name) is null ? FilterResult.Respond(400, "missing header") : FilterResult.Continue);
    }
}
