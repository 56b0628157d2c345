// Options and result of the L4 TCP byte relay (TcpRelay).
namespace Mesh.Sidecar.L4.Tcp;

/// <summary>Settings of one <see cref="TcpRelay"/> run.</summary>
internal sealed record RelayOptions
{
    /// <summary>
    /// The default copy buffer: 16 KiB per direction, HAProxy's default. Each open connection holds
    /// two, so this is what thousands of idle keep-alive connections cost; bulk streams switch to
    /// splice(2) after one full buffer and no longer use it.
    /// </summary>
    public const int DefaultBufferSize = 16 * 1024;

    /// <summary>Bytes one splice(2) call may move: the default pipe capacity (64 KiB).</summary>
    public const int SpliceChunk = 64 * 1024;

    /// <summary>
    /// How long the relay may go without moving a byte either way before it closes both sockets
    /// (<see cref="RelayOutcome.IdleTimeout"/>). <see cref="Timeout.InfiniteTimeSpan"/> disables it.
    /// Defaults to one hour, the listener default.
    /// </summary>
    public TimeSpan IdleTimeout
    {
        get;
        init => field = value == Timeout.InfiniteTimeSpan || value > TimeSpan.Zero
            ? value
            : throw new ArgumentOutOfRangeException(nameof(IdleTimeout), value, "The idle timeout must be positive or Timeout.InfiniteTimeSpan.");
    } = TimeSpan.FromHours(1);

    /// <summary>The size of the one buffer each direction copies through (default 16 KiB).</summary>
    public int BufferSize
    {
        get;
        init => field = value > 0
            ? value
            : throw new ArgumentOutOfRangeException(nameof(BufferSize), value, "The buffer size must be positive.");
    } = DefaultBufferSize;

    /// <summary>
    /// Move bytes with splice(2) through a kernel pipe where the platform has it (Linux), so they
    /// never reach user space; otherwise, or with <c>false</c>, copy through the buffer.
    /// </summary>
    public bool ZeroCopy { get; init; } = true;

    /// <summary>
    /// With <see cref="ZeroCopy"/>, a direction switches from copying to splice(2) after one read
    /// of at least this many bytes (default: a full buffer, the mark of a bulk stream). Small
    /// request/response exchanges stay on the copying path, which needs fewer system calls per
    /// message; 0 splices from the first byte.
    /// </summary>
    public int ZeroCopyThreshold
    {
        get => field < 0 ? BufferSize : field;
        init => field = value >= 0
            ? value
            : throw new ArgumentOutOfRangeException(nameof(ZeroCopyThreshold), value, "The threshold must not be negative.");
    } = -1;
}

/// <summary>How a relay ended.</summary>
internal enum RelayOutcome
{
    /// <summary>Both sides half-closed (FIN) normally and every byte was passed on.</summary>
    Completed,

    /// <summary>The client reset (or failed); the upstream was reset in turn.</summary>
    ClientReset,

    /// <summary>The upstream reset (or failed); the client was reset in turn.</summary>
    UpstreamReset,

    /// <summary>No byte moved either way for the idle timeout; both sockets were closed.</summary>
    IdleTimeout,

    /// <summary>The caller's token was cancelled; both sockets were closed.</summary>
    Cancelled,
}

/// <summary>What a relay moved and how it ended.</summary>
/// <param name="BytesFromClient">Bytes passed from the client to the upstream, the client prefix included.</param>
/// <param name="BytesFromUpstream">Bytes passed from the upstream to the client.</param>
/// <param name="Outcome">How the relay ended.</param>
internal readonly record struct RelayResult(long BytesFromClient, long BytesFromUpstream, RelayOutcome Outcome);
