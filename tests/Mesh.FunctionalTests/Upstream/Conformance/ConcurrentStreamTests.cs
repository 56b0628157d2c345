// Many HTTP/2 streams at once through Mesh's client: every answer whole, a 2xx, and the one its request asked for.
using System.Text;

namespace Mesh.FunctionalTests.Upstream.Conformance;

/// <summary>
/// HTTP/2 runs many streams of a connection at once, and inline completions run the client's code
/// on socket threads, so Mesh's pooled connections are rented and returned concurrently. A bounded
/// version of the h2load check (4 connections x 10 streams): a response handed to the wrong
/// request, cut short or turned into a 502 fails it.
/// </summary>
[Collection(ConformanceCollection.Name)]
public sealed class ConcurrentStreamTests(ConformanceFixture fixture)
{
    private const int Requests = 2_000;
    private const int Connections = 4;
    private const int StreamsPerConnection = 10;

    [Fact]
    public async Task Http2Streams_FortyAtOnceThroughMeshsClient_EachGetsItsOwnWholeResponse()
    {
        var file = PeerProcess.Pattern(5120);
        var clients = Enumerable.Range(0, Connections).Select(_ => ConformanceClients.Create(http2: true)).ToArray();
        try
        {
            var next = -1;
            var failures = new List<string>();
            var workers = Enumerable.Range(0, Connections * StreamsPerConnection).Select(async worker =>
            {
                var client = clients[worker % Connections];
                int index;
                while ((index = Interlocked.Increment(ref next)) < Requests)
                {
                    // Alternate an echo that names the request (cross-talk shows) and a file that outgrows one read.
                    var echo = index % 2 == 0;
                    var upstream = echo ? UpstreamKind.Scripted : UpstreamKind.Nginx;
                    var target = echo ? $"/echo/stream-{index}" : $"/files/5120?i={index}";
                    var outcome = await ConformanceClients.SendAsync(client, fixture.PortOf(RoutePath.Mesh, upstream), new RequestSpec("GET", ConformanceFixture.HostOf(upstream), target));
                    var expected = echo ? Encoding.Latin1.GetBytes(target) : file;
                    if (outcome.Status != 200 || !outcome.Body.AsSpan().SequenceEqual(expected))
                    {
                        lock (failures)
                        {
                            failures.Add($"{target}: {outcome}");
                        }
                    }
                }
            });
            await Task.WhenAll(workers);

            Assert.True(failures.Count == 0, $"{failures.Count} of {Requests} failed:\n" + string.Join("\n", failures.Take(10)));
        }
        finally
        {
            foreach (var client in clients)
            {
                client.Dispose();
            }
        }
    }
}
