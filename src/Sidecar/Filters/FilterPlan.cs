// Every filter chain of one routing snapshot, built from the config and a filter registry; swapped with MeshState.
using System.Text.Json;
using Mesh.Plugins;
using Mesh.Plugins.JavaScript;
using Mesh.Sidecar.Configuration;

namespace Mesh.Sidecar.Filters;

/// <summary>
/// The chains of one <c>MeshState</c>: a request chain per route (by name) and a connection chain per
/// listener, plus the registry they were built from. Built completely before a swap; filters are
/// shared with the previous plan when their factory and config are unchanged.
/// </summary>
internal sealed class FilterPlan
{
    public FilterPlan(
        FilterRegistry registry,
        IReadOnlyDictionary<string, FilterChain> routeChains,
        IReadOnlyDictionary<string, ConnectionFilterChain> listenerChains,
        IReadOnlyDictionary<string, FilterInstance> instances)
    {
        Registry = registry;
        RouteChains = routeChains;
        ListenerChains = listenerChains;
        Instances = instances;
        foreach (var chain in listenerChains.Values)
        {
            HasConnectionFilters |= !chain.IsEmpty;
        }
    }

    public static FilterPlan Empty { get; } = new(FilterRegistry.Empty, new Dictionary<string, FilterChain>(), new Dictionary<string, ConnectionFilterChain>(), new Dictionary<string, FilterInstance>());

    public FilterRegistry Registry { get; }

    public IReadOnlyDictionary<string, FilterChain> RouteChains { get; }

    public IReadOnlyDictionary<string, ConnectionFilterChain> ListenerChains { get; }

    /// <summary>Every filter instance of the plan, by what it was built from.</summary>
    public IReadOnlyDictionary<string, FilterInstance> Instances { get; }

    /// <summary>True when some listener has connection filters.</summary>
    public bool HasConnectionFilters { get; }

    public FilterChain ChainFor(string route) => RouteChains.TryGetValue(route, out var chain) ? chain : FilterChain.Empty;

    public ConnectionFilterChain ConnectionChainFor(string listener) => ListenerChains.TryGetValue(listener, out var chain) ? chain : ConnectionFilterChain.Empty;
}

/// <summary>A problem building a chain: a config error, and the package whose factory raised it (if any).</summary>
internal sealed record FilterBuildError(ConfigError Error, FilterPackage? Culprit);

/// <summary>A filter entry naming a filter the registry does not have (fails closed at run time; an error for <c>validate</c>).</summary>
internal sealed record MissingFilter(string Path, string Name, string Reason, string? Detail = null);

/// <summary>Builds <see cref="FilterPlan"/>s: looks factories up by name, creates (or reuses) filters, wraps them with their policy.</summary>
internal sealed class FilterPlanBuilder(Func<string, string, string, FilterStats> statsFor, ILogger logger, Action<FilterInstance, Exception>? disposeFailed = null)
{
    public FilterPlan Build(MeshOptions options, FilterRegistry registry, FilterPlan? previous, List<FilterBuildError> errors, List<MissingFilter> missing)
    {
        var instances = new Dictionary<string, FilterInstance>(StringComparer.Ordinal);
        var routeChains = new Dictionary<string, FilterChain>(StringComparer.Ordinal);
        for (var i = 0; i < options.Routes.Count; i++)
        {
            var route = options.Routes[i];
            if (route.Filters.Count == 0)
            {
                continue;
            }

            var entries = new List<FilterEntry>(route.Filters.Count);
            for (var j = 0; j < route.Filters.Count; j++)
            {
                var filter = route.Filters[j];
                var path = $"routes[{i}].filters[{j}]";
                var stats = statsFor("route", route.Name, filter.Name);
                if (!registry.TryGet(filter.Name, out var factory))
                {
                    var detail = registry.TryGetConnection(filter.Name, out _) ? "is a connection filter (use it in listeners[].connectionFilters)" : null;
                    var reason = MissingReason(filter.Name, path, detail);
                    missing.Add(new MissingFilter(path, filter.Name, reason, detail));
                    entries.Add(FilterEntry.Missing(filter.Name, reason, stats));
                    continue;
                }

                // A JavaScript filter enforces its time limit itself, with the engine limits of jsFilters;
                // they are part of what it was built from, so a change of limits builds it again.
                var js = factory as JsFilterFactory;
                var timeout = TimeSpan.FromMilliseconds(filter.TimeoutMs ?? (js is null ? ConfigValidator.DefaultFilterTimeoutMs : options.JsFilters.TimeoutMs));
                var limits = js is null ? null : JsLimits(options, timeout);
                var key = $"route\n{route.Name}\n{j}\n{filter.Name}\n{Text(filter.Config)}" + (limits is null ? "" : "\n" + limits.Key);
                var package = registry.PackageOf(filter.Name);
                var instance = Reuse(previous, key, factory) ?? Create(
                    key,
                    factory,
                    package,
                    path,
                    errors,
                    () =>
                    {
                        var settings = new FilterSettings(filter.Name, filter.Config, path + ".config") { Route = route.Name };
                        return js is null ? factory.Create(settings) : js.Create(settings, limits!);
                    });
                if (instance is not null)
                {
                    instances[key] = instance;
                    entries.Add(new FilterEntry(filter.Name, instance, Policy(filter), timeout, stats));
                }
            }

            routeChains[route.Name] = new FilterChain(entries, route.Name, logger);
        }

        var listenerChains = new Dictionary<string, ConnectionFilterChain>(StringComparer.Ordinal);
        for (var i = 0; i < options.Listeners.Count; i++)
        {
            var listener = options.Listeners[i];
            if (listener.ConnectionFilters.Count == 0)
            {
                continue;
            }

            var entries = new List<FilterEntry>(listener.ConnectionFilters.Count);
            for (var j = 0; j < listener.ConnectionFilters.Count; j++)
            {
                var filter = listener.ConnectionFilters[j];
                var path = $"listeners[{i}].connectionFilters[{j}]";
                var stats = statsFor("listener", listener.Name, filter.Name);
                if (!registry.TryGetConnection(filter.Name, out var factory))
                {
                    var detail = registry.TryGet(filter.Name, out _) ? "is a request filter (use it in routes[].filters)" : null;
                    var reason = MissingReason(filter.Name, path, detail);
                    missing.Add(new MissingFilter(path, filter.Name, reason, detail));
                    entries.Add(FilterEntry.Missing(filter.Name, reason, stats));
                    continue;
                }

                var key = $"listener\n{listener.Name}\n{j}\n{filter.Name}\n{Text(filter.Config)}";
                var package = registry.PackageOf(filter.Name);
                var instance = Reuse(previous, key, factory) ?? Create(
                    key,
                    factory,
                    package,
                    path,
                    errors,
                    () => factory.Create(new FilterSettings(filter.Name, filter.Config, path + ".config") { Listener = listener.Name }));
                if (instance is not null)
                {
                    instances[key] = instance;
                    entries.Add(new FilterEntry(filter.Name, instance, Policy(filter), TimeSpan.FromMilliseconds(filter.TimeoutMs ?? ConfigValidator.DefaultFilterTimeoutMs), stats));
                }
            }

            listenerChains[listener.Name] = new ConnectionFilterChain(entries, listener.Name, logger);
        }

        return new FilterPlan(registry, routeChains, listenerChains, instances);
    }

    /// <summary>The filters <paramref name="plan"/> created that <paramref name="previous"/> does not hold: closed (the plan is never published).</summary>
    public static void Discard(FilterPlan plan, FilterPlan? previous)
    {
        foreach (var (key, instance) in plan.Instances)
        {
            if (previous is null || !previous.Instances.TryGetValue(key, out var kept) || !ReferenceEquals(kept, instance))
            {
                instance.Retire();
            }
        }
    }

    /// <summary>After <paramref name="plan"/> replaced <paramref name="previous"/>: the filters only the previous plan held are retired (they close after their last request).</summary>
    public static void Commit(FilterPlan plan, FilterPlan? previous)
    {
        if (previous is null)
        {
            return;
        }

        foreach (var (key, instance) in previous.Instances)
        {
            if (!plan.Instances.TryGetValue(key, out var kept) || !ReferenceEquals(kept, instance))
            {
                instance.Retire();
            }
        }
    }

    private static FilterInstance? Reuse(FilterPlan? previous, string key, object factory) =>
        previous is not null && previous.Instances.TryGetValue(key, out var instance) && ReferenceEquals(instance.Factory, factory) && !instance.IsClosed
            ? instance
            : null;

    private FilterInstance? Create(string key, object factory, FilterPackage? package, string path, List<FilterBuildError> errors, Func<object?> create)
    {
        object? filter;
        try
        {
            filter = create();
        }
        catch (FilterConfigException ex)
        {
            errors.Add(new FilterBuildError(new ConfigError(ex.Setting.Length == 0 ? path + ".config" : $"{path}.config{(ex.Setting.StartsWith('[') ? "" : ".")}{ex.Setting}", ex.Message), package));
            return null;
        }
        catch (FormatException ex)
        {
            errors.Add(new FilterBuildError(new ConfigError(path + ".config", ex.Message), package));
            return null;
        }
        catch (JsScriptException ex)
        {
            // The file's top level fails with these limits (it ran with the defaults when it loaded).
            errors.Add(new FilterBuildError(new ConfigError(path, ex.Message), package));
            return null;
        }
        catch (Exception ex)
        {
            // A factory's bug is the plugin's problem, reported where the config uses it.
            errors.Add(new FilterBuildError(new ConfigError(path, $"filter factory '{Name(factory)}' threw {ex.GetType().Name} in Create: {ex.Message}"), package));
            return null;
        }

        if (filter is null)
        {
            errors.Add(new FilterBuildError(new ConfigError(path, $"filter factory '{Name(factory)}' returned no filter"), package));
            return null;
        }

        return new FilterInstance(filter, package, key, disposeFailed) { Factory = factory };
    }

    private static string Name(object factory) => factory switch
    {
        IRequestFilterFactory request => request.Name,
        IConnectionFilterFactory connection => connection.Name,
        _ => factory.GetType().Name,
    };

    private static string MissingReason(string name, string path, string? detail) =>
        detail is null
            ? $"filter '{name}' ({path}) is not loaded; see /admin/plugins"
            : $"filter '{name}' ({path}) {detail}";

    private static FilterErrorPolicy Policy(FilterOptions filter) =>
        filter.OnError == FilterErrorPolicies.Continue ? FilterErrorPolicy.Continue : FilterErrorPolicy.Reject;

    /// <summary>The per-call limits of a JavaScript filter entry: its time limit and <c>jsFilters</c>' engine limits.</summary>
    public static JsFilterLimits JsLimits(MeshOptions options, TimeSpan timeout) =>
        new(timeout, options.JsFilters.MaxStatements, options.JsFilters.MemoryLimitMb * 1024L * 1024L, options.JsFilters.RecursionLimit);

    private static string Text(JsonElement config) => config.ValueKind == JsonValueKind.Undefined ? "{}" : config.GetRawText();
}
