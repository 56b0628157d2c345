// Classification of a connection's first bytes for auto listeners.
using System.Buffers;
using System.IO.Pipelines;
using System.Text;
using Mesh.Sidecar.Detection;

namespace Mesh.Sidecar.Tests.Detection;

public sealed class ProtocolSnifferTests
{
    private static SniffedProtocol? Classify(byte[] bytes) => ProtocolSniffer.Classify(new ReadOnlySequence<byte>(bytes));

    private static SniffedProtocol? Classify(string text) => Classify(Encoding.ASCII.GetBytes(text));

    [Theory]
    [InlineData("GET / HTTP/1.1\r\n", "Http1")]
    [InlineData("POST /x HTTP/1.1\r\n", "Http1")]
    [InlineData("OPTIONS * HTTP/1.1\r\n", "Http1")]
    [InlineData("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "Http2")]
    [InlineData("SSH-2.0-OpenSSH\r\n", "Opaque")]
    [InlineData("hello\n", "Opaque")]
    [InlineData("GO /", "Opaque")]
    [InlineData("get / HTTP/1.1", "Opaque")]
    public void Classify_KnownStarts_AreRecognised(string text, string expected) => Assert.Equal(Enum.Parse<SniffedProtocol>(expected), Classify(text));

    [Fact]
    public void Classify_TlsRecord_IsTls() => Assert.Equal(SniffedProtocol.Tls, Classify([0x16, 0x03, 0x01]));

    [Theory]
    [InlineData("")]
    [InlineData("G")]
    [InlineData("GET")]
    [InlineData("PRI * HTTP/2.0\r\n")]
    public void Classify_TooFewBytes_NeedsMore(string text) => Assert.Null(Classify(text));

    [Fact]
    public void Classify_LongUpperCaseRun_IsOpaque() => Assert.Equal(SniffedProtocol.Opaque, Classify("ABCDEFGHIJKLMNOPQRSTUVWXYZ"));

    [Fact]
    public async Task DetectAsync_SilentClient_IsSilent()
    {
        var pipe = new Pipe();
        Assert.Equal(SniffedProtocol.Silent, await ProtocolSniffer.DetectAsync(pipe.Reader, TimeSpan.FromMilliseconds(100), CancellationToken.None));
    }

    [Fact]
    public async Task DetectAsync_RequestInPieces_IsHttp1AndBytesStayUnread()
    {
        var pipe = new Pipe(new PipeOptions(pauseWriterThreshold: 0, useSynchronizationContext: false));
        var detection = ProtocolSniffer.DetectAsync(pipe.Reader, TimeSpan.FromSeconds(20), CancellationToken.None).AsTask();
        foreach (var b in Encoding.ASCII.GetBytes("GET / HTTP/1.1\r\n"))
        {
            await pipe.Writer.WriteAsync(new[] { b });
        }

        Assert.Equal(SniffedProtocol.Http1, await detection.WaitAsync(TimeSpan.FromSeconds(20)));
        var next = await pipe.Reader.ReadAsync().AsTask().WaitAsync(TimeSpan.FromSeconds(20));
        Assert.StartsWith("GET ", Encoding.ASCII.GetString(next.Buffer.ToArray()), StringComparison.Ordinal);
    }
}
