// Property tests (CsCheck) for ClientHelloParser: random bytes, mutated real hellos, generated hellos round-tripped.
using CsCheck;
using Mesh.Sidecar.L4.Tls;
using Xunit.Abstractions;

namespace Mesh.Sidecar.Tests.L4.Tls;

public sealed class ClientHelloParserPropertyTests(ITestOutputHelper output)
{
    // 110,000 cases in all.
    private const long RandomBytesIterations = 40_000;
    private const long MutationIterations = 40_000;
    private const long RoundTripIterations = 30_000;

    private static readonly Gen<int[]> SegmentCuts = Gen.Int[0, 2100].Array[0, 6];

    /// <summary>Random input, weighted towards bytes that get past the first checks.</summary>
    private static readonly Gen<byte[]> RandomInput = Gen.Frequency<byte[]>(
        (2, Gen.Byte.Array[0, 64]),
        (3, Gen.Byte.Array[0, 300].Select(tail => Concat([0x16, 0x03], tail))),
        (3, Gen.Select(Gen.Byte[0, 4], Gen.Byte.Array[0, 400], (minor, tail) => Concat(
            [0x16, 0x03, minor, .. U16(tail.Length + 6), 0x01, 0x00, .. U16(tail.Length + 2), 0x03, 0x03],
            tail))));

    [Fact]
    public void Parse_RandomBytes_NeverThrowsAndIsPrefixConsistent()
    {
        var seen = new int[4];
        Gen.Select(RandomInput, Gen.Int[0, 500], SegmentCuts)
            .Sample((data, cut, cuts) => Count(seen, AssertConsistent(data, cut, cuts)), writeLine: output.WriteLine, iter: RandomBytesIterations);

        Report(seen, RandomBytesIterations);
        Assert.All(new[] { ClientHelloStatus.NeedMoreData, ClientHelloStatus.NotTls, ClientHelloStatus.Invalid }, s => Assert.True(seen[(int)s] > 0, $"no {s}"));
    }

    [Fact]
    public void Parse_MutatedFixtures_NeverThrowsAndIsPrefixConsistent()
    {
        var fixtures = ClientHelloFixtures.All;
        var mutation = Gen.Select(
            Gen.Int[0, 3],
            Gen.Frequency<int>((1, Gen.Int[0, 120]), (2, Gen.Int[0, int.MaxValue])),
            Gen.Byte[1, 255]);
        var gen = Gen.Select(Gen.Int[0, fixtures.Count - 1], mutation.Array[1, 4], Gen.Int[0, 2100], SegmentCuts);

        var seen = new int[4];
        gen.Sample(
            (index, mutations, cut, cuts) =>
            {
                var data = Mutate(fixtures[index].Bytes, mutations);
                Count(seen, AssertConsistent(data, cut, cuts));
            },
            writeLine: output.WriteLine,
            iter: MutationIterations);

        Report(seen, MutationIterations);
        Assert.All(Enum.GetValues<ClientHelloStatus>(), s => Assert.True(seen[(int)s] > 0, $"no {s}"));
    }

    [Fact]
    public void Parse_GeneratedClientHello_RoundTripsInOneToFourRecords()
    {
        var label = Gen.Char["abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_"].Array[1, 20].Select(c => new string(c));
        var serverName = Gen.Frequency<string?>(
            (1, Gen.Const((string?)null)),
            (6, label.Array[1, 5].Select(labels => (string?)string.Join('.', labels))));
        var protocol = Gen.Frequency<char[]>(
            (4, Gen.Char["abcdefghijklmnopqrstuvwxyz0123456789/.-"].Array[1, 12]),
            (1, Gen.Char['\u0000', '\u00ff'].Array[1, 255]))
            .Select(c => new string(c));
        var extensionType = Gen.UShort.Select(t => t is 0 or 16 ? (ushort)(t + 1) : t);
        var extension = Gen.Select(extensionType, Gen.Byte.Array[0, 300], (type, data) => (type, data));
        var spec = Gen.Select(
            serverName,
            protocol.Array[0, 5],
            extension.Array[0, 8],
            Gen.Int[0, 8],
            Gen.Int[0, 8],
            Gen.Int[0, 32],
            Gen.Int[1, 40],
            Gen.Int[1, 3],
            Gen.Bool,
            (name, alpn, extensions, namePosition, alpnPosition, sessionId, suites, compression, omit) => new ClientHelloSpec(
                name,
                alpn,
                extensions.Select(e => (e.type, e.data)).ToArray(),
                namePosition,
                alpnPosition,
                sessionId,
                suites,
                compression,
                omit));
        var gen = Gen.Select(spec, Gen.Int[0, int.MaxValue].Array[0, 3], Gen.UShort[0x0300, 0x0304], Gen.Int[0, int.MaxValue], SegmentCuts);

        gen.Sample(
            (spec, rawCuts, recordVersion, prefixSeed, cuts) =>
            {
                var message = ClientHelloBuilder.BuildMessage(spec);
                var recordCuts = rawCuts.Select(c => 1 + (c % (message.Length - 1))).Distinct().Order().ToArray();
                var data = ClientHelloBuilder.Frame(message, recordCuts, recordVersion);
                var expectedName = spec.ServerName?.ToLowerInvariant();

                var whole = ClientHelloParser.Parse(data);
                Assert.Equal(ClientHelloStatus.Success, whole.Status);
                Assert.Equal(expectedName, whole.ServerName);
                Assert.Equal(spec.Alpn, whole.Alpn);

                var segmented = ClientHelloParser.Parse(Segments.Split(data, cuts.Select(c => c % (data.Length + 1))));
                Assert.Equal(ClientHelloStatus.Success, segmented.Status);
                Assert.Equal(expectedName, segmented.ServerName);
                Assert.Equal(spec.Alpn, segmented.Alpn);

                var prefix = prefixSeed % data.Length;
                Assert.Equal(ClientHelloStatus.NeedMoreData, ClientHelloParser.Parse(data.AsSpan(0, prefix)).Status);
            },
            writeLine: output.WriteLine,
            iter: RoundTripIterations);
    }

    /// <summary>
    /// Parse never throws, returns a defined status, agrees between a span and a multi-segment sequence,
    /// and never changes its mind: a decision on a prefix is the decision on the whole.
    /// </summary>
    private static ClientHelloStatus AssertConsistent(byte[] data, int cut, int[] segmentCuts)
    {
        var whole = ClientHelloParser.Parse(data);
        Assert.True(Enum.IsDefined(whole.Status));
        if (whole.Status == ClientHelloStatus.Success)
        {
            Assert.True(whole.ServerName is null || whole.ServerName.Length is > 0 and <= ClientHelloParser.MaxHostNameLength);
            Assert.True(whole.ServerName is null || whole.ServerName.All(c => c is (>= 'a' and <= 'z') or (>= '0' and <= '9') or '-' or '_' or '.'));
        }

        AssertSame(whole, ClientHelloParser.Parse(Segments.Split(data, segmentCuts)));

        var prefix = ClientHelloParser.Parse(data.AsSpan(0, Math.Min(cut, data.Length)));
        if (prefix.Status != ClientHelloStatus.NeedMoreData)
        {
            AssertSame(prefix, whole);
        }

        return whole.Status;
    }

    private static void Count(int[] seen, ClientHelloStatus status) => Interlocked.Increment(ref seen[(int)status]);

    private void Report(int[] seen, long iterations)
    {
        Assert.Equal(iterations, seen.Sum());
        output.WriteLine(string.Join(", ", Enum.GetValues<ClientHelloStatus>().Select(s => $"{s}: {seen[(int)s]}")));
    }

    private static void AssertSame(ClientHelloResult expected, ClientHelloResult actual)
    {
        Assert.Equal(expected.Status, actual.Status);
        Assert.Equal(expected.ServerName, actual.ServerName);
        Assert.Equal(expected.Alpn, actual.Alpn);
    }

    private static byte[] Mutate(byte[] original, (int Kind, int Position, byte Value)[] mutations)
    {
        var data = new List<byte>(original);
        foreach (var (kind, position, value) in mutations)
        {
            var at = position % (data.Count + 1);
            switch (kind)
            {
                case 0 when at < data.Count:
                    data[at] ^= value; // flip bits
                    break;
                case 1:
                    data.Insert(at, value);
                    break;
                case 2 when at < data.Count:
                    data.RemoveAt(at);
                    break;
                case 3:
                    data.RemoveRange(at, data.Count - at); // truncate
                    break;
            }
        }

        return data.ToArray();
    }

    private static byte[] Concat(byte[] head, byte[] tail) => [.. head, .. tail];

    private static byte[] U16(int value) => [(byte)(value >> 8), (byte)value];
}
