// The request side of the conformance suite: HTTP/2 and HTTP/1.1 clients sending header names, values, pseudo-headers and targets that HTTP/1.1 cannot carry as they are.
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace Mesh.FunctionalTests.Upstream.Conformance;

[Collection(ConformanceCollection.Name)]
public sealed class RequestConformanceTests
{
    private static readonly RoutePath[] Proxies = [RoutePath.Mesh, RoutePath.Yarp];
    private readonly ConformanceFixture _fixture;

    public RequestConformanceTests(ConformanceFixture fixture)
    {
        _fixture = fixture;
        fixture.Scripted.Register("request-echo", new Script(request => [new Send(ConformanceCases.Ok(request.Target))]));
    }

    [Fact]
    public async Task Http2_ValidHeaders_ReachTheUpstreamOnBothPaths()
    {
        foreach (var path in Proxies)
        {
            var nonce = Nonce();
            var result = await RawHttp2Client.SendAsync(Port(path), Request("GET", $"/case/request-echo/{nonce}", ("x-valid-name", "value")));

            Assert.Equal(200, result.Status);
            Assert.Equal($"/case/request-echo/{nonce}", Encoding.Latin1.GetString(result.Body));
            Assert.Equal(["value"], Assert.Single(_fixture.Scripted.SeenWith(nonce)).Header("x-valid-name"));
        }
    }

    /// <summary>
    /// The attack: a name holding CRLF and a second field, a chunked terminator in the body,
    /// then a request for another path. Refused with 400 on both paths, nothing forwarded, nothing smuggled.
    /// </summary>
    [Theory]
    [InlineData("x-a: 1\r\ntransfer-encoding", true)]
    [InlineData("x-a\r\nx-b", true)]
    [InlineData("x-a\nx-b", true)]
    [InlineData("x a", true)]
    [InlineData("x-a:b", true)]
    [InlineData("x-\u00e9", false)]
    [InlineData("x\"q", true)]
    [InlineData("x(a)", true)]
    [InlineData("x-a\0", false)]
    public async Task Http2_HeaderNameNotAToken_IsRefusedOnBothPathsAndNeverForwarded(string name, bool kestrelPassesIt)
    {
        foreach (var path in Proxies)
        {
            var nonce = Nonce();
            var body = Encoding.ASCII.GetBytes($"0\r\n\r\nGET /case/request-echo/{nonce}-smuggled HTTP/1.1\r\nHost: scripted.test\r\n\r\n");
            var result = await RawHttp2Client.SendAsync(Port(path), Request("POST", $"/case/request-echo/{nonce}", ("content-length", Describe(body.Length)), (name, "chunked")), body);

            if (kestrelPassesIt)
            {
                Assert.True(result.Status == 400, $"{path}: {result}");
            }
            else
            {
                Assert.True(result.RefusedBeforeForwarding, $"{path}: {result}");
            }

            Assert.Empty(_fixture.Scripted.SeenWith(nonce));
        }
    }

    [Theory]
    [InlineData("a\r\nx-injected: 1")]
    [InlineData("a\nx-injected: 1")]
    [InlineData("a\rb")]
    [InlineData("a\0b")]
    public async Task Http2_HeaderValueWithLineBreakOrNul_IsRefusedOnBothPathsAndNeverForwarded(string value)
    {
        foreach (var path in Proxies)
        {
            var nonce = Nonce();
            var result = await RawHttp2Client.SendAsync(Port(path), Request("GET", $"/case/request-echo/{nonce}", ("x-value", value)));

            Assert.True(result.RefusedBeforeForwarding, $"{path}: {result}");
            Assert.Empty(_fixture.Scripted.SeenWith(nonce));
        }
    }

    /// <summary>Both paths percent-encode what a query may not hold; YARP (System.Uri) also decodes escapes of unreserved characters, which Mesh keeps as sent.</summary>
    [Theory]
    [InlineData("?q=a b", "?q=a%20b", "?q=a%20b")]
    [InlineData("?q=a\tb", "?q=a%09b", "?q=a%09b")]
    [InlineData("?q=\"<>", "?q=%22%3C%3E", "?q=%22%3C%3E")]
    [InlineData("?q=\\^`{|}", "?q=%5C%5E%60%7B%7C%7D", "?q=%5C%5E%60%7B%7C%7D")]
    [InlineData("?q=100%&r=%41", "?q=100%25&r=%41", "?q=100%25&r=A")]
    [InlineData("?q=[a]:@!$'()*+,;=/?", "?q=[a]:@!$'()*+,;=/?", "?q=[a]:@!$'()*+,;=/?")]
    public async Task Http2_QueryACharacterATargetCannotHold_ReachesTheUpstreamPercentEncoded(string query, string meshSent, string yarpSent)
    {
        foreach (var path in Proxies)
        {
            var nonce = Nonce();
            var result = await RawHttp2Client.SendAsync(Port(path), Request("GET", $"/case/request-echo/{nonce}{query}"));

            Assert.True(result.Status == 200, $"{path}: {result}");
            Assert.Equal($"/case/request-echo/{nonce}{(path == RoutePath.Mesh ? meshSent : yarpSent)}", Encoding.Latin1.GetString(result.Body));
        }
    }

    [Theory]
    [InlineData("connection", "close")]
    [InlineData("keep-alive", "timeout=5")]
    [InlineData("proxy-connection", "keep-alive")]
    [InlineData("transfer-encoding", "chunked")]
    [InlineData("upgrade", "h2c")]
    [InlineData("te", "gzip")]
    public async Task Http2_HopByHopHeader_IsNeverForwarded(string name, string value)
    {
        var answered = new List<bool>();
        foreach (var path in Proxies)
        {
            var nonce = Nonce();
            var result = await RawHttp2Client.SendAsync(Port(path), Request("GET", $"/case/request-echo/{nonce}", (name, value)));

            // HTTP/2 forbids connection-specific fields (RFC 9113 section 8.2.2): a stream error, or at least never upstream.
            Assert.True(result.RefusedBeforeForwarding || result.Status == 200, $"{path}: {result}");
            Assert.All(_fixture.Scripted.SeenWith(nonce), seen => Assert.Empty(seen.Header(name)));
            answered.Add(result.Status == 200);
        }

        Assert.Equal(answered[0], answered[1]);
    }

    public static TheoryData<string, string[]> PseudoHeaderTricks => new()
    {
        { "duplicate :path", [":method", "GET", ":scheme", "http", ":authority", "scripted.test", ":path", "/case/request-echo/{nonce}", ":path", "/case/request-echo/{nonce}-smuggled"] },
        { "relative :path", [":method", "GET", ":scheme", "http", ":authority", "scripted.test", ":path", "case/request-echo/{nonce}"] },
        { "CRLF in :authority", [":method", "GET", ":scheme", "http", ":authority", "scripted.test\r\nx-injected: 1", ":path", "/case/request-echo/{nonce}"] },
        { "request line in :method", [":method", "GET /case/request-echo/{nonce}-smuggled HTTP/1.1\r\nx-injected: 1\r\nx:", ":scheme", "http", ":authority", "scripted.test", ":path", "/case/request-echo/{nonce}"] },
        { "space in :method", [":method", "GE T", ":scheme", "http", ":authority", "scripted.test", ":path", "/case/request-echo/{nonce}"] },
        { "pseudo after regular", [":method", "GET", ":scheme", "http", "x-regular", "1", ":authority", "scripted.test", ":path", "/case/request-echo/{nonce}"] },
        { "unknown pseudo", [":method", "GET", ":scheme", "http", ":authority", "scripted.test", ":path", "/case/request-echo/{nonce}", ":smuggle", "x"] },
        { "CRLF in :path", [":method", "GET", ":scheme", "http", ":authority", "scripted.test", ":path", "/case/request-echo/{nonce} HTTP/1.1\r\nx-injected: 1\r\nx: /"] },
        { "host unlike :authority", [":method", "GET", ":scheme", "http", ":authority", "scripted.test", ":path", "/case/request-echo/{nonce}", "host", "scripted.test\r\nx-injected: 1"] },
    };

    /// <summary>Each trick is refused before it is forwarded, or forwarded with nothing injected; both paths alike.</summary>
    [Theory]
    [MemberData(nameof(PseudoHeaderTricks))]
    public async Task Http2_PseudoHeaderTrick_IsRefusedOrForwardedWithNothingInjected(string trick, string[] fields)
    {
        var answered = new List<string>();
        foreach (var path in Proxies)
        {
            var nonce = Nonce();
            var headers = new List<(string, string)>();
            for (var i = 0; i < fields.Length; i += 2)
            {
                headers.Add((fields[i], fields[i + 1].Replace("{nonce}", nonce, StringComparison.Ordinal)));
            }

            var result = await RawHttp2Client.SendAsync(Port(path), headers);

            Assert.True(result.RefusedBeforeForwarding || result.Status == 200, $"{trick}, {path}: {result}");
            foreach (var seen in _fixture.Scripted.SeenWith(nonce))
            {
                Assert.Empty(seen.Header("x-injected"));
                Assert.DoesNotContain("smuggled", seen.Target, StringComparison.Ordinal);
            }

            answered.Add(result.Status == 200 ? "answered" : "refused");
        }

        Assert.True(answered[0] == answered[1], $"{trick}: mesh {answered[0]}, yarp {answered[1]}");
    }

    /// <summary>HTTP/1.1 clients: whatever Kestrel's parser lets through, a name that is no token never reaches the upstream.</summary>
    [Theory]
    [InlineData("x(a)")]
    [InlineData("x\"a")]
    [InlineData("x{a}")]
    [InlineData("x/a")]
    [InlineData("x\u00e9")]
    [InlineData("x\u007fa")]
    public async Task Http1_HeaderNameNotAToken_IsRefusedWith400OnBothPaths(string name)
    {
        foreach (var path in Proxies)
        {
            var nonce = Nonce();
            using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            await socket.ConnectAsync(new IPEndPoint(IPAddress.Loopback, Port(path)));
            await socket.SendAsync(Encoding.Latin1.GetBytes($"GET /case/request-echo/{nonce} HTTP/1.1\r\nHost: scripted.test\r\n{name}: 1\r\nConnection: close\r\n\r\n"), SocketFlags.None);
            using var reader = new StreamReader(new NetworkStream(socket), Encoding.Latin1);
            var status = await reader.ReadLineAsync().WaitAsync(ConformanceClients.ExchangeDeadline);

            Assert.StartsWith("HTTP/1.1 400 ", status, StringComparison.Ordinal);
            Assert.Empty(_fixture.Scripted.SeenWith(nonce));
        }
    }

    private static List<(string, string)> Request(string method, string target, params (string Name, string Value)[] headers) =>
        [(":method", method), (":scheme", "http"), (":authority", "scripted.test"), (":path", target), .. headers];

    private static string Nonce() => Guid.NewGuid().ToString("N")[..12];

    private static string Describe(int value) => value.ToString(CultureInfo.InvariantCulture);

    private int Port(RoutePath path) => _fixture.PortOf(path, UpstreamKind.Scripted);
}
