// An HTTP/2 (h2c, prior knowledge) client that sends header names and values exactly as given, which HttpClient and Node refuse to do.
using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace Mesh.FunctionalTests.Upstream.Conformance;

/// <summary>What a raw HTTP/2 exchange ended in: a response, a stream reset, or the connection's end.</summary>
internal sealed record Http2Result(int Status, byte[] Body, int? ResetCode, string? Failure)
{
    /// <summary>Refused: answered 400, or the stream or connection was torn down before any response.</summary>
    public bool RefusedBeforeForwarding => Status == 400 || ResetCode is not null || Failure is not null;

    public override string ToString() => ResetCode is { } code ? $"RST_STREAM {code}" : Failure is { } failure ? $"failed ({failure})" : $"{Status}, {Encoding.Latin1.GetString(Body)}";
}

/// <summary>
/// One request on a fresh h2c connection: headers are HPACK literals without Huffman coding, so
/// every byte of every name and value reaches the server as written. Enough of HPACK is decoded
/// (static and dynamic table, plain literals, as Kestrel encodes) to read the response status.
/// </summary>
internal static class RawHttp2Client
{
    private static readonly string[] StaticNames =
    [
        "", ":authority", ":method", ":method", ":path", ":path", ":scheme", ":scheme", ":status", ":status", ":status", ":status",
        ":status", ":status", ":status", "accept-charset", "accept-encoding", "accept-language", "accept-ranges", "accept",
        "access-control-allow-origin", "age", "allow", "authorization", "cache-control", "content-disposition",
        "content-encoding", "content-language", "content-length", "content-location", "content-range", "content-type",
        "cookie", "date", "etag", "expect", "expires", "from", "host", "if-match", "if-modified-since", "if-none-match",
        "if-range", "if-unmodified-since", "last-modified", "link", "location", "max-forwards", "proxy-authenticate",
        "proxy-authorization", "range", "referer", "refresh", "retry-after", "server", "set-cookie",
        "strict-transport-security", "transfer-encoding", "user-agent", "vary", "via", "www-authenticate",
    ];

    private static readonly Dictionary<int, string> StaticValues = new()
    {
        [2] = "GET", [3] = "POST", [4] = "/", [5] = "/index.html", [6] = "http", [7] = "https", [8] = "200", [9] = "204",
        [10] = "206", [11] = "304", [12] = "400", [13] = "404", [14] = "500", [16] = "gzip, deflate",
    };

    /// <summary>Sends <paramref name="headers"/> (pseudo-headers first, as given) and <paramref name="body"/> on stream 1 of a new connection to <paramref name="port"/>.</summary>
    public static async Task<Http2Result> SendAsync(int port, IReadOnlyList<(string Name, string Value)> headers, byte[]? body = null)
    {
        using var deadline = new CancellationTokenSource(ConformanceClients.ExchangeDeadline);
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        try
        {
            await socket.ConnectAsync(new IPEndPoint(IPAddress.Loopback, port), deadline.Token);
            using var output = new MemoryStream();
            output.Write("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"u8);

            // SETTINGS: a 16 MiB stream window, then 16 MiB more for the connection, so no body waits on flow control.
            var settings = new byte[6];
            BinaryPrimitives.WriteUInt16BigEndian(settings, 0x4);
            BinaryPrimitives.WriteUInt32BigEndian(settings.AsSpan(2), 16 * 1024 * 1024);
            WriteFrame(output, 0x4, 0, 0, settings);
            var increment = new byte[4];
            BinaryPrimitives.WriteUInt32BigEndian(increment, 16 * 1024 * 1024);
            WriteFrame(output, 0x8, 0, 0, increment);

            using var block = new MemoryStream();
            foreach (var (name, value) in headers)
            {
                // Literal header field without indexing, new name; lengths as 7-bit prefix integers, no Huffman.
                block.WriteByte(0);
                WriteString(block, Encoding.Latin1.GetBytes(name));
                WriteString(block, Encoding.Latin1.GetBytes(value));
            }

            WriteFrame(output, 0x1, (byte)(0x4 | (body is null ? 0x1 : 0)), 1, block.ToArray());
            if (body is not null)
            {
                for (var offset = 0; offset < body.Length || offset == 0; offset += 16384)
                {
                    var piece = body.AsSpan(offset, Math.Min(16384, body.Length - offset));
                    WriteFrame(output, 0x0, (byte)(offset + piece.Length >= body.Length ? 0x1 : 0), 1, piece.ToArray());
                    if (body.Length == 0)
                    {
                        break;
                    }
                }
            }

            await socket.SendAsync(output.ToArray(), SocketFlags.None, deadline.Token);
            return await ReadResponseAsync(socket, deadline.Token);
        }
        catch (Exception ex) when (ex is SocketException or IOException or OperationCanceledException)
        {
            return new Http2Result(0, [], null, $"{ex.GetType().Name}: {ex.Message}");
        }
    }

    private static async Task<Http2Result> ReadResponseAsync(Socket socket, CancellationToken cancellationToken)
    {
        var dynamicTable = new List<(string Name, string Value)>();
        using var headerBlock = new MemoryStream();
        using var body = new MemoryStream();
        var status = 0;
        var header = new byte[9];
        while (true)
        {
            await ReadExactlyAsync(socket, header, cancellationToken);
            var length = (header[0] << 16) | (header[1] << 8) | header[2];
            var type = header[3];
            var flags = header[4];
            var stream = BinaryPrimitives.ReadInt32BigEndian(header.AsSpan(5)) & 0x7FFFFFFF;
            var payload = new byte[length];
            await ReadExactlyAsync(socket, payload, cancellationToken);
            switch (type)
            {
                case 0x4 when (flags & 0x1) == 0:
                    await socket.SendAsync(Frame(0x4, 0x1, 0, []), SocketFlags.None, cancellationToken);
                    break;
                case 0x6 when (flags & 0x1) == 0:
                    await socket.SendAsync(Frame(0x6, 0x1, 0, payload), SocketFlags.None, cancellationToken);
                    break;
                case 0x7:
                    var last = BinaryPrimitives.ReadInt32BigEndian(payload) & 0x7FFFFFFF;
                    if (last < 1 || status == 0)
                    {
                        return new Http2Result(0, [], null, $"GOAWAY, error {BinaryPrimitives.ReadInt32BigEndian(payload.AsSpan(4))}");
                    }

                    break;
                case 0x3 when stream == 1:
                    return new Http2Result(status, body.ToArray(), BinaryPrimitives.ReadInt32BigEndian(payload), null);
                case 0x1 or 0x9 when stream == 1:
                    var fragment = payload.AsSpan();
                    if (type == 0x1 && (flags & 0x8) != 0)
                    {
                        fragment = fragment[1..^payload[0]];
                    }

                    if (type == 0x1 && (flags & 0x20) != 0)
                    {
                        fragment = fragment[5..];
                    }

                    headerBlock.Write(fragment);
                    if ((flags & 0x4) != 0)
                    {
                        foreach (var (name, value) in Decode(headerBlock.ToArray(), dynamicTable))
                        {
                            if (name == ":status")
                            {
                                var code = int.Parse(value, System.Globalization.CultureInfo.InvariantCulture);
                                status = code >= 200 ? code : status;
                            }
                        }

                        headerBlock.SetLength(0);
                    }

                    if ((flags & 0x1) != 0 && status >= 200)
                    {
                        return new Http2Result(status, body.ToArray(), null, null);
                    }

                    break;
                case 0x0 when stream == 1:
                    var data = payload.AsSpan();
                    if ((flags & 0x8) != 0)
                    {
                        data = data[1..^payload[0]];
                    }

                    body.Write(data);
                    if ((flags & 0x1) != 0)
                    {
                        return new Http2Result(status, body.ToArray(), null, null);
                    }

                    break;
            }
        }
    }

    /// <summary>HPACK decoding of what Kestrel sends: indexed fields, literals with or without indexing, size updates; no Huffman.</summary>
    private static List<(string Name, string Value)> Decode(byte[] block, List<(string Name, string Value)> table)
    {
        var fields = new List<(string Name, string Value)>();
        var at = 0;
        while (at < block.Length)
        {
            var first = block[at];
            if ((first & 0x80) != 0)
            {
                var index = ReadInteger(block, ref at, 7);
                fields.Add(Lookup(index, table));
            }
            else if ((first & 0xE0) == 0x20)
            {
                ReadInteger(block, ref at, 5);
            }
            else
            {
                var indexing = (first & 0xC0) == 0x40;
                var index = ReadInteger(block, ref at, indexing ? 6 : 4);
                var name = index == 0 ? ReadString(block, ref at) : Lookup(index, table).Name;
                var value = ReadString(block, ref at);
                fields.Add((name, value));
                if (indexing)
                {
                    table.Insert(0, (name, value));
                }
            }
        }

        return fields;
    }

    private static (string Name, string Value) Lookup(int index, List<(string Name, string Value)> table) =>
        index < StaticNames.Length ? (StaticNames[index], StaticValues.GetValueOrDefault(index, "")) : table[index - StaticNames.Length];

    private static int ReadInteger(byte[] block, ref int at, int prefix)
    {
        var max = (1 << prefix) - 1;
        var value = block[at++] & max;
        if (value < max)
        {
            return value;
        }

        var shift = 0;
        byte next;
        do
        {
            next = block[at++];
            value += (next & 0x7F) << shift;
            shift += 7;
        }
        while ((next & 0x80) != 0);
        return value;
    }

    private static string ReadString(byte[] block, ref int at)
    {
        if ((block[at] & 0x80) != 0)
        {
            throw new IOException("a Huffman-coded HPACK string (not expected from Kestrel)");
        }

        var length = ReadInteger(block, ref at, 7);
        var text = Encoding.Latin1.GetString(block, at, length);
        at += length;
        return text;
    }

    private static void WriteString(Stream output, byte[] bytes)
    {
        // 7-bit prefix integer with the Huffman bit clear.
        var length = bytes.Length;
        if (length < 127)
        {
            output.WriteByte((byte)length);
        }
        else
        {
            output.WriteByte(127);
            length -= 127;
            while (length >= 128)
            {
                output.WriteByte((byte)((length & 0x7F) | 0x80));
                length >>= 7;
            }

            output.WriteByte((byte)length);
        }

        output.Write(bytes);
    }

    private static void WriteFrame(Stream output, byte type, byte flags, int stream, byte[] payload) => output.Write(Frame(type, flags, stream, payload));

    private static byte[] Frame(byte type, byte flags, int stream, byte[] payload)
    {
        var frame = new byte[9 + payload.Length];
        frame[0] = (byte)(payload.Length >> 16);
        frame[1] = (byte)(payload.Length >> 8);
        frame[2] = (byte)payload.Length;
        frame[3] = type;
        frame[4] = flags;
        BinaryPrimitives.WriteInt32BigEndian(frame.AsSpan(5), stream);
        payload.CopyTo(frame, 9);
        return frame;
    }

    private static async Task ReadExactlyAsync(Socket socket, byte[] buffer, CancellationToken cancellationToken)
    {
        var filled = 0;
        while (filled < buffer.Length)
        {
            var read = await socket.ReceiveAsync(buffer.AsMemory(filled), SocketFlags.None, cancellationToken);
            if (read == 0)
            {
                throw new IOException("the connection closed");
            }

            filled += read;
        }
    }
}
