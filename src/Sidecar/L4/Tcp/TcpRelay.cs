// The byte relay of the L4 TCP passthrough proxy: client socket <-> upstream socket, bytes unchanged.
using System.Buffers;
using System.Net.Sockets;

namespace Mesh.Sidecar.L4.Tcp;

/// <summary>
/// Copies bytes between an accepted client socket and a connected upstream socket until both sides
/// are done, passing half-closes and resets through.
/// </summary>
/// <remarks>
/// <para>Each direction is one loop with one pooled buffer of <see cref="RelayOptions.BufferSize"/>
/// bytes: it receives into the buffer, sends all of it, and only then receives again. A slow reader
/// therefore stalls the writer through TCP flow control instead of growing memory in the relay.</para>
/// <para>A FIN from one side becomes <c>Shutdown(Send)</c> towards the other, and the other direction
/// keeps flowing until it sees its own FIN. A reset (or any socket error) on one side resets the
/// other (linger 0, close) so the peer sees an RST rather than a clean end. An idle timeout or the
/// caller's cancellation closes both sockets (FIN).</para>
/// <para>The relay takes over both sockets: they are disposed when <see cref="RunAsync"/> completes.</para>
/// </remarks>
internal static class TcpRelay
{
    /// <summary>
    /// Relays between <paramref name="client"/> and <paramref name="upstream"/>, sending
    /// <paramref name="clientPrefix"/> (bytes already read from the client, e.g. a peeked ClientHello)
    /// upstream first, unchanged. Never throws for socket errors: they are reported in the outcome.
    /// </summary>
    public static Task<RelayResult> RunAsync(Socket client, Socket upstream, ReadOnlyMemory<byte> clientPrefix, RelayOptions options, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(client);
        ArgumentNullException.ThrowIfNull(upstream);
        ArgumentNullException.ThrowIfNull(options);
        return RunCoreAsync(client, upstream, clientPrefix, options, cancellationToken);
    }

    private static async Task<RelayResult> RunCoreAsync(Socket client, Socket upstream, ReadOnlyMemory<byte> clientPrefix, RelayOptions options, CancellationToken cancellationToken)
    {
        var relay = new Relay(client, upstream, options.IdleTimeout);
        Task<long>? toUpstream = null;
        Task<long>? toClient = null;
        try
        {
            // Runs inline if the token is already cancelled: both sockets close and the loops end at once.
            using var registration = cancellationToken.UnsafeRegister(static state => ((Relay)state!).Terminate(RelayOutcome.Cancelled), relay);
            relay.StartIdleTimer();
            toUpstream = CopyAsync(relay, client, upstream, clientPrefix, options, RelayOutcome.ClientReset, RelayOutcome.UpstreamReset);
            toClient = CopyAsync(relay, upstream, client, ReadOnlyMemory<byte>.Empty, options, RelayOutcome.UpstreamReset, RelayOutcome.ClientReset);
            await Task.WhenAll(toUpstream, toClient).ConfigureAwait(false);
        }
        finally
        {
            relay.Finish();
        }

        return new RelayResult(toUpstream.Result, toClient.Result, relay.Outcome);
    }

    // One direction. Never more than one buffer of bytes in the relay: the next receive is issued
    // only after the previous send completed. No allocation per chunk: Memory-based socket calls
    // return ValueTasks backed by the socket's cached awaitable event args.
    private static async Task<long> CopyAsync(Relay relay, Socket source, Socket destination, ReadOnlyMemory<byte> prefix, RelayOptions options, RelayOutcome sourceFailed, RelayOutcome destinationFailed)
    {
        long total = 0;
        var bufferSize = options.BufferSize;
        var rented = ArrayPool<byte>.Shared.Rent(bufferSize);
        var buffer = rented.AsMemory(0, bufferSize);
        var spliceAfter = options.ZeroCopy && LinuxSplice.IsSupported ? options.ZeroCopyThreshold : int.MaxValue;
        LinuxSplice? splice = null;
        var failing = destinationFailed;
        try
        {
            if (!prefix.IsEmpty)
            {
                await SendAllAsync(destination, prefix).ConfigureAwait(false);
                total = prefix.Length;
                relay.Touch();
            }

            // Copying: one receive, one send per chunk.
            var read = 0;
            while (read < spliceAfter || (splice = LinuxSplice.TryCreate()) is null)
            {
                if (read >= spliceAfter)
                {
                    spliceAfter = int.MaxValue;
                }

                failing = sourceFailed;
                read = await source.ReceiveAsync(buffer, SocketFlags.None).ConfigureAwait(false);
                failing = destinationFailed;
                if (read == 0)
                {
                    // FIN (or our own shutdown while terminating). Pass the half-close on and end only
                    // this direction: the other one keeps flowing until it sees its own FIN.
                    EndOfStream(relay, destination);
                    return total;
                }

                relay.Touch();
                await SendAllAsync(destination, buffer[..read]).ConfigureAwait(false);
                total += read;
                relay.Touch();
            }

            // Splicing (a bulk stream): the bytes stay in the kernel, socket → pipe → socket.
            // splice(2) must never block the socket thread; .NET makes a descriptor non-blocking
            // only on its first async call, which these sockets may not have had yet.
            source.Blocking = false;
            destination.Blocking = false;
            while (true)
            {
                failing = sourceFailed;
                var moved = splice.FromSocket(source, RelayOptions.SpliceChunk);
                if (moved < 0)
                {
                    // Nothing to read: a zero-byte receive waits for data, FIN or reset without taking any.
                    await source.ReceiveAsync(Memory<byte>.Empty, SocketFlags.None).ConfigureAwait(false);
                    continue;
                }

                failing = destinationFailed;
                if (moved == 0)
                {
                    EndOfStream(relay, destination);
                    return total;
                }

                relay.Touch();
                var pending = moved;
                while (pending > 0)
                {
                    var sent = splice.ToSocket(destination, pending);
                    if (sent < 0)
                    {
                        // The destination is full. Sockets offer no wait-for-room without sending, so
                        // the pipe's bytes go through a buffer and SendAsync waits; one chunk at most.
                        var drain = ArrayPool<byte>.Shared.Rent(pending);
                        try
                        {
                            sent = splice.Drain(drain.AsSpan(0, pending));
                            await SendAllAsync(destination, drain.AsMemory(0, sent)).ConfigureAwait(false);
                        }
                        finally
                        {
                            ArrayPool<byte>.Shared.Return(drain);
                        }
                    }

                    pending -= sent;
                }

                total += moved;
                relay.Touch();
            }
        }
        catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
        {
            // A reset or error on the side being read or written (a no-op when the relay is already
            // ending and this is just its own close aborting the operation).
            relay.Terminate(failing);
            return total;
        }
        catch
        {
            // Unexpected: tear the relay down so the other loop ends too, then surface it.
            relay.Terminate(failing);
            throw;
        }
        finally
        {
            splice?.Dispose();
            ArrayPool<byte>.Shared.Return(rented);
        }
    }

    private static void EndOfStream(Relay relay, Socket destination)
    {
        if (!relay.IsTerminated)
        {
            destination.Shutdown(SocketShutdown.Send);
        }
    }

    private static async ValueTask SendAllAsync(Socket destination, ReadOnlyMemory<byte> data)
    {
        while (!data.IsEmpty)
        {
            var sent = await destination.SendAsync(data, SocketFlags.None).ConfigureAwait(false);
            data = data[sent..];
        }
    }

    /// <summary>Closes with an RST rather than a FIN.</summary>
    private static void Reset(Socket socket)
    {
        try
        {
            socket.LingerState = new LingerOption(true, 0);
        }
        catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
        {
        }

        socket.Dispose();
    }

    /// <summary>Closes with a FIN, waking any pending receive (it reads 0) or send (it fails).</summary>
    private static void Close(Socket socket)
    {
        try
        {
            socket.Shutdown(SocketShutdown.Both);
        }
        catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
        {
        }

        socket.Dispose();
    }

    /// <summary>The shared state of one relay: its sockets, the idle timer and how it ended.</summary>
    private sealed class Relay
    {
        private const int Running = -1;

        // Timer.Change accepts at most 0xFFFFFFFE milliseconds; a longer wait just re-arms.
        private const long MaxTimerDueMs = 0xFFFFFFFEL;

        private readonly Socket _client;
        private readonly Socket _upstream;
        private readonly long _idleMs;
        private readonly Timer? _idleTimer;
        private long _lastActivity;
        private int _outcome = Running;

        public Relay(Socket client, Socket upstream, TimeSpan idleTimeout)
        {
            _client = client;
            _upstream = upstream;
            _lastActivity = Environment.TickCount64;
            if (idleTimeout != Timeout.InfiniteTimeSpan)
            {
                _idleMs = Math.Max(1, (long)Math.Ceiling(idleTimeout.TotalMilliseconds));
                _idleTimer = new Timer(static state => ((Relay)state!).OnIdleTimer(), this, Timeout.Infinite, Timeout.Infinite);
            }
        }

        public bool IsTerminated => Volatile.Read(ref _outcome) != Running;

        public RelayOutcome Outcome => (RelayOutcome)Volatile.Read(ref _outcome);

        public void StartIdleTimer() => _idleTimer?.Change(Math.Min(_idleMs, MaxTimerDueMs), Timeout.Infinite);

        /// <summary>Bytes moved: the idle clock restarts. A store of a coarse tick count, no timer call.</summary>
        public void Touch() => Volatile.Write(ref _lastActivity, Environment.TickCount64);

        /// <summary>Ends the relay once, with the first outcome reported; later calls do nothing.</summary>
        public void Terminate(RelayOutcome outcome)
        {
            if (Interlocked.CompareExchange(ref _outcome, (int)outcome, Running) != Running)
            {
                return;
            }

            if (outcome is RelayOutcome.ClientReset or RelayOutcome.UpstreamReset)
            {
                Reset(_client);
                Reset(_upstream);
            }
            else
            {
                Close(_client);
                Close(_upstream);
            }
        }

        /// <summary>Both loops ended: stop the timer, settle the outcome and dispose both sockets.</summary>
        public void Finish()
        {
            _idleTimer?.Dispose();
            Interlocked.CompareExchange(ref _outcome, (int)RelayOutcome.Completed, Running);
            _client.Dispose();
            _upstream.Dispose();
        }

        // Fires at most once per idle period: re-arms for the rest of the period when bytes moved since.
        private void OnIdleTimer()
        {
            if (IsTerminated)
            {
                return;
            }

            var idleFor = Environment.TickCount64 - Volatile.Read(ref _lastActivity);
            if (idleFor >= _idleMs)
            {
                Terminate(RelayOutcome.IdleTimeout);
                return;
            }

            try
            {
                _idleTimer!.Change(Math.Clamp(_idleMs - idleFor, 1, MaxTimerDueMs), Timeout.Infinite);
            }
            catch (ObjectDisposedException)
            {
            }
        }
    }
}
