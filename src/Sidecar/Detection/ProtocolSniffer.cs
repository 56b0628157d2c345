// Protocol detection for `auto` listeners: TLS, HTTP/2 preface, an HTTP/1 request line, or anything else.
using System.Buffers;
using System.IO.Pipelines;

namespace Mesh.Sidecar.Detection;

/// <summary>What the first bytes of a connection look like.</summary>
internal enum SniffedProtocol
{
    /// <summary>A TLS record (ClientHello): goes to the SNI route table.</summary>
    Tls,

    /// <summary>An HTTP/1.x request line: goes to the L7 pipeline.</summary>
    Http1,

    /// <summary>The HTTP/2 preface: goes to the L7 pipeline.</summary>
    Http2,

    /// <summary>Anything else (Postgres, MQTT, a custom protocol): goes to the TCP service.</summary>
    Opaque,

    /// <summary>The client sent nothing in time: a server-first protocol, sent to the TCP service.</summary>
    Silent,
}

/// <summary>Classifies a connection by its first bytes without consuming them.</summary>
internal static class ProtocolSniffer
{
    private const byte TlsHandshake = 0x16;
    private const int MaxMethodLength = 16;

    /// <summary>The protocol, or null while the bytes so far could still be more than one.</summary>
    public static SniffedProtocol? Classify(in ReadOnlySequence<byte> buffer)
    {
        if (buffer.IsEmpty)
        {
            return null;
        }

        Span<byte> head = stackalloc byte[24];
        var length = (int)Math.Min(buffer.Length, head.Length);
        buffer.Slice(0, length).CopyTo(head);
        head = head[..length];
        if (head[0] == TlsHandshake)
        {
            return SniffedProtocol.Tls;
        }

        var preface = HttpVersionDetector.Http2Preface;
        if (preface[..length].SequenceEqual(head))
        {
            return length == preface.Length ? SniffedProtocol.Http2 : null;
        }

        // An HTTP/1 request line starts with an upper-case method token and a space.
        for (var i = 0; i < head.Length && i <= MaxMethodLength; i++)
        {
            var c = head[i];
            if (c == (byte)' ')
            {
                return i >= 3 ? SniffedProtocol.Http1 : SniffedProtocol.Opaque;
            }

            if (c is < (byte)'A' or > (byte)'Z')
            {
                return SniffedProtocol.Opaque;
            }
        }

        return head.Length > MaxMethodLength ? SniffedProtocol.Opaque : null;
    }

    /// <summary>
    /// Waits for enough bytes to classify, leaving them all in the pipe for whoever handles the
    /// connection next. Silence until <paramref name="timeout"/> means a server-first protocol.
    /// </summary>
    public static async ValueTask<SniffedProtocol> DetectAsync(PipeReader input, TimeSpan timeout, CancellationToken cancellationToken)
    {
        var peek = await FirstBytes.PeekAsync(input, timeout, ClassifyBuffer, cancellationToken).ConfigureAwait(false);
        return peek.Verdict ?? (peek.TimedOut && !peek.SawBytes ? SniffedProtocol.Silent : SniffedProtocol.Opaque);
    }

    private static SniffedProtocol? ClassifyBuffer(ReadOnlySequence<byte> buffer) => Classify(buffer);
}
