// The names retries are configured with: retry-on conditions and gRPC statuses.
using System.Globalization;

namespace Mesh.Sidecar.Resilience;

/// <summary>What a failed try was, as <c>retries.on</c> and the retry metrics name it.</summary>
internal static class RetryConditions
{
    public const string ConnectFailure = "connect-failure";
    public const string Reset = "reset";
    public const string AnyServerError = "5xx";
    public const string GatewayError = "gateway-error";

    /// <summary>Reason label of a try cut by <c>perTryTimeoutMs</c>.</summary>
    public const string PerTryTimeout = "per-try-timeout";

    /// <summary>The default <c>retries.on</c>.</summary>
    public static IReadOnlyList<string> Default { get; } = [ConnectFailure, Reset, "502", "503", "504"];

    /// <summary>The default <c>retries.grpcStatuses</c>.</summary>
    public static IReadOnlyList<string> DefaultGrpc { get; } = ["unavailable"];

    /// <summary>gRPC status names (lower case, words joined by '-') and their codes; OK is not a failure.</summary>
    public static IReadOnlyDictionary<string, int> GrpcStatuses { get; } = new Dictionary<string, int>(StringComparer.Ordinal)
    {
        ["cancelled"] = 1,
        ["unknown"] = 2,
        ["invalid-argument"] = 3,
        ["deadline-exceeded"] = 4,
        ["not-found"] = 5,
        ["already-exists"] = 6,
        ["permission-denied"] = 7,
        ["resource-exhausted"] = 8,
        ["failed-precondition"] = 9,
        ["aborted"] = 10,
        ["out-of-range"] = 11,
        ["unimplemented"] = 12,
        ["internal"] = 13,
        ["unavailable"] = 14,
        ["data-loss"] = 15,
        ["unauthenticated"] = 16,
    };

    /// <summary>Null when <paramref name="condition"/> is known, else what is wrong with it.</summary>
    public static string? Check(string condition) =>
        condition is ConnectFailure or Reset or AnyServerError or GatewayError || StatusOf(condition) is >= 400 and <= 599
            ? null
            : $"'{condition}' is not a retry condition; use connect-failure, reset, 5xx, gateway-error or a status code from 400 to 599";

    /// <summary>The status code a condition names, or 0.</summary>
    public static int StatusOf(string condition) =>
        condition.Length == 3 && int.TryParse(condition, NumberStyles.None, CultureInfo.InvariantCulture, out var status) ? status : 0;
}
