// What `validate` adds for filters: load the plugin directory as `run` would and build every chain strictly.
using Mesh.Plugins;
using Mesh.Plugins.JavaScript;
using Mesh.Plugins.Loading;
using Mesh.Sidecar.Configuration;
using Microsoft.Extensions.Logging.Abstractions;

namespace Mesh.Sidecar.Filters;

/// <summary>
/// Checks the filters of a valid config against its plugin and JavaScript filter directories: a route
/// (or listener) naming a filter that is not there (a missing <c>.js</c> file included), a file that
/// does not load, and a factory rejecting its settings, are errors with their JSON paths.
/// (A running sidecar lets a missing filter fail closed instead, since the plugin may arrive later.)
/// </summary>
internal static class FilterValidation
{
    public static ConfigLoadResult Check(string configPath, ConfigLoadResult result)
    {
        ArgumentNullException.ThrowIfNull(result);
        if (!result.IsValid || result.Options is not { } options || !UsesFilters(options))
        {
            return result;
        }

        var baseDirectory = Path.GetDirectoryName(Path.GetFullPath(configPath)) ?? Environment.CurrentDirectory;
        var directory = Path.GetFullPath(options.Plugins.Directory, baseDirectory);
        var jsDirectory = Path.GetFullPath(options.JsFilters.Directory, baseDirectory);
        using var source = new PluginDirectorySource();
        source.SetDirectory(directory);
        using var js = new JsFilterSource { CheckLimits = FilterPlanBuilder.JsLimits(options, TimeSpan.FromMilliseconds(options.JsFilters.TimeoutMs)) };
        js.SetDirectory(jsDirectory);
        var catalog = new FilterCatalog();
        var refusals = new List<string>();
        var jsRefusals = new List<string>();
        foreach (var change in source.ScanNow().Concat(js.ScanNow()))
        {
            if (change.Kind == FilterSourceChangeKind.Refused)
            {
                (change.Source == JsFilterSource.SourceName ? jsRefusals : refusals).Add($"{change.File} ({change.Reason})");
            }
            else if (change.Package is { } package)
            {
                if (catalog.Propose(package, out var conflict) is null)
                {
                    refusals.Add($"{change.File} ({conflict})");
                    package.Retire();
                }
                else
                {
                    catalog.Accept(package);
                }
            }
        }

        var failures = new List<FilterBuildError>();
        var missing = new List<MissingFilter>();
        var builder = new FilterPlanBuilder(static (kind, scope, filter) => new FilterStats(scope, filter, scopeKind: kind), NullLogger.Instance);
        var plan = builder.Build(options, catalog.Registry, null, failures, missing);
        FilterPlanBuilder.Discard(plan, null);
        var known = string.Join(", ", plan.Registry.Names.Concat(plan.Registry.ConnectionNames).Order(StringComparer.Ordinal));
        foreach (var package in catalog.Registry.Packages)
        {
            catalog.Remove(package.Id);
        }

        var errors = new List<ConfigError>(failures.Select(f => f.Error));
        foreach (var filter in missing)
        {
            if (filter.Detail is not null)
            {
                errors.Add(new ConfigError(filter.Path + ".name", $"'{filter.Name}' {filter.Detail}"));
                continue;
            }

            string message;
            if (filter.Name.EndsWith(".js", StringComparison.OrdinalIgnoreCase))
            {
                // A JavaScript filter is a file: say which directory lacks it, or why the file did not load.
                var files = string.Join(", ", plan.Registry.Names.Where(n => n.EndsWith(".js", StringComparison.OrdinalIgnoreCase)).Order(StringComparer.Ordinal));
                message = $"no JavaScript filter file {filter.Name} in the jsFilters directory {jsDirectory}";
                message += files.Length > 0 ? $" (it has: {files})" : " (it has none)";
                if (jsRefusals.Count > 0)
                {
                    message += "; refused there: " + string.Join("; ", jsRefusals);
                }
            }
            else
            {
                message = $"no filter named '{filter.Name}' in the plugins directory {directory}";
                message += known.Length > 0 ? $" (it has: {known})" : " (it has none)";
                if (refusals.Count > 0)
                {
                    message += "; refused there: " + string.Join("; ", refusals);
                }
            }

            errors.Add(new ConfigError(filter.Path + ".name", message));
        }

        return errors.Count == 0 ? result : new ConfigLoadResult(null, errors);
    }

    private static bool UsesFilters(MeshOptions options) =>
        options.Routes.Any(r => r.Filters.Count > 0) || options.Listeners.Any(l => l.ConnectionFilters.Count > 0);
}
