// Config records for plugins and filter chains: plugins.directory, routes[].filters[], listeners[].connectionFilters[].
using System.Text.Json;

namespace Mesh.Sidecar.Configuration;

/// <summary>Where C# plugins are loaded from.</summary>
public sealed record PluginsOptions
{
    /// <summary>Plugin folder, relative to the config file's folder unless absolute: one subfolder or DLL per plugin.</summary>
    public string Directory { get; init; } = "plugins";
}

/// <summary>One filter in a route's (or a listener's) ordered chain.</summary>
public sealed record FilterOptions
{
    /// <summary>The factory's <c>Name</c>.</summary>
    public string Name { get; init; } = "";

    /// <summary>
    /// The filter's settings as the JSON object written in the file. Read from the file itself, not
    /// through configuration binding (which would flatten it to strings): environment and
    /// command-line overrides do not reach inside it.
    /// </summary>
    [RawJson]
    public JsonElement Config { get; internal init; }

    /// <summary><c>reject</c> (default: 500 when the filter throws, 504 when it times out) or <c>continue</c> (skip it).</summary>
    public string OnError { get; init; } = FilterErrorPolicies.Reject;

    /// <summary>
    /// Longest wait for the filter, in milliseconds; when absent, 1000 for C# filters and
    /// <c>jsFilters.timeoutMs</c> (the time limit of each call) for JavaScript filters.
    /// </summary>
    public int? TimeoutMs { get; init; }
}

/// <summary>Values of <see cref="FilterOptions.OnError"/>.</summary>
public static class FilterErrorPolicies
{
    /// <summary>Fail closed.</summary>
    public const string Reject = "reject";

    /// <summary>Skip the filter.</summary>
    public const string Continue = "continue";
}

/// <summary>Marks a property whose value is kept as raw JSON: the shape check does not walk into it and the binder leaves it alone.</summary>
[AttributeUsage(AttributeTargets.Property)]
public sealed class RawJsonAttribute : Attribute;
