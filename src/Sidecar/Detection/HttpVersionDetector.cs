// Tells HTTP/2 prior knowledge from HTTP/1.x by the first bytes, as Envoy's codec auto-detection does.
using System.Buffers;
using System.IO.Pipelines;
using Mesh.Sidecar.Listeners;

namespace Mesh.Sidecar.Detection;

/// <summary>Detects the HTTP version a plaintext client speaks without consuming any bytes.</summary>
internal static class HttpVersionDetector
{
    /// <summary>The HTTP/2 client connection preface (RFC 9113 §3.4).</summary>
    internal static ReadOnlySpan<byte> Http2Preface => "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"u8;

    /// <summary>
    /// Classifies a prefix of the stream: HTTP/2 when it is the whole preface, HTTP/1 as soon as it
    /// differs from the preface, null while it is a proper prefix of the preface.
    /// </summary>
    public static HttpPipeline? Classify(in ReadOnlySequence<byte> buffer)
    {
        var preface = Http2Preface;
        Span<byte> head = stackalloc byte[24];
        var length = (int)Math.Min(buffer.Length, preface.Length);
        buffer.Slice(0, length).CopyTo(head);
        if (!preface[..length].SequenceEqual(head[..length]))
        {
            return HttpPipeline.Http1;
        }

        return length == preface.Length ? HttpPipeline.Http2 : null;
    }

    /// <summary>
    /// Waits until the version is known and leaves every byte in the pipe for the chosen pipeline.
    /// A client that closes, or stays silent until <paramref name="timeout"/>, is given to HTTP/1,
    /// whose own header timeout applies.
    /// </summary>
    public static async ValueTask<HttpPipeline> DetectAsync(PipeReader input, TimeSpan timeout, CancellationToken cancellationToken)
    {
        var peek = await FirstBytes.PeekAsync(input, timeout, ClassifyBuffer, cancellationToken).ConfigureAwait(false);
        return peek.Verdict ?? HttpPipeline.Http1;
    }

    private static HttpPipeline? ClassifyBuffer(ReadOnlySequence<byte> buffer) => Classify(buffer);
}
