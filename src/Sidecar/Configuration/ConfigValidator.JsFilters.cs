// Semantic checks of jsFilters: a directory, and limits in a range a filter call can live with.
namespace Mesh.Sidecar.Configuration;

internal static partial class ConfigValidator
{
    /// <summary>Most memory one JavaScript call may be given, in MiB.</summary>
    public const int MaxJsMemoryLimitMb = 4096;

    /// <summary>Deepest JavaScript recursion allowed (deeper would risk the thread's stack).</summary>
    public const int MaxJsRecursionLimit = 10_000;

    private static void ValidateJsFilters(MeshOptions options, List<ConfigError> errors)
    {
        var js = options.JsFilters;
        if (string.IsNullOrWhiteSpace(js.Directory))
        {
            errors.Add(new ConfigError("jsFilters.directory", "is required (a folder of .js files, relative to the config file)"));
        }

        if (js.TimeoutMs is <= 0 or > MaxFilterTimeoutMs)
        {
            errors.Add(new ConfigError("jsFilters.timeoutMs", $"{js.TimeoutMs} is out of range; use 1 to {MaxFilterTimeoutMs}"));
        }

        if (js.MaxStatements <= 0)
        {
            errors.Add(new ConfigError("jsFilters.maxStatements", $"{js.MaxStatements} is out of range; use 1 or more"));
        }

        if (js.MemoryLimitMb is <= 0 or > MaxJsMemoryLimitMb)
        {
            errors.Add(new ConfigError("jsFilters.memoryLimitMb", $"{js.MemoryLimitMb} is out of range; use 1 to {MaxJsMemoryLimitMb}"));
        }

        if (js.RecursionLimit is <= 0 or > MaxJsRecursionLimit)
        {
            errors.Add(new ConfigError("jsFilters.recursionLimit", $"{js.RecursionLimit} is out of range; use 1 to {MaxJsRecursionLimit}"));
        }
    }
}
