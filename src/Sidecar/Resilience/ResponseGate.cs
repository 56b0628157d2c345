// The response-start interception of one try: a retryable status is held back (its body discarded) instead of reaching the client.
using System.Buffers;
using System.IO.Pipelines;
using Microsoft.AspNetCore.Http.Features;

namespace Mesh.Sidecar.Resilience;

/// <summary>
/// Stands in for Kestrel's response body during a try. Both upstream paths set the status and headers on
/// the response first and only then touch the body (Mesh's HTTP/1.1 client through
/// <see cref="HttpResponse.BodyWriter"/>, YARP through <see cref="HttpResponse.Body"/>). The first
/// touch is the moment the response would start, so the gate asks its owner then: pass the response on
/// (every call goes to Kestrel's feature from here), or hold it because the status is retryable and a
/// retry is possible (the body is read and dropped, nothing reaches the client, and the try ends with a
/// committed retry). A response with no body never touches the gate; the owner checks the status after
/// the try instead.
/// </summary>
internal sealed class ResponseGate : PipeWriter, IHttpResponseBodyFeature
{
    private readonly ResilientExchange _owner;
    private IHttpResponseBodyFeature _inner = null!;
    private GateStream? _stream;
    private byte[]? _scratch;
    private Mode _mode;

    public ResponseGate(ResilientExchange owner) => _owner = owner;

    private enum Mode
    {
        Undecided,
        Pass,
        Hold,
    }

    /// <summary>True when this try's response was held back.</summary>
    public bool Held => _mode == Mode.Hold;

    /// <summary>True when the try's response was handed to the client.</summary>
    public bool Passed => _mode == Mode.Pass;

    public Stream Stream => _stream ??= new GateStream(this);

    public PipeWriter Writer => this;

    /// <summary>Arms the gate for a new try over Kestrel's feature.</summary>
    public void Arm(IHttpResponseBodyFeature inner)
    {
        _inner = inner;
        _mode = Mode.Undecided;
    }

    public void Dispose()
    {
        if (_scratch is not null)
        {
            ArrayPool<byte>.Shared.Return(_scratch);
            _scratch = null;
        }
    }

    private Mode Decide()
    {
        if (_mode == Mode.Undecided)
        {
            _mode = _owner.HoldResponse() ? Mode.Hold : Mode.Pass;
        }

        return _mode;
    }

    private Memory<byte> Scratch(int sizeHint)
    {
        if (_scratch is null || _scratch.Length < sizeHint)
        {
            if (_scratch is not null)
            {
                ArrayPool<byte>.Shared.Return(_scratch);
            }

            _scratch = ArrayPool<byte>.Shared.Rent(Math.Max(4096, sizeHint));
        }

        return _scratch;
    }

    // IHttpResponseBodyFeature

    public void DisableBuffering()
    {
        if (_mode != Mode.Hold)
        {
            _inner.DisableBuffering();
        }
    }

    public Task StartAsync(CancellationToken cancellationToken = default) =>
        Decide() == Mode.Pass ? _inner.StartAsync(cancellationToken) : Task.CompletedTask;

    public Task SendFileAsync(string path, long offset, long? count, CancellationToken cancellationToken = default) =>
        Decide() == Mode.Pass ? _inner.SendFileAsync(path, offset, count, cancellationToken) : Task.CompletedTask;

    public Task CompleteAsync() => _mode == Mode.Pass ? _inner.CompleteAsync() : Task.CompletedTask;

    // PipeWriter

    public override void Advance(int bytes)
    {
        if (_mode == Mode.Pass)
        {
            _inner.Writer.Advance(bytes);
        }
    }

    public override Memory<byte> GetMemory(int sizeHint = 0) => Decide() == Mode.Pass ? _inner.Writer.GetMemory(sizeHint) : Scratch(sizeHint);

    public override Span<byte> GetSpan(int sizeHint = 0) => Decide() == Mode.Pass ? _inner.Writer.GetSpan(sizeHint) : Scratch(sizeHint).Span;

    public override ValueTask<FlushResult> FlushAsync(CancellationToken cancellationToken = default) =>
        Decide() == Mode.Pass ? _inner.Writer.FlushAsync(cancellationToken) : default;

    public override ValueTask<FlushResult> WriteAsync(ReadOnlyMemory<byte> source, CancellationToken cancellationToken = default) =>
        Decide() == Mode.Pass ? _inner.Writer.WriteAsync(source, cancellationToken) : default;

    public override void CancelPendingFlush()
    {
        if (_mode == Mode.Pass)
        {
            _inner.Writer.CancelPendingFlush();
        }
    }

    public override void Complete(Exception? exception = null)
    {
        if (_mode == Mode.Pass)
        {
            _inner.Writer.Complete(exception);
        }
    }

    public override bool CanGetUnflushedBytes => _mode == Mode.Pass && _inner.Writer.CanGetUnflushedBytes;

    public override long UnflushedBytes => _mode == Mode.Pass ? _inner.Writer.UnflushedBytes : 0;

    /// <summary>The gate as a write-only stream, for YARP's body copy.</summary>
    private sealed class GateStream(ResponseGate gate) : Stream
    {
        public override bool CanRead => false;

        public override bool CanSeek => false;

        public override bool CanWrite => true;

        public override long Length => throw new NotSupportedException();

        public override long Position
        {
            get => throw new NotSupportedException();
            set => throw new NotSupportedException();
        }

        public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default) =>
            gate.Decide() == Mode.Pass ? gate._inner.Stream.WriteAsync(buffer, cancellationToken) : default;

        public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
            WriteAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

        public override void Write(byte[] buffer, int offset, int count)
        {
            if (gate.Decide() == Mode.Pass)
            {
                gate._inner.Stream.Write(buffer, offset, count);
            }
        }

        public override Task FlushAsync(CancellationToken cancellationToken) =>
            gate.Decide() == Mode.Pass ? gate._inner.Stream.FlushAsync(cancellationToken) : Task.CompletedTask;

        public override void Flush()
        {
            if (gate.Decide() == Mode.Pass)
            {
                gate._inner.Stream.Flush();
            }
        }

        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();
    }
}
