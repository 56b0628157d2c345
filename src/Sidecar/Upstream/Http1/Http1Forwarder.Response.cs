// Mesh's HTTP/1.1 client, response side: the head found, the status line and header fields checked, the body's framing decided.
using System.Text;
using Microsoft.Extensions.Primitives;

namespace Mesh.Sidecar.Upstream.Http1;

/// <summary>
/// Response parsing is strict where HTTP/1.1 parsers disagree, since a proxy that reads a
/// message differently from its peers is how responses get split and queues poisoned
/// (RFC 9112 section 11): each rule is in docs/configuration.md, with where it is stricter than YARP.
/// </summary>
internal sealed partial class Http1Forwarder
{
    private enum HopHeader
    {
        None,
        ContentLength,
        TransferEncoding,
        Connection,
        Other,
    }

    /// <summary>
    /// The length of the response head at the start of <paramref name="unread"/>, through the CRLF
    /// of its empty line, or -1 when more bytes are needed. <paramref name="scanned"/> carries how
    /// far whole lines were already checked, so a head that trickles in is scanned once. A line
    /// ended by a bare LF is refused at once rather than waited on.
    /// </summary>
    internal static int FindHeadEnd(ReadOnlySpan<byte> unread, ref int scanned)
    {
        while (true)
        {
            var lf = unread[scanned..].IndexOf((byte)'\n');
            if (lf < 0)
            {
                return -1;
            }

            lf += scanned;
            if (lf == 0 || unread[lf - 1] != (byte)'\r')
            {
                throw new Http1UpstreamException("a response head line ended by a bare LF");
            }

            if (lf - 1 == scanned)
            {
                return lf + 1;
            }

            scanned = lf + 1;
        }
    }

    /// <summary>
    /// HTTP-version SP 3DIGIT [SP reason-phrase] (RFC 9112 section 4): exactly three digits from
    /// 100 to 999, then the end of the line or a space, as HttpClient reads it. Only HTTP/1.0 and
    /// HTTP/1.1 are taken.
    /// </summary>
    internal static int ParseStatus(ReadOnlySpan<byte> head, out bool http10)
    {
        var end = head.IndexOf("\r\n"u8);
        var line = end < 0 ? [] : head[..end];
        if (line.Length < 12 || !line.StartsWith("HTTP/1."u8) || line[7] is not ((byte)'0' or (byte)'1') || line[8] != (byte)' '
            || !char.IsAsciiDigit((char)line[9]) || !char.IsAsciiDigit((char)line[10]) || !char.IsAsciiDigit((char)line[11]) || line[9] == (byte)'0'
            || (line.Length > 12 && line[12] != (byte)' ') || line.IndexOfAny((byte)'\r', (byte)'\0') >= 0)
        {
            throw new Http1UpstreamException("a malformed status line");
        }

        http10 = line[7] == (byte)'0';
        return ((line[9] - '0') * 100) + ((line[10] - '0') * 10) + (line[11] - '0');
    }

    /// <summary>
    /// Copies the end-to-end headers of <paramref name="head"/> (status line and field lines, each
    /// ended by CRLF, without the empty line) onto the response and returns how its body is
    /// framed. <paramref name="reusable"/> is false when the connection must close after this
    /// response whatever happens: the peer said so, HTTP/1.0, a body read to the close, or both
    /// <c>Content-Length</c> and <c>Transfer-Encoding</c> (RFC 9112 section 6.3).
    /// </summary>
    internal static Framing CopyHeaders(Http1Connection connection, ReadOnlySpan<byte> head, HttpResponse response, int status, bool isHead, bool http10, out long length, out bool reusable)
    {
        response.StatusCode = status;
        var headers = response.Headers;
        length = -1;
        var close = false;
        var codings = 0;
        var chunked = false;
        Dictionary<string, List<string>>? repeated = null;
        var rest = head[(head.IndexOf("\r\n"u8) + 2)..];
        while (!rest.IsEmpty)
        {
            var end = rest.IndexOf("\r\n"u8);
            var line = rest[..end];
            rest = rest[(end + 2)..];
            var colon = line.IndexOf((byte)':');
            if (colon <= 0 || !HttpSyntax.IsToken(line[..colon]))
            {
                // No name, a space before the colon, an obsolete folded line (RFC 9112 section 5.2 lets a proxy refuse it), or a name that is no token.
                throw new Http1UpstreamException("a malformed response header line");
            }

            var name = line[..colon];
            var value = line[(colon + 1)..].Trim(" \t"u8);
            if (value.IndexOfAny((byte)'\r', (byte)'\0') >= 0)
            {
                throw new Http1UpstreamException("a response header value holding CR or NUL");
            }

            switch (Hop(name))
            {
                case HopHeader.ContentLength:
                    // One field, digits only: a second one, even with the same value, is refused as HttpClient refuses it.
                    if (length >= 0 || !TryParseLength(value, out var parsed))
                    {
                        throw new Http1UpstreamException("an invalid or repeated Content-Length");
                    }

                    length = parsed;
                    continue;
                case HopHeader.TransferEncoding:
                    // One list over every Transfer-Encoding field; chunked may come only last, and once.
                    foreach (var range in value.Split((byte)','))
                    {
                        var coding = value[range].Trim(" \t"u8);
                        if (coding.IsEmpty)
                        {
                            continue;
                        }

                        if (chunked)
                        {
                            throw new Http1UpstreamException("a transfer coding after chunked");
                        }

                        chunked = Ascii.EqualsIgnoreCase(coding, "chunked"u8);
                        codings++;
                    }

                    continue;
                case HopHeader.Connection:
                    close |= ContainsToken(value, "close"u8);
                    continue;
                case HopHeader.Other:
                    continue;
            }

            var (key, text) = connection.HeaderStrings(name, value);
            if (headers.ContainsKey(key))
            {
                // Repeats gather in a list and land once: appending one at a time copies them all each time.
                repeated ??= new Dictionary<string, List<string>>(StringComparer.OrdinalIgnoreCase);
                if (!repeated.TryGetValue(key, out var values))
                {
                    repeated[key] = values = [];
                }

                values.Add(text);
            }
            else
            {
                headers[key] = text;
            }
        }

        if (repeated is not null)
        {
            foreach (var (key, values) in repeated)
            {
                var first = headers[key];
                var all = new string[first.Count + values.Count];
                first.ToArray().CopyTo(all, 0);
                values.CopyTo(all, first.Count);
                headers[key] = new StringValues(all);
            }
        }

        if (codings > 0 && http10)
        {
            throw new Http1UpstreamException("Transfer-Encoding in an HTTP/1.0 response");
        }

        if (codings > 0 && !chunked && length >= 0)
        {
            throw new Http1UpstreamException("Content-Length with a Transfer-Encoding that does not end in chunked");
        }

        reusable = !close && !http10 && !(codings > 0 && length >= 0);
        if (isHead || status is StatusCodes.Status204NoContent or StatusCodes.Status304NotModified)
        {
            if (length >= 0 && status != StatusCodes.Status204NoContent)
            {
                // HEAD and 304 describe the body they would have had.
                headers.ContentLength = length;
            }

            return Framing.None;
        }

        if (codings > 0)
        {
            // Transfer-Encoding overrides Content-Length; a final coding other than chunked runs to the close.
            reusable &= chunked;
            return chunked ? Framing.Chunked : Framing.UntilClose;
        }

        if (length < 0)
        {
            reusable = false;
            return Framing.UntilClose;
        }

        response.ContentLength = length;
        return length == 0 ? Framing.None : Framing.Length;
    }

    /// <summary>Content-Length = 1*DIGIT (RFC 9110 section 8.6): no sign, no space, no list.</summary>
    private static bool TryParseLength(ReadOnlySpan<byte> value, out long length)
    {
        length = 0;
        if (value.IsEmpty || value.Length > 18)
        {
            return false;
        }

        foreach (var digit in value)
        {
            if (!char.IsAsciiDigit((char)digit))
            {
                return false;
            }

            length = (length * 10) + (digit - '0');
        }

        return true;
    }

    /// <summary>Response headers that describe this hop only (RFC 9110 section 7.6.1) and are not copied.</summary>
    private static HopHeader Hop(ReadOnlySpan<byte> name) => name.Length switch
    {
        2 when Ascii.EqualsIgnoreCase(name, "TE"u8) => HopHeader.Other,
        7 when Ascii.EqualsIgnoreCase(name, "Upgrade"u8) || Ascii.EqualsIgnoreCase(name, "Trailer"u8) => HopHeader.Other,
        10 when Ascii.EqualsIgnoreCase(name, "Connection"u8) => HopHeader.Connection,
        10 when Ascii.EqualsIgnoreCase(name, "Keep-Alive"u8) => HopHeader.Other,
        14 when Ascii.EqualsIgnoreCase(name, "Content-Length"u8) => HopHeader.ContentLength,
        16 when Ascii.EqualsIgnoreCase(name, "Proxy-Connection"u8) => HopHeader.Other,
        17 when Ascii.EqualsIgnoreCase(name, "Transfer-Encoding"u8) => HopHeader.TransferEncoding,
        _ => HopHeader.None,
    };

    private static bool ContainsToken(ReadOnlySpan<byte> value, ReadOnlySpan<byte> token)
    {
        foreach (var range in value.Split((byte)','))
        {
            if (Ascii.EqualsIgnoreCase(value[range].Trim(" \t"u8), token))
            {
                return true;
            }
        }

        return false;
    }
}
