// ClientHelloParser on real client captures (whole, byte by byte, in chunks) and on non-TLS and malformed input.
using System.Buffers;
using System.Text;
using Mesh.Sidecar.L4.Tls;

namespace Mesh.Sidecar.Tests.L4.Tls;

public sealed class ClientHelloParserTests
{
    public static TheoryData<string> FixtureNames => ClientHelloFixtures.Names;

    [Fact]
    public void Fixtures_RepositoryFolder_AreAllPresent()
    {
        Assert.True(System.IO.Directory.Exists(ClientHelloFixtures.Directory), ClientHelloFixtures.Directory);
        Assert.Equal(8, ClientHelloFixtures.All.Count);
        Assert.Contains(ClientHelloFixtures.All, f => f.ServerName is null);
        Assert.Contains(ClientHelloFixtures.All, f => f.TlsRecords > 1);
    }

    [Theory]
    [MemberData(nameof(FixtureNames))]
    public void Parse_WholeFixture_YieldsIndexedValues(string name)
    {
        var fixture = ClientHelloFixtures.Get(name);

        AssertYields(fixture, ClientHelloParser.Parse(fixture.Bytes));
        AssertYields(fixture, ClientHelloParser.Parse(new ReadOnlySequence<byte>(fixture.Bytes)));
    }

    [Theory]
    [MemberData(nameof(FixtureNames))]
    public void Parse_FixtureRecords_MatchIndexedRecordCount(string name)
    {
        var fixture = ClientHelloFixtures.Get(name);

        var records = 0;
        var offset = 0;
        while (offset < fixture.Bytes.Length)
        {
            Assert.Equal(22, fixture.Bytes[offset]);
            offset += 5 + ((fixture.Bytes[offset + 3] << 8) | fixture.Bytes[offset + 4]);
            records++;
        }

        Assert.Equal(fixture.Bytes.Length, offset);
        Assert.Equal(fixture.TlsRecords, records);
    }

    [Theory]
    [MemberData(nameof(FixtureNames))]
    public void Parse_FixtureOneByteAtATime_NeedsMoreDataUntilComplete(string name)
    {
        var fixture = ClientHelloFixtures.Get(name);
        var bytewise = Segments.Bytewise(fixture.Bytes);

        for (var length = 0; length < fixture.Bytes.Length; length++)
        {
            Assert.Equal(ClientHelloStatus.NeedMoreData, ClientHelloParser.Parse(fixture.Bytes.AsSpan(0, length)).Status);
            Assert.Equal(ClientHelloStatus.NeedMoreData, ClientHelloParser.Parse(bytewise.Slice(0, length)).Status);
        }

        AssertYields(fixture, ClientHelloParser.Parse(fixture.Bytes.AsSpan()));
        AssertYields(fixture, ClientHelloParser.Parse(bytewise));
    }

    [Theory]
    [MemberData(nameof(FixtureNames))]
    public void Parse_FixtureInRandomChunks_NeedsMoreDataUntilComplete(string name)
    {
        var fixture = ClientHelloFixtures.Get(name);
        var random = new Random(name.Length * 7919);

        for (var round = 0; round < 50; round++)
        {
            // The receive buffer grows by chunks of 1..64 bytes, each chunk its own segment (as a pipe delivers them).
            var cuts = new List<int>();
            var received = 0;
            while (true)
            {
                received = Math.Min(fixture.Bytes.Length, received + random.Next(1, 65));
                var buffer = Segments.Split(fixture.Bytes, cuts).Slice(0, received);
                var result = ClientHelloParser.Parse(buffer);
                if (received == fixture.Bytes.Length)
                {
                    AssertYields(fixture, result);
                    break;
                }

                Assert.Equal(ClientHelloStatus.NeedMoreData, result.Status);
                cuts.Add(received);
            }
        }
    }

    [Theory]
    [MemberData(nameof(FixtureNames))]
    public void Parse_FixtureSplitInTwoAtEveryByte_YieldsIndexedValues(string name)
    {
        var fixture = ClientHelloFixtures.Get(name);

        for (var cut = 0; cut <= fixture.Bytes.Length; cut++)
        {
            AssertYields(fixture, ClientHelloParser.Parse(Segments.Split(fixture.Bytes, [cut])));
        }
    }

    [Theory]
    [MemberData(nameof(FixtureNames))]
    public void Parse_FixtureFollowedByMoreRecords_IgnoresTheRest(string name)
    {
        var fixture = ClientHelloFixtures.Get(name);

        // A TLS 1.3 middlebox-compat ChangeCipherSpec and early data may follow the hello in the same read.
        byte[] trailer = [20, 3, 3, 0, 1, 1, 23, 3, 3, 0, 2, 0xAB, 0xCD];
        var data = fixture.Bytes.Concat(trailer).ToArray();

        AssertYields(fixture, ClientHelloParser.Parse(data));
        AssertYields(fixture, ClientHelloParser.Parse(Segments.Split(data, [fixture.Bytes.Length - 1, fixture.Bytes.Length + 3])));
    }

    [Fact]
    public void Parse_ThreeRecordFixture_CarriesTheSameHandshakeAsOneRecord()
    {
        var single = ClientHelloFixtures.Get("chromium-sni.bin");
        var three = ClientHelloFixtures.Get("chromium-sni.three-records.bin");

        Assert.Equal(ClientHelloBuilder.Unframe(single.Bytes), ClientHelloBuilder.Unframe(three.Bytes));
        var a = ClientHelloParser.Parse(single.Bytes);
        var b = ClientHelloParser.Parse(three.Bytes);
        Assert.Equal(ClientHelloStatus.Success, b.Status);
        Assert.Equal(a.ServerName, b.ServerName);
        Assert.Equal(a.Alpn, b.Alpn);
    }

    [Theory]
    [MemberData(nameof(FixtureNames))]
    public void Parse_FixtureReframedIntoTinyRecords_YieldsIndexedValues(string name)
    {
        var fixture = ClientHelloFixtures.Get(name);
        var message = ClientHelloBuilder.Unframe(fixture.Bytes);

        foreach (var size in new[] { 1, 2, 3, 5, 100 })
        {
            var cuts = Enumerable.Range(1, (message.Length - 1) / size).Select(i => i * size).ToArray();
            var data = ClientHelloBuilder.Frame(message, cuts, 0x0303);
            AssertYields(fixture, ClientHelloParser.Parse(data));
            Assert.Equal(ClientHelloStatus.NeedMoreData, ClientHelloParser.Parse(data.AsSpan(0, data.Length - 1)).Status);
        }
    }

    [Theory]
    [InlineData("GET / HTTP/1.1\r\nHost: example.com\r\n\r\n")]
    [InlineData("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")]
    [InlineData("SSH-2.0-OpenSSH_9.6\r\n")]
    [InlineData("\u0000\u0000\u0000\u0008\u0004\u00d2\u0016\u002f")]
    public void Parse_NonTlsProtocol_ReturnsNotTlsFromFirstByte(string text)
    {
        var data = Encoding.Latin1.GetBytes(text);

        for (var length = 1; length <= data.Length; length++)
        {
            Assert.Equal(ClientHelloStatus.NotTls, ClientHelloParser.Parse(data.AsSpan(0, length)).Status);
        }
    }

    [Theory]
    [InlineData(new byte[] { 0x80, 0x2e, 0x01, 0x03, 0x01 })] // SSLv2-compatible ClientHello
    [InlineData(new byte[] { 0x17, 0x03, 0x03, 0x00, 0x10 })] // application data
    [InlineData(new byte[] { 0x15, 0x03, 0x03, 0x00, 0x02 })] // alert
    [InlineData(new byte[] { 0x16, 0x02, 0x00, 0x00, 0x10 })] // handshake type byte, but not version 3.x
    [InlineData(new byte[] { 0x16, 0xFE, 0xFD, 0x00, 0x10 })] // DTLS 1.2
    public void Parse_NonHandshakeOrNonTls3Record_ReturnsNotTls(byte[] data)
    {
        Assert.Equal(ClientHelloStatus.NotTls, ClientHelloParser.Parse(data).Status);
    }

    [Fact]
    public void Parse_EmptyInput_NeedsMoreData()
    {
        Assert.Equal(ClientHelloStatus.NeedMoreData, ClientHelloParser.Parse(ReadOnlySpan<byte>.Empty).Status);
        Assert.Equal(ClientHelloStatus.NeedMoreData, ClientHelloParser.Parse(ReadOnlySequence<byte>.Empty).Status);
    }

    [Theory]
    [InlineData(new byte[] { 0x16, 0x03, 0x01, 0x00, 0x00 })] // zero-length record
    [InlineData(new byte[] { 0x16, 0x03, 0x01, 0x40, 0x01 })] // record longer than 2^14
    [InlineData(new byte[] { 0x16, 0x03, 0x01, 0xFF, 0xFF })] // record far longer than 2^14
    [InlineData(new byte[] { 0x16, 0x03, 0x01, 0x00, 0x50, 0x02 })] // ServerHello, not ClientHello
    [InlineData(new byte[] { 0x16, 0x03, 0x01, 0x00, 0x50, 0x00 })] // HelloRequest
    [InlineData(new byte[] { 0x16, 0x03, 0x01, 0x00, 0x50, 0x01, 0x01, 0x00, 0x01 })] // hello of 64 KiB + 1
    [InlineData(new byte[] { 0x16, 0x03, 0x01, 0x00, 0x50, 0x01, 0xFF, 0xFF, 0xFF })] // hello of 16 MiB
    [InlineData(new byte[] { 0x16, 0x03, 0x01, 0x00, 0x50, 0x01, 0x00, 0x00, 0x00 })] // empty hello
    [InlineData(new byte[] { 0x16, 0x03, 0x01, 0x00, 0x50, 0x01, 0x00, 0x00, 0x28 })] // hello shorter than its fixed fields
    [InlineData(new byte[] { 0x16, 0x03, 0x01, 0x00, 0x50, 0x01, 0x00, 0x00, 0x4C, 0x02 })] // legacy_version 2.x
    public void Parse_BadHeaderField_ReturnsInvalidAsSoonAsVisible(byte[] data)
    {
        Assert.Equal(ClientHelloStatus.Invalid, ClientHelloParser.Parse(data).Status);

        // Whatever follows cannot save it.
        var longer = data.Concat(Enumerable.Repeat((byte)0x01, 300)).ToArray();
        Assert.Equal(ClientHelloStatus.Invalid, ClientHelloParser.Parse(longer).Status);
    }

    [Fact]
    public void Parse_RecordHeaderPrefixOfHandshake_NeedsMoreData()
    {
        byte[] header = [0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xFC, 0x03, 0x03];

        for (var length = 0; length <= header.Length; length++)
        {
            Assert.Equal(ClientHelloStatus.NeedMoreData, ClientHelloParser.Parse(header.AsSpan(0, length)).Status);
        }
    }

    [Fact]
    public void Parse_SessionIdLongerThan32_ReturnsInvalid()
    {
        var data = Flight(Spec() with { SessionIdLength = 33 });

        Assert.Equal(ClientHelloStatus.Invalid, ClientHelloParser.Parse(data).Status);
        // Visible at the session id length byte: 5 record + 4 handshake + 2 version + 32 random + 1.
        Assert.Equal(ClientHelloStatus.Invalid, ClientHelloParser.Parse(data.AsSpan(0, 44)).Status);
        Assert.Equal(ClientHelloStatus.NeedMoreData, ClientHelloParser.Parse(data.AsSpan(0, 43)).Status);
    }

    [Fact]
    public void Parse_OddOrEmptyCipherSuites_ReturnsInvalid()
    {
        var message = ClientHelloBuilder.BuildMessage(Spec());
        var cipherSuitesAt = 4 + 2 + 32 + 1 + message[4 + 2 + 32];
        var odd = (byte[])message.Clone();
        odd[cipherSuitesAt + 1] ^= 1; // cipher_suites length low byte
        var empty = (byte[])message.Clone();
        empty[cipherSuitesAt] = 0;
        empty[cipherSuitesAt + 1] = 0;

        Assert.Equal(ClientHelloStatus.Invalid, ClientHelloParser.Parse(ClientHelloBuilder.Frame(odd)).Status);
        Assert.Equal(ClientHelloStatus.Invalid, ClientHelloParser.Parse(ClientHelloBuilder.Frame(empty)).Status);
    }

    [Fact]
    public void Parse_LaterRecordNotHandshake_ReturnsInvalidNotNotTls()
    {
        var message = ClientHelloBuilder.BuildMessage(Spec());
        var data = ClientHelloBuilder.Frame(message, [20]);
        var secondHeader = 5 + 20;

        var alert = (byte[])data.Clone();
        alert[secondHeader] = 21;
        var emptyRecord = (byte[])data.Clone();
        emptyRecord[secondHeader + 3] = 0;
        emptyRecord[secondHeader + 4] = 0;

        Assert.Equal(ClientHelloStatus.Success, ClientHelloParser.Parse(data).Status);
        Assert.Equal(ClientHelloStatus.Invalid, ClientHelloParser.Parse(alert.AsSpan(0, secondHeader + 1)).Status);
        Assert.Equal(ClientHelloStatus.Invalid, ClientHelloParser.Parse(emptyRecord.AsSpan(0, secondHeader + 5)).Status);
        Assert.Equal(ClientHelloStatus.NeedMoreData, ClientHelloParser.Parse(emptyRecord.AsSpan(0, secondHeader + 4)).Status);
    }

    [Fact]
    public void Parse_ExtensionsLengthNotFillingMessage_ReturnsInvalid()
    {
        var message = ClientHelloBuilder.BuildMessage(Spec());
        var extensionsLengthAt = ExtensionsLengthOffset(message);
        var tooShort = (byte[])message.Clone();
        tooShort[extensionsLengthAt + 1]--;
        var tooLong = (byte[])message.Clone();
        tooLong[extensionsLengthAt + 1]++;

        Assert.Equal(ClientHelloStatus.Success, ClientHelloParser.Parse(ClientHelloBuilder.Frame(message)).Status);
        Assert.Equal(ClientHelloStatus.Invalid, ClientHelloParser.Parse(ClientHelloBuilder.Frame(tooShort)).Status);
        Assert.Equal(ClientHelloStatus.Invalid, ClientHelloParser.Parse(ClientHelloBuilder.Frame(tooLong)).Status);
        // Decided at the extensions length, before any extension arrives.
        Assert.Equal(ClientHelloStatus.Invalid, ClientHelloParser.Parse(ClientHelloBuilder.Frame(tooLong).AsSpan(0, 5 + extensionsLengthAt + 2)).Status);
    }

    [Fact]
    public void Parse_ExtensionOverrunningBlock_ReturnsInvalid()
    {
        var message = ClientHelloBuilder.BuildMessage(Spec() with { ServerName = null, Alpn = [], OtherExtensions = [(0x002b, [2, 3, 4])] });
        var extensionLengthAt = message.Length - 3 - 2;
        message[extensionLengthAt + 1] = 4;

        Assert.Equal(ClientHelloStatus.Invalid, ClientHelloParser.Parse(ClientHelloBuilder.Frame(message)).Status);
    }

    [Fact]
    public void Parse_MessageLongerThanItsExtensions_ReturnsInvalid()
    {
        var message = ClientHelloBuilder.BuildMessage(Spec()).Concat(new byte[] { 0 }).ToArray();
        message[3]++;

        Assert.Equal(ClientHelloStatus.Invalid, ClientHelloParser.Parse(ClientHelloBuilder.Frame(message)).Status);
    }

    [Fact]
    public void Parse_NoExtensionsBlock_SucceedsWithoutNameOrAlpn()
    {
        var data = Flight(Spec() with { ServerName = null, Alpn = [], OtherExtensions = [], OmitEmptyExtensions = true });

        var result = ClientHelloParser.Parse(data);

        Assert.Equal(ClientHelloStatus.Success, result.Status);
        Assert.Null(result.ServerName);
        Assert.Empty(result.Alpn);
        Assert.Equal(ClientHelloStatus.NeedMoreData, ClientHelloParser.Parse(data.AsSpan(0, data.Length - 1)).Status);
    }

    [Fact]
    public void Parse_UpperCaseServerName_ReturnsLowerCase()
    {
        var result = ClientHelloParser.Parse(Flight(Spec() with { ServerName = "API.Example.COM" }));

        Assert.Equal(ClientHelloStatus.Success, result.Status);
        Assert.Equal("api.example.com", result.ServerName);
    }

    [Theory]
    [InlineData("example.com.")]
    [InlineData(".example.com")]
    [InlineData("example..com")]
    [InlineData("exa mple.com")]
    [InlineData("example.com\u0000")]
    [InlineData("bücher.example")]
    [InlineData("host:443")]
    public void Parse_MalformedServerName_ReturnsInvalid(string name)
    {
        var spec = Spec() with { ServerName = "x" };
        var message = ClientHelloBuilder.BuildMessage(spec);
        var good = ClientHelloBuilder.BuildMessage(spec with { ServerName = null });

        // Build with raw bytes (UTF-8 for the non-ASCII case), bypassing the builder's ASCII encoding.
        var raw = Encoding.UTF8.GetBytes(name);
        var sni = new List<byte> { 0x00, 0x00 };
        sni.AddRange(U16(raw.Length + 5));
        sni.AddRange(U16(raw.Length + 3));
        sni.Add(0);
        sni.AddRange(U16(raw.Length));
        sni.AddRange(raw);
        var data = ClientHelloBuilder.Frame(AppendExtension(good, [.. sni]));

        Assert.Equal(ClientHelloStatus.Success, ClientHelloParser.Parse(ClientHelloBuilder.Frame(message)).Status);
        Assert.Equal(ClientHelloStatus.Invalid, ClientHelloParser.Parse(data).Status);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(254)]
    [InlineData(255)]
    public void Parse_ServerNameUpTo255Bytes_Succeeds(int length)
    {
        var name = HostNameOfLength(length);

        var result = ClientHelloParser.Parse(Flight(Spec() with { ServerName = name }));

        Assert.Equal(ClientHelloStatus.Success, result.Status);
        Assert.Equal(name, result.ServerName);
    }

    [Theory]
    [InlineData(256)]
    [InlineData(300)]
    [InlineData(4000)]
    public void Parse_ServerNameOver255Bytes_ReturnsInvalid(int length)
    {
        // DNS names stop at 255 bytes (RFC 1035); a longer SNI is refused as invalid, in one piece or byte by byte.
        var data = Flight(Spec() with { ServerName = HostNameOfLength(length) });

        Assert.Equal(ClientHelloStatus.Invalid, ClientHelloParser.Parse(data).Status);
        Assert.Equal(ClientHelloStatus.Invalid, ClientHelloParser.Parse(Segments.Bytewise(data)).Status);
    }

    /// <summary>A valid host name of exactly <paramref name="length"/> bytes: labels of 50 letters joined by dots, then the rest.</summary>
    private static string HostNameOfLength(int length)
    {
        var name = new StringBuilder(length);
        while (length - name.Length > 51)
        {
            name.Append('a', 50).Append('.');
        }

        name.Append('b', length - name.Length);
        return name.ToString();
    }

    [Fact]
    public void Parse_EmptyOrTwoHostNames_ReturnsInvalid()
    {
        var good = ClientHelloBuilder.BuildMessage(Spec() with { ServerName = null });
        byte[] empty = [0, 0, 0, 2, 0, 0];
        byte[] emptyName = [0, 0, 0, 5, 0, 3, 0, 0, 0];
        byte[] twoNames = [0, 0, 0, 10, 0, 8, 0, 0, 1, (byte)'a', 0, 0, 1, (byte)'b'];
        byte[] otherTypeOnly = [0, 0, 0, 6, 0, 4, 7, 0, 1, (byte)'a'];

        Assert.Equal(ClientHelloStatus.Invalid, ClientHelloParser.Parse(ClientHelloBuilder.Frame(AppendExtension(good, empty))).Status);
        Assert.Equal(ClientHelloStatus.Invalid, ClientHelloParser.Parse(ClientHelloBuilder.Frame(AppendExtension(good, emptyName))).Status);
        Assert.Equal(ClientHelloStatus.Invalid, ClientHelloParser.Parse(ClientHelloBuilder.Frame(AppendExtension(good, twoNames))).Status);
        var other = ClientHelloParser.Parse(ClientHelloBuilder.Frame(AppendExtension(good, otherTypeOnly)));
        Assert.Equal(ClientHelloStatus.Success, other.Status);
        Assert.Null(other.ServerName);
    }

    [Fact]
    public void Parse_DuplicateServerNameOrAlpnExtension_ReturnsInvalid()
    {
        var message = ClientHelloBuilder.BuildMessage(Spec() with { ServerName = "a.example", Alpn = ["h2"] });
        byte[] sni = [0, 0, 0, 6, 0, 4, 0, 0, 1, (byte)'b'];
        byte[] alpn = [0, 16, 0, 5, 0, 3, 2, (byte)'h', (byte)'3'];

        Assert.Equal(ClientHelloStatus.Invalid, ClientHelloParser.Parse(ClientHelloBuilder.Frame(AppendExtension(message, sni))).Status);
        Assert.Equal(ClientHelloStatus.Invalid, ClientHelloParser.Parse(ClientHelloBuilder.Frame(AppendExtension(message, alpn))).Status);
    }

    [Fact]
    public void Parse_MalformedAlpn_ReturnsInvalid()
    {
        var good = ClientHelloBuilder.BuildMessage(Spec() with { Alpn = [] });
        byte[] emptyList = [0, 16, 0, 2, 0, 0];
        byte[] emptyName = [0, 16, 0, 5, 0, 3, 0, 1, (byte)'h'];
        byte[] overrun = [0, 16, 0, 5, 0, 3, 3, (byte)'h', (byte)'2'];
        byte[] listMismatch = [0, 16, 0, 5, 0, 2, 2, (byte)'h', (byte)'2'];

        foreach (var extension in new[] { emptyList, emptyName, overrun, listMismatch })
        {
            Assert.Equal(ClientHelloStatus.Invalid, ClientHelloParser.Parse(ClientHelloBuilder.Frame(AppendExtension(good, extension))).Status);
        }
    }

    [Fact]
    public void Parse_MessageAtSizeLimit_SucceedsAcrossRecords()
    {
        var message = ClientHelloBuilder.BuildMessage(Spec());
        var padding = ClientHelloParser.MaxMessageLength - (message.Length - 4) - 4;
        var atLimit = AppendExtension(message, [0, 21, .. U16(padding), .. new byte[padding]]);
        Assert.Equal(ClientHelloParser.MaxMessageLength, atLimit.Length - 4);

        var data = ClientHelloBuilder.Frame(atLimit);
        var result = ClientHelloParser.Parse(data);

        Assert.Equal(ClientHelloStatus.Success, result.Status);
        Assert.Equal("www.example.com", result.ServerName);
        Assert.Equal(new[] { "h2", "http/1.1" }, result.Alpn);
        Assert.Equal(ClientHelloStatus.NeedMoreData, ClientHelloParser.Parse(data.AsSpan(0, data.Length - 1)).Status);
    }

    [Fact]
    public void Parse_MessageOverSizeLimit_ReturnsInvalidAtItsHeader()
    {
        var message = ClientHelloBuilder.BuildMessage(Spec());
        var padding = ClientHelloParser.MaxMessageLength - (message.Length - 4) - 4 + 1;
        var data = ClientHelloBuilder.Frame(AppendExtension(message, [0, 21, .. U16(padding), .. new byte[padding]]));

        Assert.Equal(ClientHelloStatus.Invalid, ClientHelloParser.Parse(data).Status);
        Assert.Equal(ClientHelloStatus.Invalid, ClientHelloParser.Parse(data.AsSpan(0, 9)).Status);
        Assert.Equal(ClientHelloStatus.NeedMoreData, ClientHelloParser.Parse(data.AsSpan(0, 8)).Status);
    }

    [Fact]
    public void Parse_AlpnWithNonAsciiBytes_KeepsEachByteAsOneChar()
    {
        var result = ClientHelloParser.Parse(Flight(Spec() with { Alpn = ["\u00ff\u0001x", "h2"] }));

        Assert.Equal(ClientHelloStatus.Success, result.Status);
        Assert.Equal(new[] { "\u00ff\u0001x", "h2" }, result.Alpn);
    }

    [Fact]
    public void Parse_IncompleteOrRejectedInput_DoesNotAllocate()
    {
        var fixture = ClientHelloFixtures.Get("chromium-sni.three-records.bin");
        var noSni = ClientHelloFixtures.Get("openssl-no-sni.bin");
        var bytewise = Segments.Bytewise(fixture.Bytes);
        var prefixes = Enumerable.Range(0, fixture.Bytes.Length).Select(n => bytewise.Slice(0, n)).ToArray();
        byte[] invalid = [0x16, 0x03, 0x01, 0x00, 0x00];
        var http = "GET / HTTP/1.1\r\n"u8.ToArray();

        void ParseAll()
        {
            for (var n = 0; n < fixture.Bytes.Length; n++)
            {
                ClientHelloParser.Parse(fixture.Bytes.AsSpan(0, n));
                ClientHelloParser.Parse(prefixes[n]);
            }

            ClientHelloParser.Parse(invalid);
            ClientHelloParser.Parse(http);
            ClientHelloParser.Parse(noSni.Bytes);
        }

        ParseAll();
        var before = GC.GetAllocatedBytesForCurrentThread();
        ParseAll();
        var allocated = GC.GetAllocatedBytesForCurrentThread() - before;

        Assert.Equal(0, allocated);
    }

    [Fact]
    public void Parse_Success_AllocatesOnlyTheResultStrings()
    {
        var fixture = ClientHelloFixtures.Get("chromium-sni.three-records.bin");
        var bytewise = Segments.Bytewise(fixture.Bytes);
        ClientHelloParser.Parse(bytewise);

        var before = GC.GetAllocatedBytesForCurrentThread();
        var result = ClientHelloParser.Parse(bytewise);
        var allocated = GC.GetAllocatedBytesForCurrentThread() - before;

        // "www.example.com" (~56 B), "h2" (~28 B), "http/1.1" (~40 B) and a two-element array (~40 B).
        Assert.Equal(ClientHelloStatus.Success, result.Status);
        Assert.InRange(allocated, 1, 256);
    }

    internal static void AssertYields(ClientHelloFixture fixture, ClientHelloResult result)
    {
        Assert.Equal(ClientHelloStatus.Success, result.Status);
        Assert.Equal(fixture.ServerName, result.ServerName);
        Assert.Equal(fixture.Alpn, result.Alpn);
    }

    private static ClientHelloSpec Spec() => new(
        ServerName: "www.example.com",
        Alpn: ["h2", "http/1.1"],
        OtherExtensions: [(0x000a, [0, 2, 0, 0x1d]), (0x002b, [2, 3, 4])],
        ServerNamePosition: 0,
        AlpnPosition: 1,
        SessionIdLength: 32,
        CipherSuiteCount: 3,
        CompressionMethodCount: 1,
        OmitEmptyExtensions: false);

    private static byte[] Flight(ClientHelloSpec spec) => ClientHelloBuilder.Frame(ClientHelloBuilder.BuildMessage(spec));

    private static byte[] U16(int value) => [(byte)(value >> 8), (byte)value];

    /// <summary>Where the extensions length sits in a handshake message (after session id, suites, compression).</summary>
    private static int ExtensionsLengthOffset(byte[] message)
    {
        var offset = 4 + 2 + 32;
        offset += 1 + message[offset];
        offset += 2 + ((message[offset] << 8) | message[offset + 1]);
        offset += 1 + message[offset];
        return offset;
    }

    /// <summary>Appends a raw extension (type, length, data already encoded) and fixes up the lengths.</summary>
    private static byte[] AppendExtension(byte[] message, byte[] extension)
    {
        var extensionsLengthAt = ExtensionsLengthOffset(message);
        var result = message.Concat(extension).ToArray();
        var extensionsLength = ((message[extensionsLengthAt] << 8) | message[extensionsLengthAt + 1]) + extension.Length;
        result[extensionsLengthAt] = (byte)(extensionsLength >> 8);
        result[extensionsLengthAt + 1] = (byte)extensionsLength;
        var bodyLength = result.Length - 4;
        result[1] = (byte)(bodyLength >> 16);
        result[2] = (byte)(bodyLength >> 8);
        result[3] = (byte)bodyLength;
        return result;
    }
}
