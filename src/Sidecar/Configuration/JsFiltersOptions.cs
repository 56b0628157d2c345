// Config record for JavaScript filters: jsFilters.directory and the per-call limits.
namespace Mesh.Sidecar.Configuration;

/// <summary>Where JavaScript filters are loaded from and what one call may use.</summary>
public sealed record JsFiltersOptions
{
    /// <summary>Folder of <c>.js</c> files, relative to the config file's folder unless absolute; each file is a filter named by its file name.</summary>
    public string Directory { get; init; } = "filters";

    /// <summary>Time limit of one call in milliseconds, unless the route entry sets its own <c>timeoutMs</c>.</summary>
    public int TimeoutMs { get; init; } = 50;

    /// <summary>Statements one call may execute.</summary>
    public int MaxStatements { get; init; } = 100_000;

    /// <summary>Memory one call may allocate, in MiB.</summary>
    public int MemoryLimitMb { get; init; } = 16;

    /// <summary>How deep JavaScript calls may nest.</summary>
    public int RecursionLimit { get; init; } = 64;
}
