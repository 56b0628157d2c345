// Hard limits on a real sidecar under concurrent load: while(true), allocation, deep recursion; both onError policies; other requests unaffected.
using System.Net;
using Mesh.FunctionalTests.Infrastructure;
using static Mesh.FunctionalTests.Plugins.JavaScript.JsConfig;

namespace Mesh.FunctionalTests.Plugins.JavaScript;

public sealed class JsLimitTests
{
    private const string Bad = """
        function onRequest(req, ctx) {
          if (req.path.endsWith('/spin')) { while (true) {} }
          if (req.path.endsWith('/alloc')) { const a = []; for (;;) a.push({ n: a.length, text: 'x' + a.length }); }
          if (req.path.endsWith('/deep')) { const down = n => down(n + 1) + 1; down(0); }
        }
        """;

    // A light filter on the route other requests take: it must keep answering while the bad ones run.
    private const string Good = "function onRequest(req, ctx) { req.setHeader('x-good', req.headers['x-id'] ?? 'none'); }";

    [Fact]
    public async Task Limits_SpinAllocateRecurse_UnderLoad_RejectOrSkipNamingTheFile_OtherRequestsAnswered()
    {
        using var js = new JsFilterDirectory();
        js.Write("bad.js", Bad);
        js.Write("good.js", Good);
        await using var backend = await TestBackend.StartAsync("api");
        var logs = new LogCapture();
        // The spinning call hits its 100 ms; the others get time enough for their own limit to stop them.
        object Entry(string onError, int timeoutMs) => new { name = "bad.js", onError, timeoutMs };
        await using var sidecar = await TestSidecar.StartAsync(
            SidecarConfig(
                js.Path,
                [
                    Route("skip-spin", "/skip/spin", [Entry("continue", 100)]),
                    Route("skip", "/skip", [Entry("continue", 10_000)]),
                    Route("limited", "/spin", [Entry("reject", 100)]),
                    Route("alloc", "/alloc", [Entry("reject", 10_000)]),
                    Route("deep", "/deep", [Entry("reject", 10_000)]),
                    // Generous time for the good filter: on a loaded machine a thread can wait its turn.
                    Route("good", "/", [new { name = "good.js", timeoutMs = 10_000 }]),
                ],
                Services(("api", TestConfig.Service([backend]))),
                limits: new { maxStatements = 5_000_000, memoryLimitMb = 8, recursionLimit = 40 }),
            logs: logs);

        // A bounded loop of good requests (HTTP/1.1 and HTTP/2) runs the whole time.
        await using var loop = RequestLoop.Start(
            () =>
            {
                var request = Clients.Get(sidecar.Listener(), "/good");
                request.Headers.Add("x-id", "7");
                return request;
            },
            (response, body) => response.StatusCode == HttpStatusCode.OK && body.Contains("\"x-good\":\"7\"", StringComparison.Ordinal) ? "ok" : null,
            perWorker: 400);
        await loop.SeenAsync("ok");

        using var client = Clients.Http1();
        using var http2 = Clients.Http2();
        var bad = new List<Task<HttpResponseMessage>>();
        foreach (var path in new[] { "/spin", "/alloc", "/deep", "/skip/spin", "/skip/alloc", "/skip/deep" })
        {
            for (var i = 0; i < 3; i++)
            {
                bad.Add((i % 2 == 0 ? client : http2).SendAsync(Clients.Get(sidecar.Listener(), path, http2: i % 2 == 1)));
            }
        }

        var responses = await Task.WhenAll(bad);
        var completedBefore = loop.Completed;
        await loop.SeenAsync("ok");
        var (failures, _) = await loop.StopAsync();

        async Task Expect(int index, HttpStatusCode status, string body)
        {
            for (var i = index * 3; i < (index * 3) + 3; i++)
            {
                Assert.Equal(status, responses[i].StatusCode);
                Assert.Equal(body, await responses[i].Content.ReadAsStringAsync());
            }
        }

        await Expect(0, HttpStatusCode.GatewayTimeout, "filter 'bad.js' timed out after 100 ms\n");
        await Expect(1, HttpStatusCode.InternalServerError, "filter 'bad.js' failed\n");
        await Expect(2, HttpStatusCode.InternalServerError, "filter 'bad.js' failed\n");
        for (var i = 9; i < 18; i++)
        {
            // onError continue: the filter is skipped and the request goes upstream.
            Assert.Equal(HttpStatusCode.OK, responses[i].StatusCode);
        }

        Assert.True(failures.Count == 0, $"{failures.Count} good requests failed, first: {failures.FirstOrDefault()}");
        Assert.True(completedBefore > 0);

        // Each breach is counted by limit and logged naming the file.
        var metrics = await client.GetStringAsync(new Uri(sidecar.Admin, "/metrics"));
        Assert.Contains("mesh_js_limit_breaches_total{filter=\"bad.js\",limit=\"time\"} 6", metrics, StringComparison.Ordinal);
        Assert.Contains("mesh_js_limit_breaches_total{filter=\"bad.js\",limit=\"memory\"} 6", metrics, StringComparison.Ordinal);
        Assert.Contains("mesh_js_limit_breaches_total{filter=\"bad.js\",limit=\"recursion\"} 6", metrics, StringComparison.Ordinal);
        Assert.Contains("mesh_filter_timeouts_total{route=\"limited\",filter=\"bad.js\"} 3", metrics, StringComparison.Ordinal);
        Assert.Contains(logs.Entries, e => e.EventId == 5002 && e.Message.Contains("bad.js", StringComparison.Ordinal) && e.Message.Contains("100 ms", StringComparison.Ordinal));
        Assert.Contains(logs.Entries, e => e.EventId == 5001 && e.Message.Contains("bad.js", StringComparison.Ordinal));
    }
}
