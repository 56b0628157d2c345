// Semantic checks of filter entries and the plugins directory (whether a named filter exists is checked against the loaded plugins).
namespace Mesh.Sidecar.Configuration;

internal static partial class ConfigValidator
{
    /// <summary>Most a filter may be given, in milliseconds.</summary>
    public const int MaxFilterTimeoutMs = 300_000;

    /// <summary>Wait for a C# filter whose entry sets no <c>timeoutMs</c>, in milliseconds.</summary>
    public const int DefaultFilterTimeoutMs = 1000;

    private static void ValidatePlugins(MeshOptions options, List<ConfigError> errors)
    {
        if (string.IsNullOrWhiteSpace(options.Plugins.Directory))
        {
            errors.Add(new ConfigError("plugins.directory", "is required (a folder, relative to the config file)"));
        }
    }

    private static void ValidateFilters(IReadOnlyList<FilterOptions> filters, string path, List<ConfigError> errors)
    {
        for (var i = 0; i < filters.Count; i++)
        {
            var filter = filters[i];
            var at = $"{path}[{i}]";
            CheckName(filter.Name, at + ".name", errors);
            CheckOneOf(filter.OnError, at + ".onError", [FilterErrorPolicies.Reject, FilterErrorPolicies.Continue], errors);
            if (filter.TimeoutMs is <= 0 or > MaxFilterTimeoutMs)
            {
                errors.Add(new ConfigError(at + ".timeoutMs", $"{filter.TimeoutMs} is out of range; use 1 to {MaxFilterTimeoutMs}"));
            }
        }
    }

    private static void ValidateConnectionFilters(ListenerOptions listener, string path, List<ConfigError> errors)
    {
        if (listener.ConnectionFilters.Count > 0 && listener.Protocol == ListenerProtocols.Udp)
        {
            errors.Add(new ConfigError(path + ".connectionFilters", "udp listeners have no connections to filter; use a tcp, tls-passthrough, http or auto listener"));
        }

        ValidateFilters(listener.ConnectionFilters, path + ".connectionFilters", errors);
    }
}
