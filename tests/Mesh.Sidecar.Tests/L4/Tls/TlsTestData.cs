// Test data for the ClientHello parser: the shared real-client captures, a ClientHello builder, multi-segment sequences.
using System.Buffers;
using System.Buffers.Binary;
using System.Text;
using System.Text.Json;

namespace Mesh.Sidecar.Tests.L4.Tls;

/// <summary>One capture from tests/fixtures/tls-clienthellos and the values its index says it must yield.</summary>
public sealed record ClientHelloFixture(string Name, byte[] Bytes, string? ServerName, IReadOnlyList<string> Alpn, int TlsRecords);

/// <summary>The real ClientHellos in tests/fixtures/tls-clienthellos, read in place.</summary>
public static class ClientHelloFixtures
{
    private static readonly Lazy<IReadOnlyList<ClientHelloFixture>> Loaded = new(Load);

    public static IReadOnlyList<ClientHelloFixture> All => Loaded.Value;

    public static TheoryData<string> Names
    {
        get
        {
            var data = new TheoryData<string>();
            foreach (var fixture in All)
            {
                data.Add(fixture.Name);
            }

            return data;
        }
    }

    public static ClientHelloFixture Get(string name) => All.Single(f => f.Name == name);

    public static string Directory => Mesh.Tests.TestFixtures.Path("tls-clienthellos");

    private static IReadOnlyList<ClientHelloFixture> Load()
    {
        var dir = Directory;
        using var index = JsonDocument.Parse(File.ReadAllBytes(Path.Combine(dir, "index.json")));
        var fixtures = new List<ClientHelloFixture>();
        foreach (var entry in index.RootElement.EnumerateObject())
        {
            var value = entry.Value;
            var serverName = value.GetProperty("server_name").ValueKind == JsonValueKind.Null
                ? null
                : value.GetProperty("server_name").GetString();
            var alpn = value.GetProperty("alpn").EnumerateArray().Select(a => a.GetString()!).ToArray();
            var bytes = File.ReadAllBytes(Path.Combine(dir, entry.Name));
            Assert.Equal(value.GetProperty("bytes").GetInt32(), bytes.Length);
            fixtures.Add(new ClientHelloFixture(entry.Name, bytes, serverName, alpn, value.GetProperty("tls_records").GetInt32()));
        }

        Assert.NotEmpty(fixtures);
        return fixtures.OrderBy(f => f.Name, StringComparer.Ordinal).ToArray();
    }
}

/// <summary>What to put in a generated ClientHello.</summary>
public sealed record ClientHelloSpec(
    string? ServerName,
    IReadOnlyList<string> Alpn,
    IReadOnlyList<(ushort Type, byte[] Data)> OtherExtensions,
    int ServerNamePosition,
    int AlpnPosition,
    int SessionIdLength,
    int CipherSuiteCount,
    int CompressionMethodCount,
    bool OmitEmptyExtensions);

/// <summary>Builds ClientHello handshake messages and frames them into TLS records.</summary>
public static class ClientHelloBuilder
{
    /// <summary>The handshake message (type, 24-bit length, body).</summary>
    public static byte[] BuildMessage(ClientHelloSpec spec)
    {
        var body = new List<byte> { 0x03, 0x03 };
        for (var i = 0; i < 32; i++)
        {
            body.Add((byte)(i * 7));
        }

        body.Add((byte)spec.SessionIdLength);
        for (var i = 0; i < spec.SessionIdLength; i++)
        {
            body.Add((byte)(0xA0 + i));
        }

        AddUInt16(body, spec.CipherSuiteCount * 2);
        for (var i = 0; i < spec.CipherSuiteCount; i++)
        {
            AddUInt16(body, 0x1301 + i);
        }

        body.Add((byte)spec.CompressionMethodCount);
        for (var i = 0; i < spec.CompressionMethodCount; i++)
        {
            body.Add((byte)i);
        }

        var extensions = new List<(ushort Type, byte[] Data)>(spec.OtherExtensions);
        if (spec.ServerName is not null)
        {
            var name = Encoding.ASCII.GetBytes(spec.ServerName);
            var sni = new List<byte>();
            AddUInt16(sni, name.Length + 3);
            sni.Add(0);
            AddUInt16(sni, name.Length);
            sni.AddRange(name);
            extensions.Insert(Math.Clamp(spec.ServerNamePosition, 0, extensions.Count), (0, sni.ToArray()));
        }

        if (spec.Alpn.Count > 0)
        {
            var list = new List<byte>();
            foreach (var protocol in spec.Alpn)
            {
                list.Add((byte)protocol.Length);
                list.AddRange(Encoding.Latin1.GetBytes(protocol));
            }

            var alpn = new List<byte>();
            AddUInt16(alpn, list.Count);
            alpn.AddRange(list);
            extensions.Insert(Math.Clamp(spec.AlpnPosition, 0, extensions.Count), (16, alpn.ToArray()));
        }

        if (extensions.Count > 0 || !spec.OmitEmptyExtensions)
        {
            var block = new List<byte>();
            foreach (var (type, data) in extensions)
            {
                AddUInt16(block, type);
                AddUInt16(block, data.Length);
                block.AddRange(data);
            }

            AddUInt16(body, block.Count);
            body.AddRange(block);
        }

        var message = new byte[4 + body.Count];
        message[0] = 1;
        message[1] = (byte)(body.Count >> 16);
        message[2] = (byte)(body.Count >> 8);
        message[3] = (byte)body.Count;
        body.CopyTo(message, 4);
        return message;
    }

    /// <summary>Frames a handshake message into records cut at the given (strictly increasing, inner) offsets.</summary>
    public static byte[] Frame(ReadOnlySpan<byte> message, IReadOnlyList<int> cuts, ushort recordVersion = 0x0301)
    {
        var output = new List<byte>();
        var start = 0;
        foreach (var cut in cuts.Append(message.Length))
        {
            var fragment = message[start..cut];
            output.Add(22);
            AddUInt16(output, recordVersion);
            AddUInt16(output, fragment.Length);
            output.AddRange(fragment.ToArray());
            start = cut;
        }

        return output.ToArray();
    }

    /// <summary>A single-record (or, when longer than 2^14, minimally fragmented) flight.</summary>
    public static byte[] Frame(ReadOnlySpan<byte> message)
    {
        var cuts = new List<int>();
        for (var cut = 16384; cut < message.Length; cut += 16384)
        {
            cuts.Add(cut);
        }

        return Frame(message, cuts);
    }

    /// <summary>The handshake message carried by a flight of handshake records.</summary>
    public static byte[] Unframe(ReadOnlySpan<byte> records)
    {
        var message = new List<byte>();
        while (records.Length > 0)
        {
            var length = BinaryPrimitives.ReadUInt16BigEndian(records[3..]);
            message.AddRange(records.Slice(5, length).ToArray());
            records = records[(5 + length)..];
        }

        return message.ToArray();
    }

    private static void AddUInt16(List<byte> buffer, int value)
    {
        buffer.Add((byte)(value >> 8));
        buffer.Add((byte)value);
    }
}

/// <summary>ReadOnlySequence helpers: the same bytes as several segments, as a pipe hands them out.</summary>
public static class Segments
{
    /// <summary>The bytes split at the given strictly increasing inner offsets (empty segments allowed at equal offsets).</summary>
    public static ReadOnlySequence<byte> Split(byte[] data, IEnumerable<int> cuts)
    {
        var bounds = cuts.Where(c => c >= 0 && c <= data.Length).Order().Append(data.Length).ToArray();
        Segment? first = null;
        Segment? last = null;
        var start = 0;
        foreach (var end in bounds)
        {
            var memory = new ReadOnlyMemory<byte>(data, start, end - start);
            if (first is null)
            {
                first = last = new Segment(memory, 0);
            }
            else
            {
                last = last!.Append(memory);
            }

            start = end;
        }

        return new ReadOnlySequence<byte>(first!, 0, last!, last!.Memory.Length);
    }

    /// <summary>One segment per byte.</summary>
    public static ReadOnlySequence<byte> Bytewise(byte[] data) => Split(data, Enumerable.Range(1, Math.Max(0, data.Length - 1)));

    private sealed class Segment : ReadOnlySequenceSegment<byte>
    {
        public Segment(ReadOnlyMemory<byte> memory, long runningIndex)
        {
            Memory = memory;
            RunningIndex = runningIndex;
        }

        public Segment Append(ReadOnlyMemory<byte> memory)
        {
            var next = new Segment(memory, RunningIndex + Memory.Length);
            Next = next;
            return next;
        }
    }
}
