using System.Buffers;
using System.IO.Pipelines;
using System.Text;
using Mesh.Sidecar.Detection;
using Mesh.Sidecar.Listeners;

namespace Mesh.Sidecar.Tests.Detection;

public class HttpVersionDetectorTests
{
    private static readonly byte[] Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"u8.ToArray();

    // An empty SETTINGS frame: what an HTTP/2 client sends right after the preface.
    private static readonly byte[] SettingsFrame = [0, 0, 0, 4, 0, 0, 0, 0, 0];

    private static readonly TimeSpan Generous = TimeSpan.FromSeconds(30);

    [Fact]
    public void Http2Preface_IsTheRfc9113Preface()
    {
        Assert.Equal(24, HttpVersionDetector.Http2Preface.Length);
        Assert.True(HttpVersionDetector.Http2Preface.SequenceEqual(Preface));
    }

    [Fact]
    public void Classify_FullPreface_IsHttp2()
    {
        Assert.Equal(HttpPipeline.Http2, HttpVersionDetector.Classify(new ReadOnlySequence<byte>(Preface)));
    }

    [Fact]
    public void Classify_PrefaceFollowedByFrames_IsHttp2()
    {
        Assert.Equal(HttpPipeline.Http2, HttpVersionDetector.Classify(new ReadOnlySequence<byte>([.. Preface, .. SettingsFrame])));
    }

    [Fact]
    public void Classify_PrefaceSplitOverSegments_IsHttp2()
    {
        var sequence = Segments(Preface[..3], Preface[3..10], Preface[10..], SettingsFrame);

        Assert.False(sequence.IsSingleSegment);
        Assert.Equal(HttpPipeline.Http2, HttpVersionDetector.Classify(sequence));
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(3)]
    [InlineData(14)]
    [InlineData(23)]
    public void Classify_ProperPrefixOfPreface_IsUndecided(int length)
    {
        Assert.Null(HttpVersionDetector.Classify(new ReadOnlySequence<byte>(Preface, 0, length)));
    }

    [Theory]
    [InlineData("GET /")]
    [InlineData("POST /")]
    [InlineData("PUT /x HTTP/1.1\r\n")]
    [InlineData("PRI * HTTP/1.1")]
    [InlineData("PRI * HTTP/2.0\r\n\r\nXX")]
    [InlineData("G")]
    [InlineData("pri * HTTP/2.0\r\n\r\nSM\r\n\r\n")]
    public void Classify_DiffersFromPreface_IsHttp1(string text)
    {
        Assert.Equal(HttpPipeline.Http1, HttpVersionDetector.Classify(new ReadOnlySequence<byte>(Encoding.ASCII.GetBytes(text))));
    }

    [Fact]
    public void Classify_PostSharesFirstByteWithPreface_IsHttp1()
    {
        // 'P' is also the preface's first byte; the second byte decides.
        Assert.Null(HttpVersionDetector.Classify(new ReadOnlySequence<byte>("P"u8.ToArray())));
        Assert.Equal(HttpPipeline.Http1, HttpVersionDetector.Classify(new ReadOnlySequence<byte>("PO"u8.ToArray())));
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task DetectAsync_PrefaceInOneByteChunks_IsHttp2AndConsumesNothing(bool inline)
    {
        var pipe = NewPipe(inline);
        var detection = HttpVersionDetector.DetectAsync(pipe.Reader, Generous, CancellationToken.None).AsTask();

        for (var i = 0; i < Preface.Length; i++)
        {
            Assert.False(detection.IsCompleted, $"decided after {i} bytes");
            await pipe.Writer.WriteAsync(Preface.AsMemory(i, 1));
        }

        Assert.Equal(HttpPipeline.Http2, await detection.WaitAsync(Generous));

        // The key property: the pipeline's first read returns at once, with every byte still there.
        var read = pipe.Reader.ReadAsync();
        Assert.True(read.IsCompleted, "the read after detection waited for more bytes");
        var result = await read;
        Assert.Equal(Preface, result.Buffer.ToArray());
        pipe.Reader.AdvanceTo(result.Buffer.End);
    }

    [Fact]
    public async Task DetectAsync_PrefaceAndFrameInOneWrite_IsHttp2AndConsumesNothing()
    {
        var pipe = NewPipe(inline: true);
        byte[] sent = [.. Preface, .. SettingsFrame];
        await pipe.Writer.WriteAsync(sent);

        var version = await HttpVersionDetector.DetectAsync(pipe.Reader, Generous, CancellationToken.None).AsTask().WaitAsync(Generous);

        Assert.Equal(HttpPipeline.Http2, version);
        var read = pipe.Reader.ReadAsync();
        Assert.True(read.IsCompleted, "the read after detection waited for more bytes");
        var result = await read;
        Assert.Equal(sent, result.Buffer.ToArray());
        Assert.True(result.Buffer.Length >= 24);
    }

    [Fact]
    public async Task DetectAsync_Http1AfterUndecidedFirstByte_ConsumesNothing()
    {
        var pipe = NewPipe(inline: true);
        var detection = HttpVersionDetector.DetectAsync(pipe.Reader, Generous, CancellationToken.None).AsTask();

        await pipe.Writer.WriteAsync("P"u8.ToArray());
        Assert.False(detection.IsCompleted);
        await pipe.Writer.WriteAsync("OST / HTTP/1.1\r\n"u8.ToArray());

        Assert.Equal(HttpPipeline.Http1, await detection.WaitAsync(Generous));
        var read = pipe.Reader.ReadAsync();
        Assert.True(read.IsCompleted, "the read after detection waited for more bytes");
        Assert.Equal("POST / HTTP/1.1\r\n", Encoding.ASCII.GetString((await read).Buffer.ToArray()));
    }

    [Fact]
    public async Task DetectAsync_Http1RequestLine_ConsumesNothing()
    {
        var pipe = NewPipe(inline: true);
        await pipe.Writer.WriteAsync("GET / HTTP/1.1\r\nHost: a\r\n\r\n"u8.ToArray());

        var version = await HttpVersionDetector.DetectAsync(pipe.Reader, Generous, CancellationToken.None).AsTask().WaitAsync(Generous);

        Assert.Equal(HttpPipeline.Http1, version);
        var read = pipe.Reader.ReadAsync();
        Assert.True(read.IsCompleted);
        Assert.StartsWith("GET / HTTP/1.1", Encoding.ASCII.GetString((await read).Buffer.ToArray()), StringComparison.Ordinal);
    }

    [Fact]
    public async Task DetectAsync_SilentClient_GivesHttp1AfterTimeout()
    {
        var pipe = NewPipe(inline: false);

        var version = await HttpVersionDetector.DetectAsync(pipe.Reader, TimeSpan.FromMilliseconds(200), CancellationToken.None).AsTask().WaitAsync(Generous);

        Assert.Equal(HttpPipeline.Http1, version);

        // The pipe is still usable by the HTTP/1 pipeline after the timed-out read.
        await pipe.Writer.WriteAsync("GET / HTTP/1.1\r\n"u8.ToArray());
        var result = await pipe.Reader.ReadAsync().AsTask().WaitAsync(Generous);
        Assert.Equal("GET / HTTP/1.1\r\n", Encoding.ASCII.GetString(result.Buffer.ToArray()));
    }

    [Fact]
    public async Task DetectAsync_PartialPrefaceThenSilence_GivesHttp1AfterTimeout()
    {
        var pipe = NewPipe(inline: false);
        await pipe.Writer.WriteAsync(Preface.AsMemory(0, 8));

        var version = await HttpVersionDetector.DetectAsync(pipe.Reader, TimeSpan.FromMilliseconds(200), CancellationToken.None).AsTask().WaitAsync(Generous);

        Assert.Equal(HttpPipeline.Http1, version);
    }

    [Fact]
    public async Task DetectAsync_WriterCompletedWithoutBytes_GivesHttp1()
    {
        var pipe = NewPipe(inline: true);
        await pipe.Writer.CompleteAsync();

        var version = await HttpVersionDetector.DetectAsync(pipe.Reader, Generous, CancellationToken.None).AsTask().WaitAsync(Generous);

        Assert.Equal(HttpPipeline.Http1, version);
    }

    [Fact]
    public async Task DetectAsync_WriterCompletedAfterPartialPreface_GivesHttp1AndKeepsBytes()
    {
        var pipe = NewPipe(inline: true);
        await pipe.Writer.WriteAsync(Preface.AsMemory(0, 5));
        await pipe.Writer.CompleteAsync();

        var version = await HttpVersionDetector.DetectAsync(pipe.Reader, Generous, CancellationToken.None).AsTask().WaitAsync(Generous);

        Assert.Equal(HttpPipeline.Http1, version);
        var result = await pipe.Reader.ReadAsync();
        Assert.True(result.IsCompleted);
        Assert.Equal(Preface[..5], result.Buffer.ToArray());
    }

    [Fact]
    public async Task DetectAsync_WriterCompletedAfterFullPreface_GivesHttp2()
    {
        var pipe = NewPipe(inline: true);
        await pipe.Writer.WriteAsync(Preface);
        await pipe.Writer.CompleteAsync();

        var version = await HttpVersionDetector.DetectAsync(pipe.Reader, Generous, CancellationToken.None).AsTask().WaitAsync(Generous);

        Assert.Equal(HttpPipeline.Http2, version);
    }

    [Fact]
    public async Task DetectAsync_CallerCancels_Throws()
    {
        var pipe = NewPipe(inline: false);
        using var cancellation = new CancellationTokenSource();
        var detection = HttpVersionDetector.DetectAsync(pipe.Reader, Generous, cancellation.Token).AsTask();

        await cancellation.CancelAsync();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => detection.WaitAsync(Generous));
    }

    private static Pipe NewPipe(bool inline) => inline
        ? new Pipe(new PipeOptions(readerScheduler: PipeScheduler.Inline, writerScheduler: PipeScheduler.Inline, useSynchronizationContext: false))
        : new Pipe(new PipeOptions(useSynchronizationContext: false));

    private static ReadOnlySequence<byte> Segments(params byte[][] parts)
    {
        var first = new Segment(parts[0], 0);
        var last = first;
        foreach (var part in parts[1..])
        {
            last = last.Append(part);
        }

        return new ReadOnlySequence<byte>(first, 0, last, last.Memory.Length);
    }

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
