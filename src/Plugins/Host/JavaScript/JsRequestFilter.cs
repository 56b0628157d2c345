// A JavaScript file as a filter of the shared contract: factory per file, filter per route entry, engines pooled per filter.
namespace Mesh.Plugins.JavaScript;

/// <summary>
/// Publishes one file as a request filter named by its file name. <see cref="Create(FilterSettings, JsFilterLimits)"/>
/// builds a filter for one route entry: its limits and its <c>config</c> are fixed in its engines,
/// and the first engine is made (and the file's top level run) right away, so a version that
/// cannot run is refused before it is swapped in and the first request does not pay for it.
/// </summary>
internal sealed class JsFilterFactory(JsScript script, JsFilterHost host) : IRequestFilterFactory
{
    public string Name => script.Name;

    public JsScript Script => script;

    /// <summary>A filter with the default limits (tests, tools); the sidecar passes the configured ones.</summary>
    public IRequestFilter Create(FilterSettings settings) => Create(settings, JsFilterLimits.Default);

    public IRequestFilter Create(FilterSettings settings, JsFilterLimits limits)
    {
        ArgumentNullException.ThrowIfNull(settings);
        ArgumentNullException.ThrowIfNull(limits);
        var config = settings.Config.GetRawText();
        var route = settings.Route ?? settings.Listener ?? "";
        var first = JsEngine.Create(script, limits, config, host, route);
        var pool = new JsEnginePool(() => JsEngine.Create(script, limits, config, host, route), Math.Max(4, Environment.ProcessorCount * 2));
        pool.Warm(first);
        return first.HasOnResponse ? new JsResponseFilter(script.Name, pool, host) : new JsRequestFilter(script.Name, pool, host);
    }
}

/// <summary>
/// One route entry's JavaScript filter. Each call rents an engine, runs the script synchronously
/// (no task, no allocation of its own), and returns the engine. A script error is reported to the
/// chain (500 or skipped, by the entry's <c>onError</c>) and the engine is cleaned and reused; a call
/// stopped by a limit is reported as a timeout (time limit: 504) or an error (others: 500), and its
/// engine is dropped.
/// </summary>
internal class JsRequestFilter(string name, JsEnginePool pool, JsFilterHost host) : IRequestFilter, IDisposable
{
    protected string Name { get; } = name;

    /// <summary>The engines (tests and the admin API read how many were made).</summary>
    public JsEnginePool Pool { get; } = pool;

    public ValueTask<FilterResult> OnRequestAsync(IRequestContext context, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(context);
        var engine = Pool.Rent();
        FilterResult result;
        try
        {
            result = engine.OnRequest(context);
        }
        catch (JsCallException ex)
        {
            throw Failed(engine, ex);
        }
        catch
        {
            engine.Dispose();
            throw;
        }

        Pool.Return(engine);
        return new ValueTask<FilterResult>(result);
    }

    public void Dispose()
    {
        Pool.Dispose();
        GC.SuppressFinalize(this);
    }

    // The engine goes back clean after a script error and is dropped after a limit; the chain gets a
    // timeout (it answers 504 or skips) or the error (500 or skips) and counts and logs it.
    protected Exception Failed(JsEngine engine, JsCallException exception)
    {
        if (exception.Limit is { } limit)
        {
            engine.Dispose();
            host.Breached(Name, limit);
            return limit == JsLimit.Time ? new FilterTimeoutException() : exception;
        }

        try
        {
            engine.Recover();
            Pool.Return(engine);
        }
        catch (Exception)
        {
            engine.Dispose();
        }

        return exception;
    }
}

/// <summary>A JavaScript filter whose file also defines <c>onResponse(res, ctx)</c>.</summary>
internal sealed class JsResponseFilter(string name, JsEnginePool pool, JsFilterHost host) : JsRequestFilter(name, pool, host), IResponseFilter
{
    public ValueTask OnResponseAsync(IResponseContext context, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(context);
        var engine = Pool.Rent();
        try
        {
            engine.OnResponse(context);
        }
        catch (JsCallException ex)
        {
            throw Failed(engine, ex);
        }
        catch
        {
            engine.Dispose();
            throw;
        }

        Pool.Return(engine);
        return ValueTask.CompletedTask;
    }
}
