// The hard limits of one JavaScript filter call: time, statements, memory, recursion depth.
namespace Mesh.Plugins.JavaScript;

/// <summary>
/// What one call of a JavaScript filter (its <c>onRequest</c> or <c>onResponse</c>, with the promise
/// jobs it queued) may use. Each limit is needed: the memory limit does not stop a loop that
/// allocates nothing, the statement limit does not stop a slow regular expression, and the time
/// limit alone would let a fast machine allocate gigabytes before it fires.
/// </summary>
/// <param name="Timeout">Wall-clock time per call (<c>jsFilters.timeoutMs</c>, or the route entry's <c>timeoutMs</c>).</param>
/// <param name="MaxStatements">Statements per call (<c>jsFilters.maxStatements</c>).</param>
/// <param name="MemoryLimitBytes">Bytes the call may allocate (<c>jsFilters.memoryLimitMb</c>).</param>
/// <param name="RecursionLimit">Nested JavaScript calls (<c>jsFilters.recursionLimit</c>).</param>
internal sealed record JsFilterLimits(TimeSpan Timeout, int MaxStatements, long MemoryLimitBytes, int RecursionLimit)
{
    /// <summary>Default time limit per call, in milliseconds.</summary>
    public const int DefaultTimeoutMs = 50;

    /// <summary>Default statement limit per call.</summary>
    public const int DefaultMaxStatements = 100_000;

    /// <summary>Default memory limit per call, in MiB.</summary>
    public const int DefaultMemoryLimitMb = 16;

    /// <summary>Default recursion limit.</summary>
    public const int DefaultRecursionLimit = 64;

    /// <summary>The defaults of <c>jsFilters</c>.</summary>
    public static JsFilterLimits Default { get; } = new(TimeSpan.FromMilliseconds(DefaultTimeoutMs), DefaultMaxStatements, DefaultMemoryLimitMb * 1024L * 1024L, DefaultRecursionLimit);

    /// <summary>A stable text of the limits, part of what decides whether a filter can be reused across reloads.</summary>
    public string Key => FormattableString.Invariant($"{Timeout.Ticks}/{MaxStatements}/{MemoryLimitBytes}/{RecursionLimit}");
}
