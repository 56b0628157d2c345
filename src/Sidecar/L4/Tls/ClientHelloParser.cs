// Peeks a TLS ClientHello (without terminating TLS) for SNI routing: server name and ALPN from a possibly partial first flight.
using System.Buffers;

namespace Mesh.Sidecar.L4.Tls;

/// <summary>
/// Parses the first flight of a TLS client far enough to route it: the host_name of the server_name
/// extension (RFC 6066 §3) and the ALPN protocol list (RFC 7301), for SNI-routed passthrough.
/// </summary>
/// <remarks>
/// <para>
/// The parser is stateless: call it on all the bytes received so far, which need not be a whole record
/// nor a whole handshake message. The ClientHello may be fragmented across several handshake records
/// (RFC 8446 §5.1), each of which may arrive split at any byte. The input is never modified, so the
/// peeked bytes can be relayed to the backend as they are.
/// </para>
/// <para>
/// Decisions are made on the bytes as soon as they are visible: a non-handshake first record is
/// <see cref="ClientHelloStatus.NotTls"/> from its first byte, a zero-length record, a handshake type
/// other than ClientHello or a length that overruns its enclosing structure is
/// <see cref="ClientHelloStatus.Invalid"/> as soon as it is read. A decision never changes when more
/// bytes are appended, so <see cref="ClientHelloStatus.NeedMoreData"/> means every byte so far is
/// consistent with a valid ClientHello. <see cref="ClientHelloStatus.Success"/> comes as soon as the last
/// byte of the ClientHello message is in; whatever follows it (the rest of its record, later records) is
/// not examined.
/// </para>
/// <para>
/// It never throws, never reads past its input and allocates nothing but the strings and the ALPN array
/// it returns on <see cref="ClientHelloStatus.Success"/>.
/// </para>
/// </remarks>
internal static class ClientHelloParser
{
    /// <summary>The largest ClientHello body accepted; longer messages are <see cref="ClientHelloStatus.Invalid"/>.</summary>
    internal const int MaxMessageLength = 64 * 1024;

    /// <summary>The largest TLSPlaintext fragment (RFC 8446 §5.1).</summary>
    internal const int MaxRecordLength = 1 << 14;

    /// <summary>The largest host_name accepted (a DNS name is at most 253 characters).</summary>
    internal const int MaxHostNameLength = 255;

    private const byte HandshakeContentType = 22;
    private const byte ClientHelloType = 1;
    private const byte TlsMajorVersion = 3;
    private const int RecordHeaderLength = 5;
    private const int RandomLength = 32;
    private const int MaxSessionIdLength = 32;
    private const ushort ServerNameExtension = 0;
    private const ushort AlpnExtension = 16;
    private const byte HostNameType = 0;

    // legacy_version(2) random(32) session_id<0..32>(1) cipher_suites<2..>(2+2) compression_methods<1..>(1+1).
    private const int MinBodyLength = 2 + RandomLength + 1 + 2 + 2 + 1 + 1;

    /// <summary>Parses the bytes received so far.</summary>
    /// <param name="data">The start of the connection's byte stream (one or more TLS records, possibly partial).</param>
    public static ClientHelloResult Parse(ReadOnlySpan<byte> data)
    {
        var input = new SpanInput(data);
        return ParseCore(ref input);
    }

    /// <summary>Parses the bytes received so far, as a pipe reader hands them out.</summary>
    /// <param name="data">The start of the connection's byte stream (one or more TLS records, possibly partial).</param>
    public static ClientHelloResult Parse(ReadOnlySequence<byte> data)
    {
        if (data.IsSingleSegment)
        {
            return Parse(data.FirstSpan);
        }

        var input = new SequenceInput(data);
        return ParseCore(ref input);
    }

    private static ClientHelloResult ParseCore<TInput>(ref TInput input)
        where TInput : IByteInput, allows ref struct
    {
        var cursor = default(Cursor);
        var status = ParseMessage(ref input, ref cursor, out var found);
        if (status != ClientHelloStatus.Success)
        {
            return ClientHelloResult.FromStatus(status);
        }

        return Materialize(ref input, in found);
    }

    /// <summary>Walks the whole ClientHello, validating it and noting where the server name and ALPN list are.</summary>
    private static ClientHelloStatus ParseMessage<TInput>(ref TInput input, ref Cursor c, out Found found)
        where TInput : IByteInput, allows ref struct
    {
        found = default;
        found.HostNameLength = -1;

        // Handshake header: msg_type(1) length(3).
        var status = c.ReadByte(ref input, out var messageType);
        if (status != ClientHelloStatus.Success)
        {
            return status;
        }

        if (messageType != ClientHelloType)
        {
            return ClientHelloStatus.Invalid;
        }

        status = c.ReadUInt24(ref input, out var length);
        if (status != ClientHelloStatus.Success)
        {
            return status;
        }

        if (length < MinBodyLength || length > MaxMessageLength)
        {
            return ClientHelloStatus.Invalid;
        }

        var end = c.Offset + length;

        // legacy_version: 0x03xx.
        status = c.ReadByte(ref input, out var major);
        if (status != ClientHelloStatus.Success)
        {
            return status;
        }

        if (major != TlsMajorVersion)
        {
            return ClientHelloStatus.Invalid;
        }

        status = c.Skip(ref input, 1 + RandomLength);
        if (status != ClientHelloStatus.Success)
        {
            return status;
        }

        // legacy_session_id<0..32>.
        status = c.ReadByte(ref input, out var sessionIdLength);
        if (status != ClientHelloStatus.Success)
        {
            return status;
        }

        if (sessionIdLength > MaxSessionIdLength || !c.Fits(sessionIdLength, end))
        {
            return ClientHelloStatus.Invalid;
        }

        status = c.Skip(ref input, sessionIdLength);
        if (status != ClientHelloStatus.Success)
        {
            return status;
        }

        // cipher_suites<2..2^16-2>, two bytes each.
        if (!c.Fits(2, end))
        {
            return ClientHelloStatus.Invalid;
        }

        status = c.ReadUInt16(ref input, out var cipherSuitesLength);
        if (status != ClientHelloStatus.Success)
        {
            return status;
        }

        if (cipherSuitesLength < 2 || (cipherSuitesLength & 1) != 0 || !c.Fits(cipherSuitesLength, end))
        {
            return ClientHelloStatus.Invalid;
        }

        status = c.Skip(ref input, cipherSuitesLength);
        if (status != ClientHelloStatus.Success)
        {
            return status;
        }

        // legacy_compression_methods<1..2^8-1>.
        if (!c.Fits(1, end))
        {
            return ClientHelloStatus.Invalid;
        }

        status = c.ReadByte(ref input, out var compressionLength);
        if (status != ClientHelloStatus.Success)
        {
            return status;
        }

        if (compressionLength < 1 || !c.Fits(compressionLength, end))
        {
            return ClientHelloStatus.Invalid;
        }

        status = c.Skip(ref input, compressionLength);
        if (status != ClientHelloStatus.Success)
        {
            return status;
        }

        // Extensions may be absent altogether (TLS 1.2 and earlier); when present they fill the message exactly.
        if (c.Offset == end)
        {
            return ClientHelloStatus.Success;
        }

        if (!c.Fits(2, end))
        {
            return ClientHelloStatus.Invalid;
        }

        status = c.ReadUInt16(ref input, out var extensionsLength);
        if (status != ClientHelloStatus.Success)
        {
            return status;
        }

        if (c.Offset + extensionsLength != end)
        {
            return ClientHelloStatus.Invalid;
        }

        var sawServerName = false;
        var sawAlpn = false;
        while (c.Offset < end)
        {
            if (!c.Fits(4, end))
            {
                return ClientHelloStatus.Invalid;
            }

            status = c.ReadUInt16(ref input, out var extensionType);
            if (status != ClientHelloStatus.Success)
            {
                return status;
            }

            status = c.ReadUInt16(ref input, out var extensionLength);
            if (status != ClientHelloStatus.Success)
            {
                return status;
            }

            if (!c.Fits(extensionLength, end))
            {
                return ClientHelloStatus.Invalid;
            }

            var extensionEnd = c.Offset + extensionLength;
            switch (extensionType)
            {
                case ServerNameExtension:
                    if (sawServerName)
                    {
                        return ClientHelloStatus.Invalid;
                    }

                    sawServerName = true;
                    status = ParseServerName(ref input, ref c, extensionEnd, ref found);
                    break;
                case AlpnExtension:
                    if (sawAlpn)
                    {
                        return ClientHelloStatus.Invalid;
                    }

                    sawAlpn = true;
                    status = ParseAlpn(ref input, ref c, extensionEnd, ref found);
                    break;
                default:
                    status = c.Skip(ref input, extensionLength);
                    break;
            }

            if (status != ClientHelloStatus.Success)
            {
                return status;
            }
        }

        return ClientHelloStatus.Success;
    }

    /// <summary>server_name (RFC 6066 §3): ServerNameList&lt;1..2^16-1&gt; of (name_type, opaque&lt;1..2^16-1&gt;).</summary>
    private static ClientHelloStatus ParseServerName<TInput>(ref TInput input, ref Cursor c, long extensionEnd, ref Found found)
        where TInput : IByteInput, allows ref struct
    {
        if (!c.Fits(2, extensionEnd))
        {
            return ClientHelloStatus.Invalid;
        }

        var status = c.ReadUInt16(ref input, out var listLength);
        if (status != ClientHelloStatus.Success)
        {
            return status;
        }

        if (listLength == 0 || c.Offset + listLength != extensionEnd)
        {
            return ClientHelloStatus.Invalid;
        }

        while (c.Offset < extensionEnd)
        {
            if (!c.Fits(3, extensionEnd))
            {
                return ClientHelloStatus.Invalid;
            }

            status = c.ReadByte(ref input, out var nameType);
            if (status != ClientHelloStatus.Success)
            {
                return status;
            }

            status = c.ReadUInt16(ref input, out var nameLength);
            if (status != ClientHelloStatus.Success)
            {
                return status;
            }

            if (!c.Fits(nameLength, extensionEnd))
            {
                return ClientHelloStatus.Invalid;
            }

            if (nameType != HostNameType)
            {
                // Unknown name types carry an opaque<1..2^16-1> too (as every deployed stack assumes); skip them.
                status = c.Skip(ref input, nameLength);
                if (status != ClientHelloStatus.Success)
                {
                    return status;
                }

                continue;
            }

            // At most one host_name (RFC 6066: no two names of the same type).
            if (found.HostNameLength >= 0 || nameLength == 0 || nameLength > MaxHostNameLength)
            {
                return ClientHelloStatus.Invalid;
            }

            found.HostName = c;
            found.HostNameLength = nameLength;

            // Letters, digits, '-', '_' and '.', without empty labels (so no leading, trailing or double dot).
            var previous = (byte)'.';
            for (var i = 0; i < nameLength; i++)
            {
                status = c.ReadByte(ref input, out var b);
                if (status != ClientHelloStatus.Success)
                {
                    return status;
                }

                if (!IsHostNameByte(b) || (b == '.' && previous == '.'))
                {
                    return ClientHelloStatus.Invalid;
                }

                previous = b;
            }

            if (previous == '.')
            {
                return ClientHelloStatus.Invalid;
            }
        }

        return ClientHelloStatus.Success;
    }

    /// <summary>application_layer_protocol_negotiation (RFC 7301 §3.1): ProtocolNameList&lt;2..2^16-1&gt; of opaque&lt;1..2^8-1&gt;.</summary>
    private static ClientHelloStatus ParseAlpn<TInput>(ref TInput input, ref Cursor c, long extensionEnd, ref Found found)
        where TInput : IByteInput, allows ref struct
    {
        if (!c.Fits(2, extensionEnd))
        {
            return ClientHelloStatus.Invalid;
        }

        var status = c.ReadUInt16(ref input, out var listLength);
        if (status != ClientHelloStatus.Success)
        {
            return status;
        }

        if (listLength < 2 || c.Offset + listLength != extensionEnd)
        {
            return ClientHelloStatus.Invalid;
        }

        found.AlpnList = c;
        while (c.Offset < extensionEnd)
        {
            status = c.ReadByte(ref input, out var nameLength);
            if (status != ClientHelloStatus.Success)
            {
                return status;
            }

            if (nameLength == 0 || !c.Fits(nameLength, extensionEnd))
            {
                return ClientHelloStatus.Invalid;
            }

            status = c.Skip(ref input, nameLength);
            if (status != ClientHelloStatus.Success)
            {
                return status;
            }

            found.AlpnCount++;
        }

        return ClientHelloStatus.Success;
    }

    /// <summary>Builds the strings of a validated ClientHello by re-reading the spots noted during the walk.</summary>
    private static ClientHelloResult Materialize<TInput>(ref TInput input, in Found found)
        where TInput : IByteInput, allows ref struct
    {
        Span<char> chars = stackalloc char[MaxHostNameLength];
        string? serverName = null;
        if (found.HostNameLength > 0)
        {
            var c = found.HostName;
            for (var i = 0; i < found.HostNameLength; i++)
            {
                if (c.ReadByte(ref input, out var b) != ClientHelloStatus.Success)
                {
                    return ClientHelloResult.FromStatus(ClientHelloStatus.Invalid);
                }

                chars[i] = (char)(b is >= (byte)'A' and <= (byte)'Z' ? b | 0x20 : b);
            }

            serverName = new string(chars[..found.HostNameLength]);
        }

        if (found.AlpnCount == 0)
        {
            return ClientHelloResult.Succeeded(serverName, []);
        }

        var alpn = new string[found.AlpnCount];
        var cursor = found.AlpnList;
        for (var n = 0; n < alpn.Length; n++)
        {
            if (cursor.ReadByte(ref input, out var length) != ClientHelloStatus.Success)
            {
                return ClientHelloResult.FromStatus(ClientHelloStatus.Invalid);
            }

            for (var i = 0; i < length; i++)
            {
                if (cursor.ReadByte(ref input, out var b) != ClientHelloStatus.Success)
                {
                    return ClientHelloResult.FromStatus(ClientHelloStatus.Invalid);
                }

                chars[i] = (char)b;
            }

            alpn[n] = new string(chars[..length]);
        }

        return ClientHelloResult.Succeeded(serverName, alpn);
    }

    private static bool IsHostNameByte(byte b) =>
        b is (>= (byte)'a' and <= (byte)'z') or (>= (byte)'A' and <= (byte)'Z') or (>= (byte)'0' and <= (byte)'9')
            or (byte)'-' or (byte)'_' or (byte)'.';

    /// <summary>Where the walk found the values to return.</summary>
    private struct Found
    {
        public Cursor HostName;
        public int HostNameLength;
        public Cursor AlpnList;
        public int AlpnCount;
    }

    /// <summary>
    /// A forward-only position in the handshake byte stream, which is the concatenation of the payloads
    /// of consecutive handshake records. A copy is a saved position.
    /// </summary>
    private struct Cursor
    {
        /// <summary>Input offset of the next payload byte, or of the next record header when <see cref="_recordRemaining"/> is 0.</summary>
        private long _position;

        /// <summary>Payload bytes left in the current record.</summary>
        private int _recordRemaining;

        /// <summary>Whether a record header has been accepted (a later bad header is Invalid, not NotTls).</summary>
        private bool _sawRecord;

        /// <summary>Handshake bytes consumed so far.</summary>
        public long Offset { get; private set; }

        /// <summary>Whether <paramref name="count"/> more handshake bytes stay within <paramref name="end"/>.</summary>
        public readonly bool Fits(long count, long end) => Offset + count <= end;

        public ClientHelloStatus ReadByte<TInput>(ref TInput input, out byte value)
            where TInput : IByteInput, allows ref struct
        {
            value = 0;
            if (_recordRemaining == 0)
            {
                var status = NextRecord(ref input);
                if (status != ClientHelloStatus.Success)
                {
                    return status;
                }
            }

            if (_position >= input.Length)
            {
                return ClientHelloStatus.NeedMoreData;
            }

            value = input.At(_position);
            _position++;
            _recordRemaining--;
            Offset++;
            return ClientHelloStatus.Success;
        }

        public ClientHelloStatus ReadUInt16<TInput>(ref TInput input, out int value)
            where TInput : IByteInput, allows ref struct
        {
            value = 0;
            var status = ReadByte(ref input, out var high);
            if (status != ClientHelloStatus.Success)
            {
                return status;
            }

            status = ReadByte(ref input, out var low);
            if (status != ClientHelloStatus.Success)
            {
                return status;
            }

            value = (high << 8) | low;
            return ClientHelloStatus.Success;
        }

        public ClientHelloStatus ReadUInt24<TInput>(ref TInput input, out int value)
            where TInput : IByteInput, allows ref struct
        {
            value = 0;
            var status = ReadByte(ref input, out var high);
            if (status != ClientHelloStatus.Success)
            {
                return status;
            }

            status = ReadUInt16(ref input, out var low);
            if (status != ClientHelloStatus.Success)
            {
                return status;
            }

            value = (high << 16) | low;
            return ClientHelloStatus.Success;
        }

        public ClientHelloStatus Skip<TInput>(ref TInput input, int count)
            where TInput : IByteInput, allows ref struct
        {
            while (count > 0)
            {
                if (_recordRemaining == 0)
                {
                    var status = NextRecord(ref input);
                    if (status != ClientHelloStatus.Success)
                    {
                        return status;
                    }
                }

                var available = input.Length - _position;
                if (available <= 0)
                {
                    return ClientHelloStatus.NeedMoreData;
                }

                var step = (int)Math.Min(Math.Min(count, _recordRemaining), available);
                _position += step;
                _recordRemaining -= step;
                Offset += step;
                count -= step;
            }

            return ClientHelloStatus.Success;
        }

        /// <summary>Reads a record header: type 22, version 0x03xx, length 1..2^14; judged byte by byte as they arrive.</summary>
        private ClientHelloStatus NextRecord<TInput>(ref TInput input)
            where TInput : IByteInput, allows ref struct
        {
            var available = input.Length - _position;
            var foreign = _sawRecord ? ClientHelloStatus.Invalid : ClientHelloStatus.NotTls;
            if (available < 1)
            {
                return ClientHelloStatus.NeedMoreData;
            }

            if (input.At(_position) != HandshakeContentType)
            {
                return foreign;
            }

            if (available < 2)
            {
                return ClientHelloStatus.NeedMoreData;
            }

            if (input.At(_position + 1) != TlsMajorVersion)
            {
                return foreign;
            }

            if (available < RecordHeaderLength)
            {
                return ClientHelloStatus.NeedMoreData;
            }

            var length = (input.At(_position + 3) << 8) | input.At(_position + 4);
            if (length == 0 || length > MaxRecordLength)
            {
                return ClientHelloStatus.Invalid;
            }

            _position += RecordHeaderLength;
            _recordRemaining = length;
            _sawRecord = true;
            return ClientHelloStatus.Success;
        }
    }

    /// <summary>Random access to the received bytes; callers only ask for offsets below <see cref="Length"/>.</summary>
    private interface IByteInput
    {
        long Length { get; }

        byte At(long offset);
    }

    private readonly ref struct SpanInput(ReadOnlySpan<byte> data) : IByteInput
    {
        private readonly ReadOnlySpan<byte> _data = data;

        public long Length => _data.Length;

        public byte At(long offset) => _data[(int)offset];
    }

    /// <summary>A multi-segment sequence, read mostly forwards: the current segment is cached.</summary>
    private ref struct SequenceInput : IByteInput
    {
        private readonly ReadOnlySequence<byte> _sequence;
        private SequencePosition _next;
        private ReadOnlySpan<byte> _segment;
        private long _segmentStart;

        public SequenceInput(ReadOnlySequence<byte> sequence)
        {
            _sequence = sequence;
            _next = sequence.Start;
            _segment = default;
            _segmentStart = 0;
            Length = sequence.Length;
        }

        public long Length { get; }

        public byte At(long offset)
        {
            var relative = offset - _segmentStart;
            return (ulong)relative < (ulong)_segment.Length ? _segment[(int)relative] : Seek(offset);
        }

        private byte Seek(long offset)
        {
            if (offset < _segmentStart)
            {
                _next = _sequence.Start;
                _segment = default;
                _segmentStart = 0;
            }

            while (offset - _segmentStart >= _segment.Length)
            {
                _segmentStart += _segment.Length;
                if (!_sequence.TryGet(ref _next, out var memory))
                {
                    return 0;
                }

                _segment = memory.Span;
            }

            return _segment[(int)(offset - _segmentStart)];
        }
    }
}
