// RFC 9110 syntax shared by the data path and both upstream clients: tokens, field values, origin-form queries.
using System.Buffers;
using System.Text;

namespace Mesh.Sidecar.Upstream;

/// <summary>
/// What may be written into an HTTP/1.1 message. HTTP/2 decoders hand on header names that HTTP/1.1
/// cannot carry (Kestrel rejects only upper case), so every name and value bound upstream is checked
/// here before a byte is written: a name that is not a token could end the line and start another.
/// </summary>
internal static class HttpSyntax
{
    // tchar = "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" / "-" / "." / "^" / "_" / "`" / "|" / "~" / DIGIT / ALPHA
    private const string TokenChars = "!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

    private static readonly SearchValues<char> Token = SearchValues.Create(TokenChars);
    private static readonly SearchValues<byte> TokenBytes = SearchValues.Create(Encoding.ASCII.GetBytes(TokenChars));

    /// <summary>Characters that end a field line or a C string: never inside a value.</summary>
    private static readonly SearchValues<char> LineBreakers = SearchValues.Create("\r\n\0");

    /// <summary>
    /// What a query keeps as it is: RFC 3986 query characters plus <c>[</c> and <c>]</c>, which
    /// System.Uri (and so the YARP path) also leaves alone; <c>%</c> is checked separately.
    /// </summary>
    private static readonly SearchValues<char> QueryChars = SearchValues.Create(
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~!$&'()*+,;=:@/?[]");

    /// <summary>True when <paramref name="name"/> is an RFC 9110 token (one or more tchar).</summary>
    public static bool IsToken(ReadOnlySpan<char> name) => !name.IsEmpty && !name.ContainsAnyExcept(Token);

    /// <summary>True when <paramref name="name"/> is an RFC 9110 token (one or more tchar).</summary>
    public static bool IsToken(ReadOnlySpan<byte> name) => !name.IsEmpty && !name.ContainsAnyExcept(TokenBytes);

    /// <summary>True when <paramref name="value"/> holds no CR, LF or NUL (RFC 9110 section 5.5: never valid, never forwarded).</summary>
    public static bool IsFieldValue(ReadOnlySpan<char> value) => !value.ContainsAny(LineBreakers);

    /// <summary>
    /// The first request header a proxy must refuse: a name that is not a token (pseudo-headers
    /// Kestrel itself validated aside) or a value holding CR, LF or NUL; null when all are fine.
    /// </summary>
    public static string? FindInvalidRequestHeader(IHeaderDictionary headers)
    {
        ArgumentNullException.ThrowIfNull(headers);
        foreach (var (name, values) in headers)
        {
            if (!IsToken(name) && !IsPseudoHeader(name))
            {
                return name;
            }

            foreach (var value in values)
            {
                if (value is not null && !IsFieldValue(value))
                {
                    return name;
                }
            }
        }

        return null;
    }

    /// <summary>
    /// <paramref name="query"/> (with its <c>?</c>) as valid origin-form: characters a query may not
    /// hold raw are percent-encoded as UTF-8, as System.Uri does on the YARP path, and so is a
    /// <c>#</c> (which Uri would take for a fragment and cut) and a <c>%</c> that starts no escape.
    /// Returns <paramref name="query"/> itself when nothing needs encoding.
    /// </summary>
    public static string OriginFormQuery(string query)
    {
        ArgumentNullException.ThrowIfNull(query);
        var first = FirstToEncode(query, 0);
        if (first < 0)
        {
            return query;
        }

        var builder = new StringBuilder(query.Length + 16);
        builder.Append(query, 0, first);
        Span<byte> utf8 = stackalloc byte[4];
        for (var i = first; i < query.Length; i++)
        {
            var c = query[i];
            if (QueryChars.Contains(c) || (c == '%' && IsEscape(query, i)))
            {
                builder.Append(c);
                continue;
            }

            // A surrogate pair is one character of UTF-8; a lone surrogate becomes U+FFFD, as in Uri.
            var rune = Rune.TryGetRuneAt(query, i, out var r) ? r : Rune.ReplacementChar;
            var count = rune.EncodeToUtf8(utf8);
            for (var b = 0; b < count; b++)
            {
                builder.Append('%').Append(HexUpper(utf8[b] >> 4)).Append(HexUpper(utf8[b] & 0xF));
            }

            if (rune.IsBmp is false)
            {
                i++;
            }
        }

        return builder.ToString();
    }

    private static int FirstToEncode(string query, int start)
    {
        var span = query.AsSpan(start);
        while (true)
        {
            var index = span.IndexOfAnyExcept(QueryChars);
            if (index < 0)
            {
                return -1;
            }

            var at = query.Length - span.Length + index;
            if (query[at] != '%' || !IsEscape(query, at))
            {
                return at;
            }

            span = span[(index + 1)..];
        }
    }

    private static bool IsEscape(string text, int percent) =>
        percent + 2 < text.Length && char.IsAsciiHexDigit(text[percent + 1]) && char.IsAsciiHexDigit(text[percent + 2]);

    private static char HexUpper(int nibble) => (char)(nibble < 10 ? '0' + nibble : 'A' + nibble - 10);

    /// <summary>The HTTP/2 and HTTP/3 pseudo-headers Kestrel accepts and exposes as headers; neither client forwards them.</summary>
    private static bool IsPseudoHeader(string name) => name is ":method" or ":path" or ":scheme" or ":authority" or ":protocol";
}
