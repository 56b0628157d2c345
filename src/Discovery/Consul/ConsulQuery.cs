// Blocking-query parameters and results, and the index rules from Consul's blocking-query docs.
namespace Mesh.Discovery.Consul;

/// <summary>Parameters of a blocking read.</summary>
/// <param name="Index">The <c>X-Consul-Index</c> of the previous answer; 0 reads at once without blocking.</param>
/// <param name="Wait">How long the agent may hold the request; the client's default when null.</param>
public readonly record struct QueryOptions(ulong Index, TimeSpan? Wait = null)
{
    /// <summary>A read that does not block.</summary>
    public static QueryOptions NonBlocking => default;
}

/// <summary>An answer of a blocking endpoint.</summary>
/// <param name="Value">The body.</param>
/// <param name="Index">The raw <c>X-Consul-Index</c> (0 when the header was missing).</param>
/// <param name="KnownLeader"><c>X-Consul-KnownLeader</c>; true when the header was missing.</param>
public sealed record QueryResult<T>(T Value, ulong Index, bool KnownLeader);

/// <summary>The index rules of <c>features/blocking.mdx</c>.</summary>
public static class BlockingIndex
{
    /// <summary>
    /// The index to send with the next query after an answer carrying <paramref name="returned"/>
    /// to a query sent with <paramref name="previous"/>. An index of 0 is a Consul bug and counts as 1
    /// (always safe); an index that went backwards resets to 0, so the next read is a full one that
    /// restarts the loop; otherwise the returned index goes back as it is.
    /// </summary>
    public static ulong Next(ulong previous, ulong returned)
    {
        returned = Math.Max(returned, 1);
        return returned < previous ? 0 : returned;
    }
}
