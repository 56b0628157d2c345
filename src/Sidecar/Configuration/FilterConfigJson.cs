// Puts each filter entry's config object back as the JSON written in the file (configuration binding flattens it to strings).
using System.Globalization;
using System.Text.Json;
using System.Text.RegularExpressions;

namespace Mesh.Sidecar.Configuration;

/// <summary>
/// Reads <c>routes[].filters[].config</c> and <c>listeners[].connectionFilters[].config</c> from the
/// config file's own JSON document, so factories get real JSON (numbers, lists, nested objects)
/// rather than configuration's flattened strings. Overrides from <c>MESH__</c> variables and the
/// command line can set a filter's <c>name</c>, <c>onError</c> and <c>timeoutMs</c> but not reach inside
/// its <c>config</c>; trying is reported as an error instead of being silently ignored.
/// </summary>
internal static partial class FilterConfigJson
{
    public static ConfigLoadResult Attach(ConfigLoadResult result, byte[] json, IEnumerable<string> overrideKeys)
    {
        var errors = new List<ConfigError>(result.Errors);
        foreach (var key in overrideKeys)
        {
            if (OverrideIntoConfig().Match(key) is { Success: true } match)
            {
                var path = string.Create(CultureInfo.InvariantCulture, $"{Camel(match.Groups[1].Value)}[{match.Groups[2].Value}].{Camel(match.Groups[3].Value)}[{match.Groups[4].Value}].config");
                errors.Add(new ConfigError(path, $"'{key}' is an override into a filter's config; overrides do not reach inside config, write it in the file"));
            }
        }

        if (result.Options is not { } options)
        {
            return new ConfigLoadResult(null, errors);
        }

        using var document = JsonDocument.Parse(json, new JsonDocumentOptions { CommentHandling = JsonCommentHandling.Skip, AllowTrailingCommas = true });
        var root = document.RootElement;
        var routes = new List<RouteOptions>(options.Routes.Count);
        var fileRoutes = Property(root, "routes");
        for (var i = 0; i < options.Routes.Count; i++)
        {
            var route = options.Routes[i];
            var entries = Property(Item(fileRoutes, i), "filters");
            routes.Add(route.Filters.Count == 0 ? route : route with { Filters = WithConfig(route.Filters, entries, $"routes[{i}].filters", errors) });
        }

        var listeners = new List<ListenerOptions>(options.Listeners.Count);
        var fileListeners = Property(root, "listeners");
        for (var i = 0; i < options.Listeners.Count; i++)
        {
            var listener = options.Listeners[i];
            var entries = Property(Item(fileListeners, i), "connectionFilters");
            listeners.Add(listener.ConnectionFilters.Count == 0 ? listener : listener with { ConnectionFilters = WithConfig(listener.ConnectionFilters, entries, $"listeners[{i}].connectionFilters", errors) });
        }

        return errors.Count == 0
            ? new ConfigLoadResult(options with { Routes = routes, Listeners = listeners }, errors)
            : new ConfigLoadResult(null, errors);
    }

    private static List<FilterOptions> WithConfig(IReadOnlyList<FilterOptions> filters, JsonElement entries, string path, List<ConfigError> errors)
    {
        var result = new List<FilterOptions>(filters.Count);
        for (var j = 0; j < filters.Count; j++)
        {
            var config = Property(Item(entries, j), "config");
            switch (config.ValueKind)
            {
                case JsonValueKind.Object:
                    result.Add(filters[j] with { Config = config.Clone() });
                    break;
                case JsonValueKind.Undefined or JsonValueKind.Null:
                    result.Add(filters[j]);
                    break;
                default:
                    errors.Add(new ConfigError($"{path}[{j}].config", $"expected an object, found {config.ValueKind.ToString().ToLowerInvariant()}"));
                    result.Add(filters[j]);
                    break;
            }
        }

        return result;
    }

    // Configuration keys are case-insensitive, so the file's keys are matched the same way.
    private static JsonElement Property(JsonElement element, string name)
    {
        if (element.ValueKind == JsonValueKind.Object)
        {
            foreach (var property in element.EnumerateObject())
            {
                if (string.Equals(property.Name, name, StringComparison.OrdinalIgnoreCase))
                {
                    return property.Value;
                }
            }
        }

        return default;
    }

    private static JsonElement Item(JsonElement element, int index) =>
        element.ValueKind == JsonValueKind.Array && index < element.GetArrayLength() ? element[index] : default;

    private static string Camel(string key) => key.Equals("connectionfilters", StringComparison.OrdinalIgnoreCase) ? "connectionFilters" : key.ToLowerInvariant();

    [GeneratedRegex(@"^(routes|listeners):(\d+):(filters|connectionFilters):(\d+):config(:|$)", RegexOptions.IgnoreCase | RegexOptions.CultureInvariant)]
    private static partial Regex OverrideIntoConfig();
}
