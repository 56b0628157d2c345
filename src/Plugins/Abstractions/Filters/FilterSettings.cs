// A filter's configuration as the JSON the operator wrote, with readers that report bad settings by JSON path.
using System.Globalization;
using System.Text.Json;

namespace Mesh.Plugins;

/// <summary>
/// What a factory gets to build one filter: the <c>config</c> object of a route's (or listener's)
/// filter entry, as JSON, and where it stands in the sidecar's config. The readers throw
/// <see cref="FilterConfigException"/> naming the setting, so a bad value becomes a config error
/// such as <c>routes[0].filters[1].config.keys[2]: expected a string</c>.
/// </summary>
public sealed class FilterSettings
{
    private static readonly JsonElement EmptyObject = JsonDocument.Parse("{}").RootElement.Clone();

    /// <summary>Creates settings for the filter <paramref name="filterName"/> from a JSON object (or an absent/undefined element, meaning <c>{}</c>).</summary>
    public FilterSettings(string filterName, JsonElement config, string path = "config")
    {
        ArgumentException.ThrowIfNullOrEmpty(filterName);
        ArgumentNullException.ThrowIfNull(path);
        FilterName = filterName;
        Config = config.ValueKind == JsonValueKind.Undefined ? EmptyObject : config;
        Path = path;
        if (Config.ValueKind != JsonValueKind.Object)
        {
            throw new FilterConfigException("", $"expected an object, found {Describe(Config.ValueKind)}");
        }
    }

    /// <summary>Settings from JSON text (tests and tools).</summary>
    public static FilterSettings FromJson(string filterName, string json)
    {
        ArgumentNullException.ThrowIfNull(json);
        using var document = JsonDocument.Parse(json);
        return new FilterSettings(filterName, document.RootElement.Clone());
    }

    /// <summary>The name the route asked for.</summary>
    public string FilterName { get; }

    /// <summary>The <c>config</c> object; an empty object when the entry has none.</summary>
    public JsonElement Config { get; }

    /// <summary>Where the object is in the sidecar's config, such as <c>routes[0].filters[1].config</c>.</summary>
    public string Path { get; }

    /// <summary>The route the filter is built for; null for connection filters.</summary>
    public string? Route { get; init; }

    /// <summary>The listener a connection filter is built for; null for request filters.</summary>
    public string? Listener { get; init; }

    /// <summary>True when the setting is present and not null.</summary>
    public bool Has(string name) => Config.TryGetProperty(name, out var value) && value.ValueKind != JsonValueKind.Null;

    /// <summary>A string setting; <paramref name="fallback"/> when absent. Throws when present but not a string.</summary>
    public string? GetString(string name, string? fallback = null)
    {
        if (!TryGet(name, out var value))
        {
            return fallback;
        }

        return value.ValueKind == JsonValueKind.String ? value.GetString() : throw Wrong(name, "a string", value);
    }

    /// <summary>A required string setting. Throws when absent, empty or not a string.</summary>
    public string GetRequiredString(string name)
    {
        var value = GetString(name);
        return string.IsNullOrEmpty(value) ? throw new FilterConfigException(name, "is required") : value;
    }

    /// <summary>A whole-number setting; <paramref name="fallback"/> when absent. Throws when not an integer or outside [<paramref name="min"/>, <paramref name="max"/>].</summary>
    public long GetInt64(string name, long fallback, long min = long.MinValue, long max = long.MaxValue)
    {
        if (!TryGet(name, out var value))
        {
            return fallback;
        }

        if (value.ValueKind != JsonValueKind.Number || !value.TryGetInt64(out var number))
        {
            throw Wrong(name, "a whole number", value);
        }

        return number < min || number > max
            ? throw new FilterConfigException(name, string.Create(CultureInfo.InvariantCulture, $"{number} is out of range; use {min} to {max}"))
            : number;
    }

    /// <summary>A number setting; <paramref name="fallback"/> when absent.</summary>
    public double GetDouble(string name, double fallback)
    {
        if (!TryGet(name, out var value))
        {
            return fallback;
        }

        return value.ValueKind == JsonValueKind.Number ? value.GetDouble() : throw Wrong(name, "a number", value);
    }

    /// <summary>A true/false setting; <paramref name="fallback"/> when absent.</summary>
    public bool GetBoolean(string name, bool fallback)
    {
        if (!TryGet(name, out var value))
        {
            return fallback;
        }

        return value.ValueKind switch
        {
            JsonValueKind.True => true,
            JsonValueKind.False => false,
            _ => throw Wrong(name, "true or false", value),
        };
    }

    /// <summary>A list of strings; empty when absent. Throws naming the first element that is not a string.</summary>
    public IReadOnlyList<string> GetStrings(string name)
    {
        if (!TryGet(name, out var value))
        {
            return [];
        }

        if (value.ValueKind != JsonValueKind.Array)
        {
            throw Wrong(name, "a list of strings", value);
        }

        var result = new List<string>(value.GetArrayLength());
        var index = 0;
        foreach (var item in value.EnumerateArray())
        {
            if (item.ValueKind != JsonValueKind.String)
            {
                throw Wrong(string.Create(CultureInfo.InvariantCulture, $"{name}[{index}]"), "a string", item);
            }

            result.Add(item.GetString()!);
            index++;
        }

        return result;
    }

    /// <summary>
    /// The config flattened the way .NET configuration flattens JSON: <c>"a:b"</c> for nested objects,
    /// <c>"list:0"</c> for list items, values as text. Factories written against contract 1.0 get this.
    /// </summary>
    public IReadOnlyDictionary<string, string> ToDictionary()
    {
        var result = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        Flatten(Config, "", result);
        return result;
    }

    private bool TryGet(string name, out JsonElement value) =>
        Config.TryGetProperty(name, out value) && value.ValueKind != JsonValueKind.Null;

    private static FilterConfigException Wrong(string name, string expected, JsonElement found) =>
        new(name, $"expected {expected}, found {Describe(found.ValueKind)}");

    private static string Describe(JsonValueKind kind) => kind switch
    {
        JsonValueKind.Object => "an object",
        JsonValueKind.Array => "a list",
        JsonValueKind.String => "a string",
        JsonValueKind.Number => "a number",
        JsonValueKind.True or JsonValueKind.False => "true or false",
        _ => "null",
    };

    private static void Flatten(JsonElement element, string prefix, Dictionary<string, string> result)
    {
        switch (element.ValueKind)
        {
            case JsonValueKind.Object:
                foreach (var property in element.EnumerateObject())
                {
                    Flatten(property.Value, prefix.Length == 0 ? property.Name : prefix + ":" + property.Name, result);
                }

                break;
            case JsonValueKind.Array:
                var index = 0;
                foreach (var item in element.EnumerateArray())
                {
                    Flatten(item, prefix + ":" + index.ToString(CultureInfo.InvariantCulture), result);
                    index++;
                }

                break;
            case JsonValueKind.String:
                result[prefix] = element.GetString()!;
                break;
            case JsonValueKind.Null:
                result[prefix] = "";
                break;
            default:
                result[prefix] = element.GetRawText();
                break;
        }
    }
}

/// <summary>A bad filter setting: the sidecar reports it at <c>config.</c><see cref="Setting"/> of the filter entry.</summary>
public sealed class FilterConfigException : FormatException
{
    /// <summary>Creates the error for <paramref name="setting"/> (a path inside <c>config</c>, such as <c>keys[2]</c>; empty for the object itself).</summary>
    public FilterConfigException(string setting, string message)
        : base(message)
    {
        ArgumentNullException.ThrowIfNull(setting);
        Setting = setting;
    }

    /// <summary>Creates the error for the <c>config</c> object as a whole.</summary>
    public FilterConfigException()
        : this("", "invalid filter settings")
    {
    }

    /// <summary>Creates the error for the <c>config</c> object as a whole.</summary>
    public FilterConfigException(string message)
        : this("", message)
    {
    }

    /// <summary>Creates the error for the <c>config</c> object as a whole, with the cause.</summary>
    public FilterConfigException(string message, Exception innerException)
        : base(message, innerException) => Setting = "";

    /// <summary>Path of the bad setting inside <c>config</c>; empty for the object itself.</summary>
    public string Setting { get; }
}
