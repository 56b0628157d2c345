// The conformance table: every response shape the suite sends through Mesh's client and YARP's, and what a client must get on each path.
using System.Globalization;
using System.Text;

namespace Mesh.FunctionalTests.Upstream.Conformance;

/// <summary>What the proxies must do with a case.</summary>
public enum Verdict
{
    /// <summary>Both proxies give the client exactly what the upstream gives a direct client: same status, same body bytes.</summary>
    Same,

    /// <summary>Both proxies refuse: 502, or (a body already started) an aborted response.</summary>
    Refused,

    /// <summary>Mesh refuses where YARP passes something on: a stricter refusal documented in docs/configuration.md.</summary>
    MeshStricter,

    /// <summary>Both refuse, or both give the same status and body.</summary>
    Equal,

    /// <summary>Each proxy refuses or gives the case's <see cref="ConformanceCase.Answer"/>: which one depends on a race the upstream starts (a reset while the request body is in flight).</summary>
    RefusedOrAnswer,
}

/// <summary>One row of the table.</summary>
/// <param name="Name">Its name; scripted cases answer <c>/case/{Name}/{nonce}</c>.</param>
/// <param name="Target">The request-target, given a nonce that makes each request unique.</param>
/// <param name="LateBytes">The upstream sends bytes after the response (a pause later): the next request waits for them to be out.</param>
public sealed record ConformanceCase(string Name, UpstreamKind Upstream, string Method, Func<string, string> Target, Verdict Verdict, byte[]? Body = null, bool LateBytes = false)
{
    internal Script? Script { get; init; }

    /// <summary>The upstream's answer, for <see cref="Verdict.RefusedOrAnswer"/>.</summary>
    public (int Status, string Body) Answer { get; init; }

    public override string ToString() => Name;
}

/// <summary>The rows, by name.</summary>
public static class ConformanceCases
{
    /// <summary>An extra response an upstream sends unasked: if a proxy ever hands it to a client, the queue is poisoned.</summary>
    internal const string Poison = "HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nPOISON";

    private static readonly Lazy<Dictionary<string, ConformanceCase>> All = new(() => Build().ToDictionary(c => c.Name, StringComparer.Ordinal));

    public static TheoryData<string> Names
    {
        get
        {
            var data = new TheoryData<string>();
            foreach (var name in All.Value.Keys)
            {
                data.Add(name);
            }

            return data;
        }
    }

    public static ConformanceCase Get(string name) => All.Value[name];

    internal static void RegisterScripts(ScriptedServer server)
    {
        foreach (var row in All.Value.Values)
        {
            if (row.Script is not null)
            {
                server.Register(row.Name, row.Script);
            }
        }
    }

    /// <summary>n bytes cycling 0 to 250, as one Latin-1 string (one char a byte).</summary>
    internal static string Body(int size) => Encoding.Latin1.GetString(PeerProcess.Pattern(size));

    internal static string Ok(string body, string headers = "") =>
        $"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: {body.Length}\r\n{headers}\r\n{body}";

    private static IEnumerable<ConformanceCase> Build()
    {
        // Content-Length bodies across the client's 4 KiB read buffer and far past it, head and body in one write.
        foreach (var size in new[] { 0, 1, 4095, 4096, 4097, 16384, 65536, 1024 * 1024 })
        {
            yield return Scripted($"cl-{size}", Verdict.Same, new Send(Ok(Body(size))));
        }

        // Head and body in separate writes (Python's BaseHTTPRequestHandler, and most frameworks).
        foreach (var size in new[] { 62, 5120, 20_000 })
        {
            var head = Ok(Body(size))[..^size];
            yield return Scripted($"split-{size}", Verdict.Same, new Send(head), new Pause(5), new Send(Body(size)));
        }

        var whole = Ok(Body(300), "x-a: 1\r\nx-b: 2\r\n");
        yield return Scripted("split-head", Verdict.Same, new Send(whole[..20]), new Pause(3), new Send(whole[20..50]), new Pause(3), new Send(whole[50..]));
        yield return Scripted("trickle-body", Verdict.Same, [new Send(Ok(Body(1000))[..^1000]), .. Enumerable.Range(0, 20).SelectMany(i => new Step[] { new Pause(2), new Send(Body(1000).Substring(i * 50, 50)) })]);

        // Chunked: extensions, trailers, odd and upper-case sizes, leading zeros, sizes across the buffer, awkward splits.
        var chunked = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: x-t\r\n\r\n"
            + "1\r\na\r\n000A;ext=1;quoted=\"a b\"\r\n0123456789\r\nfff\r\n" + Body(4095) + "\r\n1001 ;x\r\n" + Body(4097) + "\r\n0\r\nx-t: 1\r\nx-u: 2\r\n\r\n";
        yield return Scripted("chunked-odd", Verdict.Same, new Send(chunked));
        var splits = new[] { 60, 61, 62, 64, 70, 90, 95, 4200, chunked.Length - 10, chunked.Length - 3, chunked.Length - 1 };
        yield return Scripted("chunked-split", Verdict.Same, [.. Cut(chunked, splits).SelectMany(piece => new Step[] { new Send(piece), new Pause(2) })]);
        yield return Scripted("chunked-1mib", Verdict.Same, new Send("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            + string.Concat(Enumerable.Range(0, 16).Select(i => "10000\r\n" + Body(65536) + "\r\n")) + "0\r\n\r\n"));

        // Framing conflicts.
        yield return Scripted("cl-and-te", Verdict.Same, new Send("HTTP/1.1 200 OK\r\nContent-Length: 999\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"));
        yield return Scripted("two-cl", Verdict.Refused, new Send("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!"), new Close());
        yield return Scripted("cl-dup-same", Verdict.Refused, new Send("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok"));
        yield return Scripted("cl-plus", Verdict.Refused, new Send("HTTP/1.1 200 OK\r\nContent-Length: +5\r\n\r\nhello"), new Close());
        yield return Scripted("cl-minus-zero", Verdict.Refused, new Send("HTTP/1.1 200 OK\r\nContent-Length: -0\r\n\r\n"), new Close());
        yield return Scripted("cl-list", Verdict.Refused, new Send("HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\n\r\nhello"), new Close());
        yield return Scripted("te-xchunked", Verdict.Same, new Send("HTTP/1.1 200 OK\r\nTransfer-Encoding: xchunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"), new Close());
        yield return Scripted("te-split", Verdict.Same, new Send("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"));
        yield return Scripted("te-chunked-not-last", Verdict.MeshStricter, new Send("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n5\r\nhello\r\n0\r\n\r\n"), new Close());
        yield return Scripted("te-identity-and-cl", Verdict.MeshStricter, new Send("HTTP/1.1 200 OK\r\nTransfer-Encoding: identity\r\nContent-Length: 5\r\n\r\nhello"), new Close());
        yield return Scripted("te-in-http10", Verdict.MeshStricter, new Send("HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"), new Close());

        // Bytes after a response, in the same write and 200 ms later: never the next request's answer.
        var large = Body(100_000);
        foreach (var (kind, method, response) in new[]
        {
            ("small", "GET", Ok("ok")),
            ("large", "GET", Ok(large)),
            ("204", "GET", "HTTP/1.1 204 No Content\r\n\r\n"),
            ("304", "GET", "HTTP/1.1 304 Not Modified\r\nETag: \"e\"\r\n\r\n"),
            ("head", "HEAD", "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n"),
        })
        {
            yield return Scripted($"extra-same-{kind}", Verdict.Same, new Send(response + Poison)) with { Method = method };
            yield return Scripted($"extra-late-{kind}", Verdict.Same, new Send(response), new Pause(200), new Send(Poison)) with { Method = method, LateBytes = true };
        }

        // Early responses to a large POST: one reads the body after answering, one closes without reading it.
        var upload = PeerProcess.Pattern(1024 * 1024);
        yield return Scripted("early-200-then-read", Verdict.Same, new Script(_ => [new Send(Ok("early")), new DrainBody()], ReadBodyFirst: false)) with { Method = "POST", Body = upload };
        yield return Scripted("early-413-abandon", Verdict.RefusedOrAnswer, new Script(_ => [new Send("HTTP/1.1 413 Payload Too Large\r\nContent-Length: 8\r\nConnection: close\r\n\r\ntoo big!"), new Abandon()], ReadBodyFirst: false))
            with { Method = "POST", Body = upload, Answer = (413, "too big!") };

        // The upstream closes part way.
        yield return Scripted("close-mid-head", Verdict.Refused, new Send("HTTP/1.1 200 OK\r\nContent-Le"), new Close());
        yield return Scripted("close-mid-body", Verdict.Refused, new Send("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789"), new Close());
        yield return Scripted("close-mid-chunk", Verdict.Refused, new Send("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n64\r\n0123456789"), new Close());

        // Interim responses.
        yield return Scripted("interim-flood", Verdict.Same, new Send(string.Concat(Enumerable.Repeat("HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\n", 200))
            + "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 102 Processing\r\n\r\n" + Ok("after the interims")));
        yield return Scripted("unrequested-101", Verdict.MeshStricter, new Send("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"), new Close());

        // Status lines: exactly HTTP/1.x SP three digits, then the end or a space.
        yield return Scripted("status-2000", Verdict.Refused, new Send("HTTP/1.1 2000 OK\r\nContent-Length: 2\r\n\r\nok"), new Close());
        yield return Scripted("status-200x", Verdict.Refused, new Send("HTTP/1.1 200X OK\r\nContent-Length: 2\r\n\r\nok"), new Close());
        yield return Scripted("status-1000", Verdict.Refused, new Send("HTTP/1.1 1000 Continue\r\n\r\n" + Ok("ok")), new Close());
        yield return Scripted("status-99", Verdict.Refused, new Send("HTTP/1.1 99 Low\r\nContent-Length: 2\r\n\r\nok"), new Close());
        yield return Scripted("status-http2", Verdict.Refused, new Send("HTTP/2 200 OK\r\nContent-Length: 2\r\n\r\nok"), new Close());
        yield return Scripted("status-icy", Verdict.Refused, new Send("ICY 200 OK\r\nContent-Length: 2\r\n\r\nok"), new Close());
        yield return Scripted("status-empty-line-first", Verdict.Refused, new Send("\r\n" + Ok("ok")), new Close());
        yield return Scripted("status-http12", Verdict.MeshStricter, new Send("HTTP/1.2 200 OK\r\nContent-Length: 2\r\n\r\nok"), new Close());
        yield return Scripted("status-no-reason", Verdict.Same, new Send("HTTP/1.1 200\r\nContent-Length: 2\r\n\r\nok"));

        // Header lines: obs-fold, NUL, CR, bare LF, space before the colon, a name that is no token.
        yield return Scripted("obs-fold", Verdict.MeshStricter, new Send("HTTP/1.1 200 OK\r\nx-folded: a\r\n  b\r\nContent-Length: 2\r\n\r\nok"), new Close());
        yield return Scripted("nul-in-value", Verdict.MeshStricter, new Send("HTTP/1.1 200 OK\r\nx-nul: a\0b\r\nContent-Length: 2\r\n\r\nok"), new Close());
        yield return Scripted("cr-in-value", Verdict.MeshStricter, new Send("HTTP/1.1 200 OK\r\nx-cr: a\rb\r\nContent-Length: 2\r\n\r\nok"), new Close());
        yield return Scripted("bare-lf", Verdict.MeshStricter, new Send("HTTP/1.1 200 OK\nContent-Length: 2\n\nok"), new Close());
        yield return Scripted("bare-lf-mixed", Verdict.MeshStricter, new Send("HTTP/1.1 200 OK\r\nContent-Length: 2\n\r\nok"), new Close());
        yield return Scripted("space-before-colon", Verdict.MeshStricter, new Send("HTTP/1.1 200 OK\r\nx-name : a\r\nContent-Length: 2\r\n\r\nok"), new Close());
        yield return Scripted("name-not-a-token", Verdict.Refused, new Send("HTTP/1.1 200 OK\r\nx(a): b\r\nContent-Length: 2\r\n\r\nok"), new Close());

        // Head sizes around the 64 KiB limit, and 10,000 fields of one name.
        yield return Scripted("head-60k", Verdict.Same, new Send(Ok("ok", "x-big: " + new string('h', 60 * 1024) + "\r\n")));
        yield return Scripted("head-70k", Verdict.Refused, new Send(Ok("ok", "x-big: " + new string('h', 70 * 1024) + "\r\n")), new Close());
        yield return Scripted("ten-thousand-fields", Verdict.Same, new Send(Ok("ok", string.Concat(Enumerable.Range(0, 10_000).Select(i => $"r: {i % 10}\r\n")))));

        // HTTP/1.0.
        yield return Scripted("http10-no-length", Verdict.Same, new Send("HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nall of it, to the close"), new Close());
        yield return Scripted("http10-keep-alive", Verdict.Same, new Send("HTTP/1.0 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\nok"));

        // Upstreams nobody here wrote.
        foreach (var size in PeerProcess.FileSizes)
        {
            yield return Peer($"nginx-file-{size}", UpstreamKind.Nginx, "GET", $"/files/{size}");
        }

        yield return Peer("nginx-head-65536", UpstreamKind.Nginx, "HEAD", "/files/65536");
        yield return Peer("python-small", UpstreamKind.Python, "GET", "/small");
        yield return Peer("python-head-small", UpstreamKind.Python, "HEAD", "/small");
        yield return Peer("python-size-20000", UpstreamKind.Python, "GET", "/size/20000");
        yield return Peer("python-until-close", UpstreamKind.Python, "GET", "/close");
        yield return Peer("python-chunked", UpstreamKind.Python, "GET", "/chunked/5");
        yield return Peer("python-204", UpstreamKind.Python, "GET", "/204");
        yield return Peer("python-post", UpstreamKind.Python, "POST", "/post", PeerProcess.Pattern(1024 * 1024));
        yield return Peer("node-size-5120", UpstreamKind.Node, "GET", "/size/5120");
        yield return Peer("node-head-5120", UpstreamKind.Node, "HEAD", "/size/5120");
        yield return Peer("node-size-1mib", UpstreamKind.Node, "GET", "/size/1048576");
        yield return Peer("node-chunked", UpstreamKind.Node, "GET", "/chunked/10");
        yield return Peer("node-204", UpstreamKind.Node, "GET", "/204");
        yield return Peer("node-post", UpstreamKind.Node, "POST", "/post", PeerProcess.Pattern(5000));
        yield return Peer("kestrel-size-4097", UpstreamKind.Kestrel, "GET", "/size/4097");
        yield return Peer("kestrel-size-1mib", UpstreamKind.Kestrel, "GET", "/size/1048576");
        yield return Peer("kestrel-chunked", UpstreamKind.Kestrel, "GET", "/chunked/5");
        yield return Peer("kestrel-204", UpstreamKind.Kestrel, "GET", "/204");
        yield return Peer("kestrel-post", UpstreamKind.Kestrel, "POST", "/post", PeerProcess.Pattern(100_000));
    }

    private static ConformanceCase Scripted(string name, Verdict verdict, params Step[] steps) =>
        Scripted(name, verdict, new Script(_ => steps));

    private static ConformanceCase Scripted(string name, Verdict verdict, Script script) =>
        new(name, UpstreamKind.Scripted, "GET", nonce => $"/case/{name}/{nonce}", verdict) { Script = script };

    private static ConformanceCase Peer(string name, UpstreamKind upstream, string method, string path, byte[]? body = null) =>
        new(name, upstream, method, nonce => $"{path}?n={nonce}", Verdict.Same, body);

    private static IEnumerable<string> Cut(string text, int[] at)
    {
        var start = 0;
        foreach (var end in at.Order())
        {
            yield return text[start..end];
            start = end;
        }

        yield return text[start..];
    }

    internal static string Describe(int value) => value.ToString(CultureInfo.InvariantCulture);
}
