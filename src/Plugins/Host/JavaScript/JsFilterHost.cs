// What every JavaScript filter shares: the log, the rate-limit buckets and the limit-breach counter.
using System.Diagnostics.Metrics;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Mesh.Plugins.JavaScript;

/// <summary>Which hard limit a call hit.</summary>
internal enum JsLimit
{
    /// <summary>The call ran past its time limit (a slow regular expression included).</summary>
    Time,

    /// <summary>The call executed more statements than allowed.</summary>
    Statements,

    /// <summary>The call allocated more memory than allowed.</summary>
    Memory,

    /// <summary>The call nested JavaScript calls deeper than allowed (or exhausted the stack).</summary>
    Recursion,
}

/// <summary>The host services of the JavaScript filters of one sidecar.</summary>
internal sealed partial class JsFilterHost
{
    private readonly Counter<long>? _breaches;

    public JsFilterHost(ILoggerFactory? loggers = null, Meter? meter = null)
    {
        Logger = (loggers ?? NullLoggerFactory.Instance).CreateLogger("Mesh.JsFilters");
        _breaches = meter?.CreateCounter<long>("mesh.js.limit.breaches", "{call}", "JavaScript filter calls stopped by a hard limit, by filter (file) and limit (time, statements, memory, recursion).");
    }

    /// <summary>Where <c>ctx.log</c> and load problems go.</summary>
    public ILogger Logger { get; }

    /// <summary>The buckets of <c>ctx.rateLimit</c>.</summary>
    public JsRateLimiter RateLimiter { get; } = new();

    /// <summary>Counts a call stopped by <paramref name="limit"/>.</summary>
    public void Breached(string filter, JsLimit limit)
    {
        _breaches?.Add(1, new KeyValuePair<string, object?>("filter", filter), new KeyValuePair<string, object?>("limit", Name(limit)));
    }

    public static string Name(JsLimit limit) => limit switch
    {
        JsLimit.Time => "time",
        JsLimit.Statements => "statements",
        JsLimit.Memory => "memory",
        _ => "recursion",
    };

    public void ScriptLog(string filter, string route, string message) => Log.ScriptLog(Logger, filter, route, message);

    private static partial class Log
    {
        [LoggerMessage(5301, LogLevel.Information, "JavaScript filter {Filter} on route {Route}: {Message}")]
        public static partial void ScriptLog(ILogger logger, string filter, string route, string message);
    }
}
