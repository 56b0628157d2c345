// Relays an `auto` listener's connection (Kestrel transport pipes) to an upstream socket after detection.
using System.Buffers;
using System.IO.Pipelines;
using System.Net.Sockets;
using Microsoft.AspNetCore.Connections;

namespace Mesh.Sidecar.L4;

/// <summary>
/// The pipe-side twin of the socket relay. Detection left the client's first bytes in the pipe; the
/// first read cancels the pending wait so those bytes go upstream even if the client says nothing more.
/// Half-closes pass through in both directions; a reset on one side resets the other.
/// </summary>
internal static class PipeRelay
{
    public static async Task<(long FromClient, long FromUpstream)> RunAsync(ConnectionContext client, Socket upstream, TimeSpan idleTimeout, CancellationToken cancellationToken)
    {
        using var idle = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        if (idleTimeout > TimeSpan.Zero)
        {
            idle.CancelAfter(idleTimeout);
        }

        var toUpstream = ClientToUpstreamAsync(client.Transport.Input, upstream, idle, idleTimeout);
        var toClient = UpstreamToClientAsync(upstream, client.Transport.Output, idle, idleTimeout);
        var first = await Task.WhenAny(toUpstream, toClient).ConfigureAwait(false);
        if (first.Result.Reset || idle.IsCancellationRequested)
        {
            // A reset (or the idle timer) ends both directions at once.
            Reset(upstream);
            client.Abort();
            await idle.CancelAsync().ConfigureAwait(false);
        }

        var results = await Task.WhenAll(toUpstream, toClient).ConfigureAwait(false);
        if (results[0].Reset || results[1].Reset)
        {
            Reset(upstream);
            client.Abort();
        }

        upstream.Dispose();
        return (results[0].Bytes, results[1].Bytes);
    }

    private static async Task<(long Bytes, bool Reset)> ClientToUpstreamAsync(PipeReader input, Socket upstream, CancellationTokenSource idle, TimeSpan idleTimeout)
    {
        long total = 0;
        input.CancelPendingRead();
        try
        {
            while (true)
            {
                var result = await input.ReadAsync(idle.Token).ConfigureAwait(false);
                var buffer = result.Buffer;
                foreach (var segment in buffer)
                {
                    var sent = 0;
                    while (sent < segment.Length)
                    {
                        sent += await upstream.SendAsync(segment[sent..], SocketFlags.None, idle.Token).ConfigureAwait(false);
                    }
                }

                total += buffer.Length;
                input.AdvanceTo(buffer.End);
                if (!buffer.IsEmpty && idleTimeout > TimeSpan.Zero)
                {
                    idle.CancelAfter(idleTimeout);
                }

                if (result.IsCompleted)
                {
                    // The client half-closed: pass the FIN on, keep the other direction flowing.
                    upstream.Shutdown(SocketShutdown.Send);
                    return (total, false);
                }
            }
        }
        catch (OperationCanceledException)
        {
            return (total, false);
        }
        catch (Exception ex) when (ex is ConnectionResetException or SocketException or IOException or ConnectionAbortedException)
        {
            return (total, true);
        }
        finally
        {
            await input.CompleteAsync().ConfigureAwait(false);
        }
    }

    private static async Task<(long Bytes, bool Reset)> UpstreamToClientAsync(Socket upstream, PipeWriter output, CancellationTokenSource idle, TimeSpan idleTimeout)
    {
        long total = 0;
        try
        {
            while (true)
            {
                var memory = output.GetMemory(16 * 1024);
                var read = await upstream.ReceiveAsync(memory, SocketFlags.None, idle.Token).ConfigureAwait(false);
                if (read == 0)
                {
                    // The upstream half-closed: completing the pipe makes the transport send a FIN.
                    await output.CompleteAsync().ConfigureAwait(false);
                    return (total, false);
                }

                output.Advance(read);
                total += read;
                var flush = await output.FlushAsync(idle.Token).ConfigureAwait(false);
                if (idleTimeout > TimeSpan.Zero)
                {
                    idle.CancelAfter(idleTimeout);
                }

                if (flush.IsCompleted)
                {
                    return (total, false);
                }
            }
        }
        catch (OperationCanceledException)
        {
            return (total, false);
        }
        catch (SocketException ex) when (ex.SocketErrorCode is SocketError.ConnectionReset or SocketError.ConnectionAborted)
        {
            return (total, true);
        }
        catch (Exception ex) when (ex is SocketException or IOException or ObjectDisposedException or InvalidOperationException)
        {
            return (total, true);
        }
    }

    /// <summary>Closes with an RST rather than a FIN.</summary>
    public static void Reset(Socket socket)
    {
        try
        {
            socket.LingerState = new LingerOption(true, 0);
            socket.Close();
        }
        catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
        {
        }
    }
}
