// Retries against peers nobody here wrote (Python's http.server upstream) and real gRPC clients and servers over one HTTP/2 connection.
using System.Net;
using Grpc.Core;
using Mesh.FunctionalTests.Grpc;
using Mesh.FunctionalTests.Infrastructure;
using Mesh.FunctionalTests.L7;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using static Mesh.FunctionalTests.Resilience.ResilienceHarness;

namespace Mesh.FunctionalTests.Resilience;

/// <summary>A gRPC Echo that is always unavailable, as a draining server answers.</summary>
public sealed class UnavailableEcho : Echo.EchoBase
{
    public override Task<EchoReply> Unary(EchoRequest request, ServerCallContext context) =>
        throw new RpcException(new Status(StatusCode.Unavailable, "draining"));
}

public sealed class PeerTests
{
    // Every other request gets 503, with head and body in separate writes (as BaseHTTPRequestHandler does).
    private const string AlternatingServer = """
        import http.server, itertools, threading
        count = itertools.count()
        lock = threading.Lock()
        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            def do_GET(self):
                with lock:
                    n = next(count)
                body = (b"busy " * 2000) if n % 2 == 0 else ("python ok " + str(n)).encode()
                self.send_response(503 if n % 2 == 0 else 200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            def log_message(self, *args):
                pass
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        print(server.server_address[1], flush=True)
        server.serve_forever()
        """;

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task Retries_PythonUpstreamFailingEveryOtherRequest_ClientsSeeOnlySuccess(bool meshClient)
    {
        var directory = Directory.CreateTempSubdirectory("mesh-python-").FullName;
        try
        {
            var script = Path.Combine(directory, "alternating.py");
            await File.WriteAllTextAsync(script, AlternatingServer);
            var (python, portLine) = await ExternalProcess.StartAsync("python3", [script]);
            await using var _ = python;
            var port = int.Parse(portLine, System.Globalization.CultureInfo.InvariantCulture);
            await using var sidecar = await StartAsync(Config(
                [TestConfig.Route("all", "py")],
                new Dictionary<string, object> { ["py"] = new { endpoints = new[] { new { address = "127.0.0.1", port } }, retries = new { budgetPercent = 0, backoffBaseMs = 0 } } },
                meshClient));
            using var client = Clients.Http1();

            for (var i = 0; i < 50; i++)
            {
                using var response = await client.GetAsync(new Uri(sidecar.Listener(), "/"));
                Assert.Equal(HttpStatusCode.OK, response.StatusCode);
                Assert.StartsWith("python ok ", await response.Content.ReadAsStringAsync(), StringComparison.Ordinal);
            }

            var metrics = await MetricsAsync(sidecar);
            Assert.Equal(50, Metric(metrics, "mesh_retries_total{service=\"py\",reason=\"503\"}"));
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    [Fact]
    public async Task Retries_GrpcUnavailable_GoToTheOtherEndpoint_ManyStreamsOnOneConnection()
    {
        await using var down = await TestBackend.StartAsync(
            "down",
            HttpProtocols.Http2,
            services: s => s.AddGrpc(),
            configure: app => app.MapGrpcService<UnavailableEcho>());
        await using var up = await EchoGrpcBackend.StartAsync("up");
        await using var sidecar = await StartAsync(Config(
            [TestConfig.Route("grpc", "greeter")],
            new Dictionary<string, object>
            {
                ["greeter"] = new { endpoints = new[] { down.Endpoint(), up.Endpoint() }, protocol = "http2", retries = new { budgetPercent = 100, backoffBaseMs = 1 } },
            }));
        using var channel = EchoGrpcBackend.Channel(sidecar.Listener());
        var client = new Echo.EchoClient(channel);

        // Unary calls are POSTs: gRPC's listed statuses are retried without nonIdempotent.
        var replies = await Task.WhenAll(Enumerable.Range(0, 200).Select(async i => await client.UnaryAsync(new EchoRequest { Text = "hi " + i })));

        Assert.All(replies, reply => Assert.Equal("up", reply.Instance));
        var metrics = await MetricsAsync(sidecar);
        Assert.Equal(down.Hits, Metric(metrics, "mesh_retries_total{service=\"greeter\",reason=\"grpc-unavailable\"}"));
        Assert.InRange(down.Hits, 60, 140);
        var failing = await Assert.ThrowsAsync<RpcException>(async () => await client.UnaryAsync(new EchoRequest { Text = EchoService.ErrorText }));
        Assert.Equal(StatusCode.NotFound, failing.StatusCode);
    }
}
