// Stage 8 of the data path: Mesh's HTTP/1.1 client writing a request head and copying a response head onto the response.
using System.Net.Sockets;
using System.Text;
using BenchmarkDotNet.Attributes;
using Mesh.Sidecar.Upstream;
using Mesh.Sidecar.Upstream.Http1;
using Microsoft.AspNetCore.Http;

namespace Mesh.Benchmarks;

/// <summary>
/// The per-request work of <c>Http1Forwarder</c> without the sockets: the request head written
/// into the connection's buffer (a browser-like set of headers), and an nginx-like response head
/// parsed onto the response, the second time on the connection as in steady keep-alive traffic.
/// </summary>
[MemoryDiagnoser]
public class Http1ClientBenchmarks : IDisposable
{
    private static readonly byte[] ResponseHead = Encoding.ASCII.GetBytes(
        "HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Tue, 24 Nov 2026 04:00:00 GMT\r\nContent-Type: application/json\r\nContent-Length: 512\r\nConnection: keep-alive\r\nCache-Control: no-store\r\nx-request-id: 5b1c0e7a\r\n\r\n");

    /// <summary>10,000 fields of one name, as in issue 9 (Mesh took about ten times YARP's time on them).</summary>
    private static readonly byte[] RepeatedHead = Encoding.ASCII.GetBytes(
        "HTTP/1.1 200 OK\r\n" + string.Concat(Enumerable.Repeat("r: 1\r\n", 10_000)) + "Content-Length: 0\r\n");

    /// <summary>10,000 fields of different names, the cost to compare the repeated case with.</summary>
    private static readonly byte[] DistinctHead = Encoding.ASCII.GetBytes(
        "HTTP/1.1 200 OK\r\n" + string.Concat(Enumerable.Range(0, 10_000).Select(i => $"r{i}: 1\r\n")) + "Content-Length: 0\r\n");

    private readonly Socket _socket = new(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
    private Http1Connection _connection = null!;
    private DefaultHttpContext _context = null!;

    [GlobalSetup]
    public void Setup()
    {
        _connection = new Http1Connection(_socket);
        _context = new DefaultHttpContext();
        var request = _context.Request;
        request.Method = "GET";
        request.Host = new HostString("api.example.com");
        request.Path = "/users/42/orders";
        request.QueryString = new QueryString("?page=2");
        request.Headers.UserAgent = "Mozilla/5.0 (X11; Linux x86_64) Gecko/20100101 Firefox/120.0";
        request.Headers.Accept = "application/json";
        request.Headers.AcceptEncoding = "gzip, deflate, br";
        request.Headers["x-request-id"] = "5b1c0e7a";
        request.Headers.Connection = "keep-alive";
        CopyResponseHead();
    }

    [Benchmark]
    public int WriteRequestHead() => Http1Forwarder.WriteHead(_connection, _context, RouteTransformer.None, "10.0.0.7:8080", out _);

    [Benchmark]
    public long CopyResponseHead()
    {
        _context.Response.Headers.Clear();
        Http1Forwarder.CopyHeaders(_connection, ResponseHead.AsSpan(0, ResponseHead.Length - 2), _context.Response, 200, false, false, out var length, out _);
        return length;
    }

    [Benchmark]
    public long CopyTenThousandRepeatedFields()
    {
        _context.Response.Headers.Clear();
        Http1Forwarder.CopyHeaders(_connection, RepeatedHead, _context.Response, 200, false, false, out var length, out _);
        return length;
    }

    [Benchmark]
    public long CopyTenThousandDistinctFields()
    {
        _context.Response.Headers.Clear();
        Http1Forwarder.CopyHeaders(_connection, DistinctHead, _context.Response, 200, false, false, out var length, out _);
        return length;
    }

    public void Dispose()
    {
        _connection?.Dispose();
        _socket.Dispose();
        GC.SuppressFinalize(this);
    }
}
