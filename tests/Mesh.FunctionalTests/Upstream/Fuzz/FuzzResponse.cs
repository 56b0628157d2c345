// Random but valid HTTP/1.1 responses for the differential fuzz test: statuses, framings, header sets, interim responses, write splits and pauses, all from one seed.
using System.Globalization;
using System.Text;
using Mesh.FunctionalTests.Upstream.Conformance;

namespace Mesh.FunctionalTests.Upstream.Fuzz;

/// <summary>One generated response and how the upstream writes it.</summary>
/// <param name="Method">The request's method (HEAD sometimes).</param>
/// <param name="Http2">Whether the client speaks HTTP/2 to the proxy.</param>
/// <param name="Status">The final status.</param>
/// <param name="Body">What a client must receive as the body.</param>
/// <param name="Headers">The end-to-end fields, in order (names may repeat).</param>
/// <param name="Steps">The bytes, split into writes with pauses, and a close when the framing needs one.</param>
/// <param name="Description">A one-line summary for a failure message.</param>
internal sealed record FuzzResponse(string Method, bool Http2, int Status, byte[] Body, IReadOnlyList<(string Name, string Value)> Headers, IReadOnlyList<Step> Steps, string Description)
{
    private const string TokenChars = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";

    /// <summary>Fields the proxies treat specially (hop-by-hop, framing, or set by Kestrel): never generated as end-to-end fields.</summary>
    private static readonly HashSet<string> Reserved = new(StringComparer.OrdinalIgnoreCase)
    {
        "connection", "keep-alive", "te", "trailer", "transfer-encoding", "upgrade", "proxy-connection", "content-length",
        "date", "server", "alt-svc", "proxy-authenticate", "http2-settings",
    };

    private static readonly int[] Statuses = [200, 200, 200, 200, 201, 202, 203, 204, 206, 226, 300, 301, 302, 304, 400, 401, 403, 404, 409, 410, 418, 429, 500, 502, 503, 599];

    /// <summary>The response of case <paramref name="index"/> under <paramref name="seed"/>: the same every time, whatever ran before.</summary>
    public static FuzzResponse Generate(int seed, int index)
    {
        var random = new Random(unchecked((seed * 1_000_003) + index));
        var method = random.Next(10) == 0 ? "HEAD" : "GET";
        var http2 = random.Next(4) == 0;
        var status = Statuses[random.Next(Statuses.Length)];
        var http10 = random.Next(12) == 0;
        var noBody = method == "HEAD" || status is 204 or 304;

        // Framing: Content-Length most often, then chunked, then the close (HTTP/1.0 has no chunked).
        var framing = random.Next(10) switch
        {
            < 6 => "length",
            < 9 => http10 ? "length" : "chunked",
            _ => "close",
        };
        if ((noBody && framing == "close") || status is 204 or 304)
        {
            // No body to delimit: 204 and 304 carry no Transfer-Encoding either (RFC 9112 section 6.1).
            framing = "length";
        }

        var size = random.Next(20) switch
        {
            < 8 => random.Next(0, 101),
            < 14 => random.Next(0, 5001),
            < 19 => random.Next(0, 70_001),
            _ => random.Next(0, 300_001),
        };
        var body = new byte[status is 204 or 304 ? 0 : size];
        random.NextBytes(body);

        var headers = new List<(string Name, string Value)>();
        for (var count = random.Next(0, 13); headers.Count < count;)
        {
            var name = Token(random, random.Next(1, 21));
            if (Reserved.Contains(name) || name.StartsWith(':'))
            {
                continue;
            }

            var value = Value(random);
            headers.Add((name, value));
            if (random.Next(6) == 0)
            {
                // The same name again: a list the proxies must pass on as one.
                headers.Add((name, Value(random)));
            }
        }

        if (random.Next(3) == 0)
        {
            headers.Add(("Content-Type", random.Next(2) == 0 ? "application/octet-stream" : "text/plain; charset=utf-8"));
        }

        var close = framing == "close" || (!http10 && random.Next(15) == 0);
        var head = new StringBuilder();

        // Interim responses first, now and then.
        for (var i = random.Next(8) == 0 ? random.Next(1, 4) : 0; i > 0 && !http10; i--)
        {
            head.Append(CultureInfo.InvariantCulture, $"HTTP/1.1 {(random.Next(2) == 0 ? 100 : 103)} Interim\r\nLink: </{Token(random, 5)}>\r\n\r\n");
        }

        var reason = random.Next(4) switch
        {
            0 => "",
            1 => " ",
            2 => " " + string.Join(' ', Enumerable.Range(0, random.Next(1, 4)).Select(_ => Token(random, random.Next(1, 8)))),
            _ => " OK",
        };
        head.Append(CultureInfo.InvariantCulture, $"HTTP/1.{(http10 ? 0 : 1)} {status}{reason}\r\n");
        foreach (var (name, value) in headers)
        {
            // Optional whitespace around values, which both parsers trim.
            head.Append(name).Append(':').Append(random.Next(4) == 0 ? "" : " ").Append(value).Append(random.Next(6) == 0 ? " \t" : "").Append("\r\n");
        }

        // A 204 carries no Content-Length (RFC 9110 section 8.6); a 304 may carry the one of the body it stands for.
        if (framing == "length" && status != 204 && !(status == 304 && random.Next(2) == 0))
        {
            head.Append(CultureInfo.InvariantCulture, $"Content-Length: {(method == "HEAD" ? size : body.Length)}\r\n");
        }
        else if (framing == "chunked")
        {
            head.Append("Transfer-Encoding: chunked\r\n");
        }

        if (close && framing != "close")
        {
            head.Append("Connection: close\r\n");
        }

        head.Append("\r\n");

        var wire = new List<byte>(Encoding.Latin1.GetBytes(head.ToString()));
        if (!noBody)
        {
            wire.AddRange(framing == "chunked" ? Chunk(random, body) : body);
        }

        var steps = new List<Step>();
        var bytes = wire.ToArray();
        var cuts = Enumerable.Range(0, random.Next(0, 6)).Select(_ => random.Next(0, bytes.Length + 1)).Distinct().Order().ToList();
        var start = 0;
        foreach (var cut in cuts.Append(bytes.Length))
        {
            if (cut > start || (start == 0 && cut == bytes.Length))
            {
                steps.Add(new Send(Encoding.Latin1.GetString(bytes, start, cut - start)));
                if (cut < bytes.Length && random.Next(3) == 0)
                {
                    steps.Add(new Pause(random.Next(1, 4)));
                }
            }

            start = cut;
        }

        if (close || framing == "close")
        {
            steps.Add(new Close());
        }

        var description = $"{method}{(http2 ? " over h2" : "")}: HTTP/1.{(http10 ? 0 : 1)} {status}, {framing}, {(noBody ? 0 : body.Length)} body bytes, {headers.Count} fields, {steps.Count(s => s is Send)} writes{(close ? ", closes" : "")}";
        return new FuzzResponse(method, http2, status, noBody ? [] : body, headers, steps, description);
    }

    private static string Token(Random random, int length)
    {
        var chars = new char[length];
        for (var i = 0; i < length; i++)
        {
            // Mostly letters, digits and '-', as real field names; now and then any tchar.
            chars[i] = random.Next(8) == 0 ? TokenChars[random.Next(TokenChars.Length)] : TokenChars[random.Next(14, 50)];
        }

        return new string(chars);
    }

    /// <summary>A field value of visible ASCII with inner spaces and tabs, no leading or trailing whitespace.</summary>
    private static string Value(Random random)
    {
        var length = random.Next(1, 60);
        var chars = new char[length];
        for (var i = 0; i < length; i++)
        {
            chars[i] = i > 0 && i < length - 1 && random.Next(10) == 0 ? (random.Next(2) == 0 ? ' ' : '\t') : (char)random.Next(0x21, 0x7F);
        }

        return new string(chars);
    }

    /// <summary>The body as chunks of random sizes, with an extension and trailers now and then.</summary>
    private static byte[] Chunk(Random random, byte[] body)
    {
        var output = new List<byte>();
        var at = 0;
        while (at < body.Length)
        {
            var size = Math.Min(body.Length - at, random.Next(5) == 0 ? random.Next(1, 16) : random.Next(1, 20_000));
            var sizeText = size.ToString(random.Next(2) == 0 ? "x" : "X", CultureInfo.InvariantCulture);
            var extension = random.Next(6) == 0 ? ";" + Token(random, 4) + (random.Next(2) == 0 ? "=" + Token(random, 3) : "") : "";
            output.AddRange(Encoding.ASCII.GetBytes($"{(random.Next(10) == 0 ? "0" : "")}{sizeText}{extension}\r\n"));
            output.AddRange(body.AsSpan(at, size).ToArray());
            output.AddRange("\r\n"u8.ToArray());
            at += size;
        }

        output.AddRange("0\r\n"u8.ToArray());
        if (random.Next(5) == 0)
        {
            output.AddRange(Encoding.ASCII.GetBytes($"x-trailer-{Token(random, 3)}: {Token(random, 6)}\r\n"));
        }

        output.AddRange("\r\n"u8.ToArray());
        return [.. output];
    }
}
