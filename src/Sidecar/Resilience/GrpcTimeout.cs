// Reads gRPC's grpc-timeout header (an integer of up to 8 digits and a unit: H, M, S, m, u, n).
using Microsoft.Extensions.Primitives;

namespace Mesh.Sidecar.Resilience;

/// <summary>Parses <c>grpc-timeout</c> as the gRPC over HTTP/2 protocol defines it.</summary>
internal static class GrpcTimeout
{
    /// <summary>The timeout in whole milliseconds (at least 1), or null when the header is absent or malformed.</summary>
    public static int? Parse(StringValues header)
    {
        if (header.Count != 1 || header[0] is not { Length: >= 2 and <= 9 } text)
        {
            return null;
        }

        long value = 0;
        for (var i = 0; i < text.Length - 1; i++)
        {
            var digit = text[i] - '0';
            if ((uint)digit > 9)
            {
                return null;
            }

            value = (value * 10) + digit;
        }

        double ms = text[^1] switch
        {
            'H' => value * 3_600_000.0,
            'M' => value * 60_000.0,
            'S' => value * 1_000.0,
            'm' => value,
            'u' => value / 1_000.0,
            'n' => value / 1_000_000.0,
            _ => -1,
        };
        return ms < 0 ? null : (int)Math.Clamp(Math.Ceiling(ms), 1, int.MaxValue);
    }
}
