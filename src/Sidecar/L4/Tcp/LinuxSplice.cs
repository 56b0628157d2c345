// splice(2) through a pipe: Linux moves relayed bytes socket → pipe → socket without copying them to user space.
using System.Net.Sockets;
using System.Runtime.InteropServices;

namespace Mesh.Sidecar.L4.Tcp;

/// <summary>
/// One kernel pipe per relay direction and the non-blocking splice calls around it. Every call
/// holds a reference on the socket's handle, so a concurrent close (reset, idle timeout) cannot
/// free the descriptor number mid-call and have it reused by another connection.
/// </summary>
internal sealed partial class LinuxSplice : IDisposable
{
    private const int EAGAIN = 11;
    private const int EINTR = 4;
    private const int ONonBlock = 0x800;
    private const int OCloExec = 0x80000;
    private const uint SpliceMove = 1;
    private const uint SpliceNonBlock = 2;

    private readonly int _read;
    private readonly int _write;
    private int _disposed;

    private LinuxSplice(int read, int write)
    {
        _read = read;
        _write = write;
    }

    /// <summary>Whether this platform has splice(2).</summary>
    public static bool IsSupported => OperatingSystem.IsLinux();

    /// <summary>A pipe for one direction, or <c>null</c> when the kernel refuses one (then relay by copying).</summary>
    public static unsafe LinuxSplice? TryCreate()
    {
        if (!IsSupported)
        {
            return null;
        }

        var fds = stackalloc int[2];
        return Pipe2(fds, ONonBlock | OCloExec) == 0 ? new LinuxSplice(fds[0], fds[1]) : null;
    }

    /// <summary>
    /// Moves up to <paramref name="max"/> bytes from <paramref name="source"/> into the pipe:
    /// the count, 0 at end of stream, or -1 when the socket has nothing to read now.
    /// </summary>
    public int FromSocket(Socket source, int max) => Move(source.SafeHandle, fromSocket: true, max);

    /// <summary>
    /// Moves up to <paramref name="max"/> bytes from the pipe into <paramref name="destination"/>:
    /// the count, or -1 when the socket's send buffer is full.
    /// </summary>
    public int ToSocket(Socket destination, int max) => Move(destination.SafeHandle, fromSocket: false, max);

    /// <summary>Reads bytes already in the pipe into <paramref name="buffer"/> (the slow path when the destination is full).</summary>
    public unsafe int Drain(Span<byte> buffer)
    {
        fixed (byte* p = buffer)
        {
            while (true)
            {
                var n = Read(_read, p, (nuint)buffer.Length);
                if (n >= 0)
                {
                    return (int)n;
                }

                var errno = Marshal.GetLastPInvokeError();
                if (errno != EINTR)
                {
                    throw Failure(errno);
                }
            }
        }
    }

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 0)
        {
            _ = Close(_read);
            _ = Close(_write);
        }
    }

    private unsafe int Move(SafeHandle socket, bool fromSocket, int max)
    {
        var added = false;
        try
        {
            // Throws ObjectDisposedException once the socket is closed, which the relay treats as its end.
            socket.DangerousAddRef(ref added);
            var fd = (int)socket.DangerousGetHandle();
            while (true)
            {
                var n = fromSocket
                    ? Splice(fd, null, _write, null, (nuint)max, SpliceMove | SpliceNonBlock)
                    : Splice(_read, null, fd, null, (nuint)max, SpliceMove | SpliceNonBlock);
                if (n >= 0)
                {
                    return (int)n;
                }

                var errno = Marshal.GetLastPInvokeError();
                if (errno == EAGAIN)
                {
                    return -1;
                }

                if (errno != EINTR)
                {
                    throw Failure(errno);
                }
            }
        }
        finally
        {
            if (added)
            {
                socket.DangerousRelease();
            }
        }
    }

    // SocketException's int constructor takes SocketError values, not errno.
    private static SocketException Failure(int errno) => new((int)(errno switch
    {
        104 => SocketError.ConnectionReset,
        32 => SocketError.Shutdown,
        110 => SocketError.TimedOut,
        _ => SocketError.SocketError,
    }));

    [LibraryImport("libc", EntryPoint = "pipe2", SetLastError = true)]
    private static unsafe partial int Pipe2(int* fds, int flags);

    [LibraryImport("libc", EntryPoint = "splice", SetLastError = true)]
    private static unsafe partial nint Splice(int fdIn, long* offIn, int fdOut, long* offOut, nuint length, uint flags);

    [LibraryImport("libc", EntryPoint = "read", SetLastError = true)]
    private static unsafe partial nint Read(int fd, byte* buffer, nuint count);

    [LibraryImport("libc", EntryPoint = "close", SetLastError = true)]
    private static partial int Close(int fd);
}
