// Through a real sidecar: nothing carries from one request to the next, and parallel requests (HTTP/2 streams too) each get their own answer.
using System.Globalization;
using System.Net;
using Mesh.FunctionalTests.Infrastructure;
using static Mesh.FunctionalTests.Plugins.JavaScript.JsConfig;

namespace Mesh.FunctionalTests.Plugins.JavaScript;

public sealed class JsIsolationTests
{
    // Every way a script might keep state: a top-level let, a Set, the global object, a function's property, a frozen const.
    private const string Counter = """
        let count = 0;
        const seen = new Set();
        function onRequest(req, ctx) {
          count++;
          seen.add(req.headers['x-id']);
          let global = 'blocked', property = 'blocked';
          try { globalThis.total = (globalThis.total ?? 0) + 1; global = String(globalThis.total); } catch (e) { }
          try { onRequest.calls = (onRequest.calls ?? 0) + 1; property = String(onRequest.calls); } catch (e) { }
          ctx.respond(200, [count, seen.size, global, property].join(','));
        }
        """;

    private const string SharedCounter = """
        const state = { count: 0 };
        function onRequest(req, ctx) {
          try { state.count++; } catch (e) { }
          ctx.respond(200, String(state.count));
        }
        """;

    // Echoes the request's own id through a per-call variable, after some work that lets calls overlap.
    private const string Echo = """
        function onRequest(req, ctx) {
          const id = req.headers['x-id'];
          let spin = 0;
          for (let i = 0; i < 500; i++) spin += i;
          req.setHeader('x-echo', id + ':' + req.query.n);
          ctx.items.id = id;
        }
        function onResponse(res, ctx) { res.setHeader('x-item', ctx.items.id); }
        """;

    [Fact]
    public async Task State_ManyRequestsOverHttp1AndHttp2_NoneSeesAnothersChanges()
    {
        using var js = new JsFilterDirectory();
        js.Write("counter.js", Counter);
        js.Write("shared.js", SharedCounter);
        await using var backend = await TestBackend.StartAsync("api");
        await using var sidecar = await TestSidecar.StartAsync(SidecarConfig(
            js.Path,
            [Route("frozen", "/frozen", [new { name = "shared.js", timeoutMs = 10_000 }]), Route("counter", "/", [new { name = "counter.js", timeoutMs = 10_000 }])],
            Services(("api", TestConfig.Service([backend])))));
        using var http1 = Clients.Http1();
        using var http2 = Clients.Http2();

        var answers = await Task.WhenAll(Enumerable.Range(0, 120).Select(async i =>
        {
            var h2 = i % 2 == 1;
            var request = Clients.Get(sidecar.Listener(), i % 3 == 0 ? "/frozen" : "/", http2: h2);
            request.Headers.Add("x-id", i.ToString(CultureInfo.InvariantCulture));
            using var response = await (h2 ? http2 : http1).SendAsync(request);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            return (Shared: i % 3 == 0, Body: await response.Content.ReadAsStringAsync());
        }));

        // The top level runs again for each call (it keeps state), so every count starts over; the global object is frozen.
        Assert.All(answers.Where(a => !a.Shared), a => Assert.Equal("1,1,blocked,1", a.Body));
        // A top level of plain constants is shared but frozen: no call can change it.
        Assert.All(answers.Where(a => a.Shared), a => Assert.Equal("0", a.Body));
    }

    [Fact]
    public async Task Parallel_ManyHttp2StreamsAndHttp1Connections_EachGetsItsOwnAnswer()
    {
        using var js = new JsFilterDirectory();
        js.Write("echo.js", Echo);
        await using var backend = await TestBackend.StartAsync("api");
        await using var sidecar = await TestSidecar.StartAsync(SidecarConfig(
            js.Path,
            [Route("api", "/", [new { name = "echo.js", timeoutMs = 10_000 }])],
            Services(("api", TestConfig.Service([backend])))));
        using var http2 = Clients.Http2();
        using var http1 = Clients.Http1();

        // 300 requests at once: most share one HTTP/2 connection, the rest spread over HTTP/1.1 connections.
        var results = await Task.WhenAll(Enumerable.Range(0, 300).Select(async i =>
        {
            var h2 = i % 4 != 0;
            var id = "id-" + i.ToString(CultureInfo.InvariantCulture);
            var request = Clients.Get(sidecar.Listener(), "/?n=" + i.ToString(CultureInfo.InvariantCulture), http2: h2);
            request.Headers.Add("x-id", id);
            using var response = await (h2 ? http2 : http1).SendAsync(request);
            var echo = await TestBackend.ReadEchoAsync(response);
            return (Expected: id + ":" + i.ToString(CultureInfo.InvariantCulture), Echoed: echo.Headers["x-echo"], Item: response.Headers.GetValues("x-item").Single(), Id: id);
        }));

        Assert.All(results, r =>
        {
            Assert.Equal(r.Expected, r.Echoed);
            Assert.Equal(r.Id, r.Item);
        });
    }
}
