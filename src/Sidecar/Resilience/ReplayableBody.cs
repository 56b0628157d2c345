// The request body kept as it streams upstream, so a retry (or a mirror) can send it again.
using System.Buffers;

namespace Mesh.Sidecar.Resilience;

/// <summary>
/// Records what the first try reads from the client, up to a limit, while it streams (nothing waits for
/// the whole body, so a gRPC stream still flows both ways). Each try reads through its own
/// <see cref="Reader"/>: first the recorded bytes, then on from the client, recording as it goes. Once
/// more than the limit has been read the recording stops and the body can no longer be replayed.
/// Tries run one after another, so only one reader is ever active.
/// </summary>
internal sealed class ReplayableBody(Stream source, int limit, long? length = null) : IDisposable
{
    private byte[] _buffer = [];
    private int _length;
    private bool _overflowed;
    private bool _complete;

    /// <summary>True while every byte read from the client so far is recorded.</summary>
    public bool Replayable => !_overflowed;

    /// <summary>True once the client's body has ended (or its Content-Length is read) and every byte of it is recorded.</summary>
    public bool Complete => !_overflowed && (_complete || _length == length);

    /// <summary>The recorded bytes (the whole body once <see cref="Complete"/>).</summary>
    public ReadOnlySpan<byte> Recorded => _buffer.AsSpan(0, _length);

    /// <summary>A fresh stream for the next try, starting at the body's first byte.</summary>
    public Stream NewReader() => new Reader(this);

    private async ValueTask<int> ReadAsync(Reader reader, Memory<byte> destination, CancellationToken cancellationToken)
    {
        if (destination.IsEmpty)
        {
            // A zero-byte read waits for data without taking any (PipeReader.Create issues them); 0 is not the end here.
            return reader.Offset < _length || _complete ? 0 : await source.ReadAsync(destination, cancellationToken).ConfigureAwait(false);
        }

        if (reader.Offset < _length && !_overflowed)
        {
            var count = Math.Min(destination.Length, _length - reader.Offset);
            _buffer.AsMemory(reader.Offset, count).CopyTo(destination);
            reader.Offset += count;
            return count;
        }

        if (_complete)
        {
            return 0;
        }

        var read = await source.ReadAsync(destination, cancellationToken).ConfigureAwait(false);
        if (read == 0)
        {
            _complete = true;
            return 0;
        }

        Record(destination.Span[..read]);
        reader.Offset += read;
        return read;
    }

    private void Record(ReadOnlySpan<byte> bytes)
    {
        if (_overflowed)
        {
            return;
        }

        if (_length + bytes.Length > limit)
        {
            _overflowed = true;
            Release();
            return;
        }

        if (_length + bytes.Length > _buffer.Length)
        {
            var larger = ArrayPool<byte>.Shared.Rent(Math.Min(limit, Math.Max(_length + bytes.Length, _buffer.Length * 2)));
            _buffer.AsSpan(0, _length).CopyTo(larger);
            Release();
            _buffer = larger;
        }

        bytes.CopyTo(_buffer.AsSpan(_length));
        _length += bytes.Length;
    }

    private void Release()
    {
        if (_buffer.Length > 0)
        {
            ArrayPool<byte>.Shared.Return(_buffer);
        }

        _buffer = [];
    }

    public void Dispose()
    {
        Release();
        _length = 0;
    }

    private sealed class Reader(ReplayableBody body) : Stream
    {
        public int Offset;

        public override bool CanRead => true;

        public override bool CanSeek => false;

        public override bool CanWrite => false;

        public override long Length => throw new NotSupportedException();

        public override long Position
        {
            get => Offset;
            set => throw new NotSupportedException();
        }

        public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) =>
            body.ReadAsync(this, buffer, cancellationToken);

        public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
            body.ReadAsync(this, buffer.AsMemory(offset, count), cancellationToken).AsTask();

        public override int Read(byte[] buffer, int offset, int count) => ReadAsync(buffer, offset, count, CancellationToken.None).GetAwaiter().GetResult();

        public override void Flush()
        {
        }

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}
