// Every member of the JavaScript filter API through a real sidecar, real clients and real upstreams.
using System.Net;
using System.Text.Json;
using Mesh.FunctionalTests.Infrastructure;
using Mesh.Plugins.JavaScript;
using static Mesh.FunctionalTests.Plugins.JavaScript.JsConfig;

namespace Mesh.FunctionalTests.Plugins.JavaScript;

public sealed class JsApiFunctionalTests
{
    private const string Probe = """
        function onRequest(req, ctx) {
          if (req.path.startsWith('/probe')) {
            ctx.respond(200, JSON.stringify({
              method: req.method, scheme: req.scheme, host: req.host, path: req.path,
              q: req.query.q, tenant: req.headers['x-tenant'], session: req.cookies.session,
              clientAddress: req.clientAddress, peer: req.peer, listener: req.listener, route: req.route, service: req.service,
              config: ctx.config.greeting, hash: ctx.hash(req.headers['x-tenant'] ?? ''),
            }), { 'x-probe': 'yes' });
          }
        }
        """;

    private const string Steer = """
        function onRequest(req, ctx) {
          req.setHeader('x-added', 'by-js');
          req.removeHeader('x-secret');
          ctx.items.user = ctx.items.user + '+js';
          ctx.log('steering ' + req.path);
          if (req.headers['x-canary'] === '1') ctx.route('api', 'v2');
          if (req.headers['x-other'] === '1') ctx.route('other');
          if (req.query.limit !== undefined && !ctx.rateLimit('probe', { rate: 0.001, burst: 2 })) ctx.respond(429, 'limited\n', { 'retry-after': '60' });
        }
        function onResponse(res, ctx) {
          res.setHeader('x-seen-status', String(res.status));
          res.setHeader('x-seen-item', ctx.items.user);
          res.removeHeader('x-backend-secret');
        }
        """;

    [Fact]
    public async Task RequestMembersConfigHash_ReadThroughHttp1AndHttp2()
    {
        using var js = new JsFilterDirectory();
        js.Write("probe.js", Probe);
        await using var backend = await TestBackend.StartAsync("api");
        await using var sidecar = await TestSidecar.StartAsync(SidecarConfig(
            js.Path,
            [Route("api", "/", [new { name = "probe.js", config = new { greeting = "hello" } }])],
            Services(("api", TestConfig.Service([backend])))));

        foreach (var http2 in new[] { false, true })
        {
            using var client = http2 ? Clients.Http2() : Clients.Http1();
            var request = Clients.Get(sidecar.Listener(), "/probe/42?q=first&q=second", http2: http2);
            request.Headers.Add("X-Tenant", "acme");
            request.Headers.Add("Cookie", "theme=dark; session=s-1");
            using var response = await client.SendAsync(request);
            var body = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement;

            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.Equal("yes", response.Headers.GetValues("x-probe").Single());
            string? Text(string name) => body.GetProperty(name).ValueKind == JsonValueKind.Null ? null : body.GetProperty(name).GetString();
            Assert.Equal(
                ("GET", "http", "127.0.0.1", "/probe/42", "first", "acme", "s-1"),
                (Text("method"), Text("scheme"), Text("host"), Text("path"), Text("q"), Text("tenant"), Text("session")));
            Assert.Equal(("127.0.0.1", null, "outbound", "api", "api", "hello"), (Text("clientAddress"), Text("peer"), Text("listener"), Text("route"), Text("service"), Text("config")));
            Assert.Equal(JsHash.Fnv1a("acme"), body.GetProperty("hash").GetInt32());
        }

        Assert.Equal(0, backend.Hits);
    }

    [Fact]
    public async Task HeadersRouteItemsLogRateLimitAndResponse_ReachTheUpstreamAndTheClient()
    {
        using var js = new JsFilterDirectory();
        js.Write("steer.js", Steer);
        using var plugins = new PluginDirectory();
        plugins.Write("Toolkit", TestPluginSources.Toolkit);
        await using var v1 = await TestBackend.StartAsync("v1");
        await using var v2 = await TestBackend.StartAsync("v2");
        await using var other = await PythonHttpServer.StartAsync(new Dictionary<string, string> { ["who.txt"] = "python" });
        var logs = new LogCapture();
        await using var sidecar = await TestSidecar.StartAsync(
            SidecarConfig(
                js.Path,
                [Route("api", "/", [new { name = "remember" }, new { name = "steer.js" }, new { name = "recall" }])],
                Services(
                    ("api", new { endpoints = new[] { v1.Endpoint(), Tagged(v2, "v2") } }),
                    ("other", new { endpoints = new[] { other.Endpoint() } })),
                plugins: plugins.Path,
                level: "Information"),
            logs: logs);
        using var client = Clients.Http1();

        var plain = Clients.Get(sidecar.Listener(), "/users?user=ada");
        plain.Headers.Add("x-secret", "hunter2");
        using var toV1 = await client.SendAsync(plain);
        var echo = await TestBackend.ReadEchoAsync(toV1);
        var canary = Clients.Get(sidecar.Listener(), "/users?user=bob");
        canary.Headers.Add("x-canary", "1");
        using var toV2 = await client.SendAsync(canary);
        var rerouted = Clients.Get(sidecar.Listener(), "/who.txt");
        rerouted.Headers.Add("x-other", "1");
        using var toPython = await client.SendAsync(rerouted);

        // The upstream got the header the script set and not the one it removed; a C# filter before it
        // wrote the item bag and one after it read what the script added.
        Assert.Equal("v1", echo.Backend);
        Assert.Equal("by-js", echo.Headers["x-added"]);
        Assert.False(echo.Headers.ContainsKey("x-secret"));
        Assert.StartsWith("ada+js|", echo.Headers["x-recalled"], StringComparison.Ordinal);
        Assert.Equal(("200", "ada+js"), (toV1.Headers.GetValues("x-seen-status").Single(), toV1.Headers.GetValues("x-seen-item").Single()));
        Assert.Equal("v2", (await TestBackend.ReadEchoAsync(toV2)).Backend);
        Assert.Equal("python", await toPython.Content.ReadAsStringAsync());
        Assert.Contains(logs.Entries, e => e.EventId == 5301 && e.Message == "JavaScript filter steer.js on route api: steering /users");

        var limited = new List<HttpStatusCode>();
        for (var i = 0; i < 3; i++)
        {
            using var response = await client.SendAsync(Clients.Get(sidecar.Listener(), "/users?limit=1"));
            limited.Add(response.StatusCode);
            if (response.StatusCode == HttpStatusCode.TooManyRequests)
            {
                Assert.Equal("60", response.Headers.GetValues("Retry-After").Single());
                Assert.Equal("limited\n", await response.Content.ReadAsStringAsync());
            }
        }

        Assert.Equal([HttpStatusCode.OK, HttpStatusCode.OK, HttpStatusCode.TooManyRequests], limited);
    }

    [Fact]
    public async Task ResponseFilter_RemovesAnUpstreamHeader_ClientNeverSeesIt()
    {
        using var js = new JsFilterDirectory();
        js.Write("scrub.js", "function onRequest() {}\nfunction onResponse(res, ctx) { res.removeHeader('server'); res.setHeader('x-status', String(res.status)); }");
        await using var python = await PythonHttpServer.StartAsync(new Dictionary<string, string> { ["a.txt"] = "a" });
        await using var sidecar = await TestSidecar.StartAsync(SidecarConfig(
            js.Path,
            [Route("api", "/", [new { name = "scrub.js" }])],
            Services(("api", new { endpoints = new[] { python.Endpoint() } }))));

        var (_, found) = await Curl.RunAsync("-si", new Uri(sidecar.Listener(), "/a.txt").ToString());
        var (_, missing) = await Curl.RunAsync("-si", new Uri(sidecar.Listener(), "/nope.txt").ToString());

        Assert.StartsWith("HTTP/1.1 200", found, StringComparison.Ordinal);
        Assert.DoesNotContain("SimpleHTTP", found, StringComparison.Ordinal);
        Assert.Contains("x-status: 200", found, StringComparison.OrdinalIgnoreCase);
        Assert.StartsWith("HTTP/1.1 404", missing, StringComparison.Ordinal);
        Assert.Contains("x-status: 404", missing, StringComparison.OrdinalIgnoreCase);
    }
}
