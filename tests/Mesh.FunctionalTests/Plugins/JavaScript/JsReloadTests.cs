// JavaScript files changed while a bounded request loop runs: add, edit in place, replace by rename, delete, syntax errors.
using System.Diagnostics;
using System.Net;
using System.Text.Json;
using Mesh.FunctionalTests.Infrastructure;
using Xunit.Abstractions;
using static Mesh.FunctionalTests.Plugins.JavaScript.JsConfig;
using static Mesh.FunctionalTests.Plugins.PluginReloadTests;

namespace Mesh.FunctionalTests.Plugins.JavaScript;

public sealed class JsReloadTests(ITestOutputHelper output)
{
    /// <summary>The promise: a change in the filters directory serves within 2 s.</summary>
    private static readonly TimeSpan Promised = TimeSpan.FromSeconds(2);

    private const string Missing = "filter 'stamp.js' (routes[0].filters[0]) is not loaded; see /admin/plugins\n";

    private static string Stamp(string version) =>
        $"// version {version}\nfunction onRequest(req, ctx) {{ req.setHeader('x-stamp', '{version}'); }}\nfunction onResponse(res, ctx) {{ res.setHeader('x-stamp-response', '{version}'); }}\n";

    // 200 with the stamp the backend received (and the same version on the response), or the fail-closed 503.
    private static string? Outcome(HttpResponseMessage response, string body)
    {
        if (response.StatusCode == HttpStatusCode.ServiceUnavailable && body == Missing)
        {
            return "missing";
        }

        if (response.StatusCode != HttpStatusCode.OK)
        {
            return null;
        }

        var echo = JsonSerializer.Deserialize<EchoResponse>(body, new JsonSerializerOptions(JsonSerializerDefaults.Web))!;
        return echo.Headers.TryGetValue("x-stamp", out var stamp) && response.Headers.TryGetValues("x-stamp-response", out var back) && back.Single() == stamp
            ? "stamp:" + stamp
            : null;
    }

    private async Task<(TestSidecar Sidecar, TestBackend Backend)> StartAsync(JsFilterDirectory js, LogCapture? logs = null)
    {
        var backend = await TestBackend.StartAsync("api");
        var sidecar = await TestSidecar.StartAsync(
            SidecarConfig(js.Path, [new { name = "api", service = "api", filters = new object[] { new { name = "stamp.js", timeoutMs = 10_000 } } }], Services(("api", TestConfig.Service([backend])))),
            logs: logs);
        return (sidecar, backend);
    }

    private async Task<TimeSpan> ChangeAndMeasureAsync(RequestLoop loop, string expected, Action change)
    {
        var started = Stopwatch.GetTimestamp();
        change();
        var seen = await loop.SeenAsync(expected);
        var latency = Stopwatch.GetElapsedTime(started, seen);
        output.WriteLine($"{expected} served {latency.TotalMilliseconds:0} ms after the change");
        return latency;
    }

    private static async Task AssertCleanAsync(RequestLoop loop, params string[] order)
    {
        var (failures, sequences) = await loop.StopAsync();
        Assert.True(failures.Count == 0, $"{failures.Count} failed requests, first: {failures.FirstOrDefault()}");
        Assert.True(RequestLoop.Monotonic(sequences, order), "a client saw an older version after a newer one");
    }

    [Fact]
    public async Task File_AddedEditedReplacedByRename_EachServesWithin2sWithNoFailedRequest()
    {
        using var js = new JsFilterDirectory();
        var (sidecar, backend) = await StartAsync(js);
        await using var _ = backend;
        await using var __ = sidecar;
        await using var loop = RequestLoop.Start(() => Clients.Get(sidecar.Listener(), "/"), Outcome, perWorker: 3000);
        await loop.SeenAsync("missing");

        var added = await ChangeAndMeasureAsync(loop, "stamp:1", () => js.Write("stamp.js", Stamp("1")));
        var edited = await ChangeAndMeasureAsync(loop, "stamp:2", () => js.Write("stamp.js", Stamp("2")));
        var renamed = await ChangeAndMeasureAsync(loop, "stamp:3", () => js.WriteByRename("stamp.js", Stamp("3")));

        await AssertCleanAsync(loop, "missing", "stamp:1", "stamp:2", "stamp:3");
        Assert.All(new[] { added, edited, renamed }, latency => Assert.True(latency < Promised, $"served after {latency}"));
    }

    [Fact]
    public async Task File_SyntaxError_RefusedWithPositionInAdminAndLog_OldVersionKeepsServing()
    {
        using var js = new JsFilterDirectory();
        var file = js.Write("stamp.js", Stamp("1"));
        var logs = new LogCapture();
        var (sidecar, backend) = await StartAsync(js, logs);
        await using var _ = backend;
        await using var __ = sidecar;
        await using var loop = RequestLoop.Start(() => Clients.Get(sidecar.Listener(), "/"), Outcome, perWorker: 3000);
        await loop.SeenAsync("stamp:1");

        js.Write("stamp.js", "// version 2\nfunction onRequest(req, ctx) {\n  req.setHeader('x-stamp', '2'\n}\n");
        var plugin = await WaitForPluginAsync(sidecar, file, p => p["refused"] is not null);
        await loop.SeenAsync("stamp:1");
        var fixedLatency = await ChangeAndMeasureAsync(loop, "stamp:3", () => js.Write("stamp.js", Stamp("3")));

        await AssertCleanAsync(loop, "stamp:1", "stamp:3");
        Assert.Equal(("loaded", "javascript"), ((string?)plugin["state"], (string?)plugin["source"]));
        var reason = (string?)plugin["refused"]!["reason"];
        Assert.StartsWith("stamp.js:4:1: ", reason, StringComparison.Ordinal);
        Assert.Contains(logs.Entries, e => e.EventId == 5201 && e.Message.Contains(file, StringComparison.Ordinal) && e.Message.Contains("stamp.js:4:1: ", StringComparison.Ordinal));
        Assert.True(fixedLatency < Promised, $"served after {fixedLatency}");
        var fixedPlugin = await WaitForPluginAsync(sidecar, file, p => p["refused"] is null);
        Assert.Equal(Mesh.Sidecar.Filters.PluginsAdmin.SharedTopLevel, (string?)fixedPlugin["topLevel"]);
    }

    [Fact]
    public async Task File_DeletedWhileARouteNamesIt_FailsClosed503NamingIt()
    {
        using var js = new JsFilterDirectory();
        js.Write("stamp.js", "function onRequest(req, ctx) { if (req.headers['x-key'] !== 'k') ctx.respond(401, 'no\\n'); }");
        var (sidecar, backend) = await StartAsync(js);
        await using var _ = backend;
        await using var __ = sidecar;
        HttpRequestMessage WithKey()
        {
            var request = Clients.Get(sidecar.Listener(), "/");
            request.Headers.Add("x-key", "k");
            return request;
        }

        await using var loop = RequestLoop.Start(WithKey, (response, body) =>
            response.StatusCode == HttpStatusCode.OK ? "allowed"
            : response.StatusCode == HttpStatusCode.ServiceUnavailable && body == Missing ? "closed"
            : null, perWorker: 3000);
        await loop.SeenAsync("allowed");

        var latency = await ChangeAndMeasureAsync(loop, "closed", () => js.Delete("stamp.js"));

        await AssertCleanAsync(loop, "allowed", "closed");
        Assert.True(latency < Promised, $"closed after {latency}");
        using var client = Clients.Http1();
        using var noKey = await client.SendAsync(Clients.Get(sidecar.Listener(), "/"));
        Assert.Equal((HttpStatusCode.ServiceUnavailable, Missing), (noKey.StatusCode, await noKey.Content.ReadAsStringAsync()));
    }
}
