// Ring-hash balancing: a key keeps its endpoint, and adding or removing one of N endpoints moves about 1/N of keys.
using Mesh.Sidecar.Endpoints;

namespace Mesh.Sidecar.LoadBalancing;

/// <summary>
/// Ketama-style ring. Each endpoint owns <see cref="PointsPerWeight"/> × weight points placed by
/// hashing its address, so placement depends only on the endpoint set and every sidecar agrees.
/// A request without a key gets a random endpoint, as Envoy does.
/// </summary>
internal sealed class ConsistentHashBalancer : LoadBalancer
{
    public const int PointsPerWeight = 160;
    private const int MaxPoints = 1 << 20;

    private readonly ulong[] _points;
    private readonly int[] _owners;
    private readonly WeightedPicker _fallback;

    public ConsistentHashBalancer(EndpointState[] endpoints)
        : base(endpoints)
    {
        _fallback = new WeightedPicker(endpoints);
        long total = 0;
        foreach (var endpoint in endpoints)
        {
            total += (long)endpoint.Weight * PointsPerWeight;
        }

        var scale = total > MaxPoints ? (double)MaxPoints / total : 1.0;
        var ring = new List<(ulong Point, int Owner)>((int)Math.Min(total, MaxPoints) + endpoints.Length);
        Span<char> label = stackalloc char[128];
        for (var owner = 0; owner < endpoints.Length; owner++)
        {
            var count = Math.Max(1, (int)(endpoints[owner].Weight * PointsPerWeight * scale));
            var authority = endpoints[owner].Authority;
            for (var replica = 0; replica < count; replica++)
            {
                ring.Add((StableHash.Of(Label(label, authority, replica)), owner));
            }
        }

        // Ties on a point are broken by authority so the ring does not depend on endpoint order.
        ring.Sort((a, b) => a.Point != b.Point
            ? a.Point.CompareTo(b.Point)
            : string.CompareOrdinal(endpoints[a.Owner].Authority, endpoints[b.Owner].Authority));
        _points = new ulong[ring.Count];
        _owners = new int[ring.Count];
        for (var i = 0; i < ring.Count; i++)
        {
            _points[i] = ring[i].Point;
            _owners[i] = ring[i].Owner;
        }
    }

    public override bool UsesHash => true;

    public override EndpointState? Pick(ulong? hash)
    {
        if (Endpoints.Length == 0)
        {
            return null;
        }

        if (hash is not { } key)
        {
            return _fallback.PickRandom();
        }

        var index = Array.BinarySearch(_points, key);
        if (index < 0)
        {
            index = ~index;
            if (index == _points.Length)
            {
                index = 0;
            }
        }

        return Endpoints[_owners[index]];
    }

    private static ReadOnlySpan<char> Label(Span<char> buffer, string authority, int replica)
    {
        if (authority.Length + 12 > buffer.Length)
        {
            return $"{authority}#{replica}";
        }

        authority.AsSpan().CopyTo(buffer);
        buffer[authority.Length] = '#';
        replica.TryFormat(buffer[(authority.Length + 1)..], out var written, provider: System.Globalization.CultureInfo.InvariantCulture);
        return buffer[..(authority.Length + 1 + written)];
    }
}
