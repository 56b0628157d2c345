// /admin/plugins: every plugin's (and JavaScript file's) file, versions, factories, load time, state (loaded, refused with reason) and per-filter counters.
using System.Globalization;
using System.Text.Json.Nodes;
using Mesh.Plugins;
using Mesh.Plugins.JavaScript;
using Mesh.Plugins.Loading;

namespace Mesh.Sidecar.Filters;

/// <summary>Renders the plugin catalog and the filter counters as JSON.</summary>
internal sealed class PluginsAdmin(FilterRuntime filters, FilterMetrics metrics)
{
    /// <summary>A JavaScript file's <c>topLevel</c>: run once per engine, then frozen.</summary>
    public const string SharedTopLevel = "shared";

    /// <summary>A JavaScript file's <c>topLevel</c>: run again before every call.</summary>
    public const string PerCallTopLevel = "per-call";

    public JsonObject Render()
    {
        var stats = metrics.AllStats.ToList();
        var plugins = new JsonArray();
        foreach (var unit in filters.Catalog.Units())
        {
            var entry = new JsonObject { ["id"] = unit.Id, ["source"] = unit.Source };
            if (unit.Loaded is { } package)
            {
                entry["file"] = package.File;
                entry["state"] = "loaded";
                entry["assemblyVersion"] = package.Version;
                entry["contractVersion"] = package.ContractVersion;
                entry["loadedAt"] = package.LoadedAt.ToString("O", CultureInfo.InvariantCulture);
                entry["factories"] = Factories(package, stats);
                if (package.RequestFactories is [JsFilterFactory js])
                {
                    // Whether the file's top level runs once per engine (then frozen) or again for every call, and why.
                    entry["topLevel"] = js.Script.SharedTopLevel ? SharedTopLevel : PerCallTopLevel;
                    entry["topLevelReason"] = js.Script.FreshReason;
                }
            }
            else
            {
                entry["file"] = unit.Refusal!.File;
                entry["state"] = "refused";
            }

            if (unit.Refusal is { } refusal)
            {
                // With a loaded version, this is the newer file that was refused while that version kept serving.
                entry["refused"] = new JsonObject
                {
                    ["file"] = refusal.File,
                    ["reason"] = refusal.Reason,
                    ["at"] = refusal.At.ToString("O", CultureInfo.InvariantCulture),
                };
            }

            plugins.Add(entry);
        }

        var retired = new JsonArray();
        foreach (var package in filters.Catalog.Retired())
        {
            retired.Add(new JsonObject
            {
                ["file"] = package.File,
                ["assemblyVersion"] = package.Version,
                ["loadedAt"] = package.LoadedAt.ToString("O", CultureInfo.InvariantCulture),
                ["state"] = package.State == PackageState.Draining ? "draining" : "unloaded",
                // Filters of it still serving requests that started before the swap.
                ["liveFilters"] = package.LiveInstances,
                // Whether the runtime has collected its load context yet.
                ["collected"] = package.LoadContext is { IsAlive: false },
            });
        }

        var sources = new JsonArray();
        foreach (var source in filters.Sources)
        {
            sources.Add(new JsonObject { ["name"] = source.Name, ["directory"] = source.Directory });
        }

        return new JsonObject
        {
            ["contract"] = $"{PluginInspector.HostContract.Major}.{PluginInspector.HostContract.Minor}",
            ["sources"] = sources,
            ["plugins"] = plugins,
            ["retired"] = retired,
        };
    }

    private static JsonArray Factories(FilterPackage package, List<FilterStats> stats)
    {
        var factories = new JsonArray();
        foreach (var factory in package.RequestFactories)
        {
            factories.Add(Factory(factory.Name, "request", stats));
        }

        foreach (var factory in package.ConnectionFactories)
        {
            factories.Add(Factory(factory.Name, "connection", stats));
        }

        return factories;
    }

    private static JsonObject Factory(string name, string kind, List<FilterStats> stats)
    {
        var scopeKind = kind == "request" ? "route" : "listener";
        long calls = 0, errors = 0, timeouts = 0;
        var elapsed = TimeSpan.Zero;
        var uses = new JsonArray();
        foreach (var each in stats)
        {
            if (each.ScopeKind != scopeKind || !string.Equals(each.Filter, name, StringComparison.OrdinalIgnoreCase))
            {
                continue;
            }

            calls += each.Calls;
            errors += each.Errors;
            timeouts += each.Timeouts;
            elapsed += each.Elapsed;
            uses.Add(new JsonObject
            {
                [scopeKind] = each.Scope,
                ["calls"] = each.Calls,
                ["errors"] = each.Errors,
                ["timeouts"] = each.Timeouts,
                ["meanLatencyMs"] = Mean(each.Elapsed, each.Calls),
            });
        }

        return new JsonObject
        {
            ["name"] = name,
            ["kind"] = kind,
            ["calls"] = calls,
            ["errors"] = errors,
            ["timeouts"] = timeouts,
            ["meanLatencyMs"] = Mean(elapsed, calls),
            ["uses"] = uses,
        };
    }

    private static double Mean(TimeSpan elapsed, long calls) => calls == 0 ? 0 : Math.Round(elapsed.TotalMilliseconds / calls, 4);
}
