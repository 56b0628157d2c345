// Mesh's HTTP/1.1 client, request side: the request line in origin-form and the header fields, each checked before it is written.
using System.Buffers;
using System.Buffers.Text;
using System.Text;
using Microsoft.Net.Http.Headers;

namespace Mesh.Sidecar.Upstream.Http1;

/// <summary>
/// The request head is built in the connection's write buffer and sent in one piece, so a
/// refusal part way through sends nothing.
/// </summary>
internal sealed partial class Http1Forwarder
{
    /// <summary>
    /// Writes the request line and headers; true in <paramref name="bodySent"/> when a small body
    /// went in too. Throws <see cref="Http1RequestRefusedException"/> for a method or header name
    /// that is not a token, or a value holding CR, LF or NUL (the client's or a route transform's).
    /// </summary>
    internal static int WriteHead(Http1Connection connection, HttpContext context, RouteTransformer transformer, string authority, out bool bodySent)
    {
        var request = context.Request;
        var method = request.Method;
        if (!HttpSyntax.IsToken(method))
        {
            throw new Http1RequestRefusedException("the method is not a token");
        }

        var length = 0;
        Append(connection, ref length, method);
        Append(connection, ref length, " ");

        // origin-form: the path escaped as a URI path, the query with what a query may not hold raw percent-encoded.
        var path = transformer.UpstreamPath(request);
        Append(connection, ref length, path.HasValue ? path.ToUriComponent() : "/");
        if (request.QueryString.HasValue)
        {
            Append(connection, ref length, HttpSyntax.OriginFormQuery(request.QueryString.Value!));
        }

        Append(connection, ref length, " HTTP/1.1\r\nHost: ");
        var host = request.Host.Value;
        host = string.IsNullOrEmpty(host) ? authority : host;
        if (!HttpSyntax.IsFieldValue(host))
        {
            throw new Http1RequestRefusedException("the Host holds a line break");
        }

        Append(connection, ref length, host);
        Append(connection, ref length, "\r\n");

        var changes = transformer.ChangesRequestHeaders;
        foreach (var (name, values) in request.Headers)
        {
            if (SkipRequestHeader(name) || (changes && transformer.DropsRequestHeader(name)))
            {
                continue;
            }

            foreach (var value in values)
            {
                AppendHeader(connection, ref length, name, value ?? "");
            }
        }

        if (changes)
        {
            foreach (var (name, value) in transformer.RequestSet)
            {
                AppendHeader(connection, ref length, name, value);
            }

            foreach (var (name, value) in transformer.RequestAdd)
            {
                AppendHeader(connection, ref length, name, value);
            }
        }

        var contentLength = request.ContentLength;
        if (contentLength is { } bodyLength)
        {
            Append(connection, ref length, "Content-Length: ");
            Reserve(connection, length, 24);
            Utf8Formatter.TryFormat(bodyLength, connection.Write.AsSpan(length), out var written);
            length += written;
            Append(connection, ref length, "\r\n");
        }

        Append(connection, ref length, "\r\n");

        // A small body Kestrel already read goes out with the head: one send, as for a GET.
        bodySent = false;
        if (contentLength is > 0 and <= CoalesceBodyBytes && request.BodyReader.TryRead(out var result))
        {
            var body = result.Buffer;
            if (body.Length == contentLength)
            {
                Reserve(connection, length, (int)body.Length);
                body.CopyTo(connection.Write.AsSpan(length));
                length += (int)body.Length;
                bodySent = true;
                request.BodyReader.AdvanceTo(body.End);
            }
            else
            {
                request.BodyReader.AdvanceTo(body.Start);
            }
        }

        return length;
    }

    /// <summary>Request headers not copied: this hop's, pseudo-headers, plus the ones this path writes itself.</summary>
    private static bool SkipRequestHeader(string name) => name.Length switch
    {
        2 => string.Equals(name, "TE", StringComparison.OrdinalIgnoreCase),
        4 => string.Equals(name, HeaderNames.Host, StringComparison.OrdinalIgnoreCase),
        7 => string.Equals(name, HeaderNames.Upgrade, StringComparison.OrdinalIgnoreCase) || string.Equals(name, HeaderNames.Trailer, StringComparison.OrdinalIgnoreCase),
        10 => string.Equals(name, HeaderNames.Connection, StringComparison.OrdinalIgnoreCase) || string.Equals(name, HeaderNames.KeepAlive, StringComparison.OrdinalIgnoreCase),
        14 => string.Equals(name, HeaderNames.ContentLength, StringComparison.OrdinalIgnoreCase) || string.Equals(name, "HTTP2-Settings", StringComparison.OrdinalIgnoreCase),
        16 => string.Equals(name, HeaderNames.ProxyConnection, StringComparison.OrdinalIgnoreCase),
        17 => string.Equals(name, HeaderNames.TransferEncoding, StringComparison.OrdinalIgnoreCase),
        _ => name.Length > 0 && name[0] == ':',
    };

    private static void AppendHeader(Http1Connection connection, ref int length, string name, string value)
    {
        // A name that is no token, or a value with a line break, could end this field and start another header or request.
        if (!HttpSyntax.IsToken(name))
        {
            throw new Http1RequestRefusedException("a request header name is not a token");
        }

        if (!HttpSyntax.IsFieldValue(value))
        {
            throw new Http1RequestRefusedException($"the value of request header '{name}' holds CR, LF or NUL");
        }

        Append(connection, ref length, name);
        Append(connection, ref length, ": ");
        Append(connection, ref length, value);
        Append(connection, ref length, "\r\n");
    }

    /// <summary>Writes <paramref name="text"/> as Latin-1, one byte per character, as HTTP/1.1 fields are.</summary>
    private static void Append(Http1Connection connection, ref int length, string text)
    {
        Reserve(connection, length, text.Length);
        length += Encoding.Latin1.GetBytes(text, connection.Write.AsSpan(length));
    }

    private static void Reserve(Http1Connection connection, int used, int more)
    {
        if (connection.Write.Length - used < more)
        {
            connection.GrowWrite(used, used + more);
        }
    }
}
