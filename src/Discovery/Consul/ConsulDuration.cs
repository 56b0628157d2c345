// Go duration strings ("10s", "1m30s", "250ms") as Consul writes and reads them.
using System.Globalization;
using System.Text.RegularExpressions;

namespace Mesh.Discovery.Consul;

/// <summary>Converts between <see cref="TimeSpan"/> and Go's duration syntax.</summary>
public static partial class ConsulDuration
{
    /// <summary>Whole minutes as <c>Nm</c>, whole seconds as <c>Ns</c>, anything finer as <c>Nms</c>.</summary>
    public static string Format(TimeSpan value)
    {
        var ms = (long)Math.Ceiling(value.TotalMilliseconds);
        return ms > 0 && ms % 60_000 == 0 ? (ms / 60_000).ToString(CultureInfo.InvariantCulture) + "m"
            : ms % 1000 == 0 ? (ms / 1000).ToString(CultureInfo.InvariantCulture) + "s"
            : ms.ToString(CultureInfo.InvariantCulture) + "ms";
    }

    /// <summary>Parses <c>300ms</c>, <c>1.5h</c>, <c>1m30s</c> and friends; false for anything else.</summary>
    public static bool TryParse(string? text, out TimeSpan value)
    {
        value = TimeSpan.Zero;
        if (string.IsNullOrEmpty(text))
        {
            return false;
        }

        if (text == "0")
        {
            return true;
        }

        var matches = Part().Matches(text);
        var consumed = 0;
        double ticks = 0;
        foreach (Match match in matches)
        {
            if (match.Index != consumed)
            {
                return false;
            }

            consumed += match.Length;
            var number = double.Parse(match.Groups[1].Value, CultureInfo.InvariantCulture);
            ticks += number * match.Groups[2].Value switch
            {
                "ns" => TimeSpan.TicksPerMillisecond / 1_000_000.0,
                "us" or "µs" => TimeSpan.TicksPerMillisecond / 1000.0,
                "ms" => TimeSpan.TicksPerMillisecond,
                "s" => TimeSpan.TicksPerSecond,
                "m" => TimeSpan.TicksPerMinute,
                _ => TimeSpan.TicksPerHour,
            };
        }

        if (consumed != text.Length || matches.Count == 0)
        {
            return false;
        }

        value = TimeSpan.FromTicks((long)ticks);
        return true;
    }

    [GeneratedRegex(@"([0-9]+(?:\.[0-9]+)?)(ns|us|µs|ms|s|m|h)")]
    private static partial Regex Part();
}
