// A hash that is the same in every process and on every machine, so sidecars agree on key placement.
using System.Net;
using System.Runtime.CompilerServices;

namespace Mesh.Sidecar.LoadBalancing;

/// <summary>FNV-1a 64 with a MurmurHash3 finaliser for good bit spread. Not randomised per process, unlike <see cref="HashCode"/>.</summary>
internal static class StableHash
{
    private const ulong Offset = 14695981039346656037UL;
    private const ulong Prime = 1099511628211UL;

    public static ulong Of(ReadOnlySpan<char> text)
    {
        var hash = Offset;
        foreach (var c in text)
        {
            hash = (hash ^ (byte)c) * Prime;
            hash = (hash ^ (byte)(c >> 8)) * Prime;
        }

        return Mix(hash);
    }

    public static ulong Of(ReadOnlySpan<byte> bytes)
    {
        var hash = Offset;
        foreach (var b in bytes)
        {
            hash = (hash ^ b) * Prime;
        }

        return Mix(hash);
    }

    public static ulong Of(IPAddress address)
    {
        Span<byte> bytes = stackalloc byte[16];
        // IPv4-mapped IPv6 addresses hash as the IPv4 address they carry.
        var plain = address.IsIPv4MappedToIPv6 ? address.MapToIPv4() : address;
        return plain.TryWriteBytes(bytes, out var written) ? Of(bytes[..written]) : 0;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong Mix(ulong k)
    {
        k ^= k >> 33;
        k *= 0xff51afd7ed558ccdUL;
        k ^= k >> 33;
        k *= 0xc4ceb9fe1a85ec53UL;
        k ^= k >> 33;
        return k;
    }
}
