// Waits for a connection's first bytes until a classifier decides, without consuming them.
using System.Buffers;
using System.IO.Pipelines;

namespace Mesh.Sidecar.Detection;

/// <summary>The shared peek loop of every protocol detector.</summary>
internal static class FirstBytes
{
    /// <summary>What a peek found.</summary>
    /// <param name="Verdict">The classifier's answer; null when the client closed or stayed silent first.</param>
    /// <param name="TimedOut">The timeout passed before a verdict.</param>
    /// <param name="SawBytes">Any byte arrived.</param>
    internal readonly record struct Peek<T>(T? Verdict, bool TimedOut, bool SawBytes)
        where T : struct;

    /// <summary>
    /// Reads until <paramref name="classify"/> returns a verdict, the client closes, or
    /// <paramref name="timeout"/> passes, and leaves every byte in the pipe for whoever reads next.
    /// </summary>
    /// <remarks>
    /// A pipe only wakes a reader for bytes nobody has examined, so the bytes of the deciding read
    /// are left unexamined: the next reader's first read returns at once. Earlier reads (when the
    /// first bytes were too few to decide) must be marked examined to wait for more.
    /// </remarks>
    public static async ValueTask<Peek<T>> PeekAsync<T>(PipeReader input, TimeSpan timeout, Func<ReadOnlySequence<byte>, T?> classify, CancellationToken cancellationToken)
        where T : struct
    {
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        deadline.CancelAfter(timeout);
        SequencePosition? examined = null;
        while (true)
        {
            ReadResult result;
            try
            {
                result = await input.ReadAsync(deadline.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
            {
                return new Peek<T>(null, TimedOut: true, SawBytes: examined is not null);
            }

            var buffer = result.Buffer;
            var verdict = classify(buffer);
            if (verdict is not null || result.IsCompleted || result.IsCanceled)
            {
                input.AdvanceTo(buffer.Start, examined ?? buffer.Start);
                return new Peek<T>(verdict, TimedOut: false, SawBytes: !buffer.IsEmpty);
            }

            input.AdvanceTo(buffer.Start, buffer.End);
            examined = buffer.End;
        }
    }
}
