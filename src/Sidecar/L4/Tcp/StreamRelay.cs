// The byte relay for TCP inside TLS: a client stream <-> an upstream stream, either of which may be an SslStream.
using System.Buffers;

namespace Mesh.Sidecar.L4.Tcp;

/// <summary>One side of a <see cref="StreamRelay"/>: the stream and how to half-close its sending direction.</summary>
/// <param name="Stream">The stream (a socket's NetworkStream or an SslStream over one).</param>
/// <param name="ShutdownWrite">Ends the bytes towards this side (TLS close_notify, or a TCP FIN).</param>
internal readonly record struct RelaySide(Stream Stream, Func<ValueTask> ShutdownWrite);

/// <summary>
/// Copies bytes both ways between two streams until both directions end. Used where one side is TLS
/// (mTLS termination or origination on <c>tcp</c> listeners), so the kernel-to-kernel paths of
/// <see cref="TcpRelay"/> do not apply. Same discipline: one pooled buffer per direction, the next
/// read only after the previous write (a slow reader holds back the sender), an end of stream on one
/// side half-closes the other, and any error or the idle timeout closes both.
/// </summary>
internal static class StreamRelay
{
    public static async Task<RelayResult> RunAsync(RelaySide client, RelaySide upstream, TimeSpan idleTimeout, CancellationToken cancellationToken)
    {
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var activity = new Activity();
        var idle = idleTimeout == Timeout.InfiniteTimeSpan ? Task.CompletedTask : WatchIdleAsync(activity, idleTimeout, stop);
        var toUpstream = CopyAsync(client.Stream, upstream, activity, fromClient: true, stop);
        var toClient = CopyAsync(upstream.Stream, client, activity, fromClient: false, stop);
        try
        {
            await Task.WhenAll(toUpstream, toClient).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is IOException or OperationCanceledException or ObjectDisposedException)
        {
        }
        finally
        {
            await stop.CancelAsync().ConfigureAwait(false);
            await client.Stream.DisposeAsync().ConfigureAwait(false);
            await upstream.Stream.DisposeAsync().ConfigureAwait(false);
            try
            {
                await idle.ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
            }
        }

        var outcome = activity.TimedOut ? RelayOutcome.IdleTimeout
            : cancellationToken.IsCancellationRequested ? RelayOutcome.Cancelled
            : toUpstream.IsFaulted || toUpstream.IsCanceled ? RelayOutcome.ClientReset
            : toClient.IsFaulted || toClient.IsCanceled ? RelayOutcome.UpstreamReset
            : RelayOutcome.Completed;
        return new RelayResult(activity.FromClient, activity.FromUpstream, outcome);
    }

    private static async Task CopyAsync(Stream source, RelaySide destination, Activity activity, bool fromClient, CancellationTokenSource stop)
    {
        var buffer = ArrayPool<byte>.Shared.Rent(RelayOptions.DefaultBufferSize);
        try
        {
            while (true)
            {
                var read = await source.ReadAsync(buffer, stop.Token).ConfigureAwait(false);
                if (read == 0)
                {
                    await destination.ShutdownWrite().ConfigureAwait(false);
                    return;
                }

                activity.Touch();
                await destination.Stream.WriteAsync(buffer.AsMemory(0, read), stop.Token).ConfigureAwait(false);
                await destination.Stream.FlushAsync(stop.Token).ConfigureAwait(false);
                activity.Moved(fromClient, read);
            }
        }
        catch
        {
            // One side failed: end both directions.
            await stop.CancelAsync().ConfigureAwait(false);
            throw;
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    private static async Task WatchIdleAsync(Activity activity, TimeSpan idleTimeout, CancellationTokenSource stop)
    {
        var period = TimeSpan.FromTicks(Math.Clamp(idleTimeout.Ticks / 4, TimeSpan.FromMilliseconds(50).Ticks, TimeSpan.FromSeconds(30).Ticks));
        using var timer = new PeriodicTimer(period);
        while (await timer.WaitForNextTickAsync(stop.Token).ConfigureAwait(false))
        {
            if (activity.IdleFor() >= idleTimeout)
            {
                activity.TimedOut = true;
                await stop.CancelAsync().ConfigureAwait(false);
                return;
            }
        }
    }

    // Last activity and byte counts, shared by both directions; counts survive a failed copy.
    private sealed class Activity
    {
        private long _lastTouch = Environment.TickCount64;
        private long _fromClient;
        private long _fromUpstream;

        public bool TimedOut { get; set; }

        public long FromClient => Interlocked.Read(ref _fromClient);

        public long FromUpstream => Interlocked.Read(ref _fromUpstream);

        public void Touch() => Volatile.Write(ref _lastTouch, Environment.TickCount64);

        public TimeSpan IdleFor() => TimeSpan.FromMilliseconds(Environment.TickCount64 - Volatile.Read(ref _lastTouch));

        public void Moved(bool fromClient, int bytes)
        {
            Touch();
            Interlocked.Add(ref fromClient ? ref _fromClient : ref _fromUpstream, bytes);
        }
    }
}
