// C# plugins on a real sidecar while a bounded request loop runs: add, replace in place, replace by rename, delete, refusals.
using System.Diagnostics;
using System.Net;
using System.Runtime.CompilerServices;
using System.Text.Json;
using System.Text.Json.Nodes;
using Mesh.FunctionalTests.Infrastructure;
using Mesh.Plugins;
using Mesh.Sidecar.Filters;
using Mesh.Tests;
using Xunit.Abstractions;

namespace Mesh.FunctionalTests.Plugins;

public sealed class PluginReloadTests(ITestOutputHelper output)
{
    /// <summary>The issue's promise: a change in plugins/ serves within 2 s.</summary>
    private static readonly TimeSpan Promised = TimeSpan.FromSeconds(2);

    private const string MissingStamp = "filter 'stamp' (routes[0].filters[0]) is not loaded; see /admin/plugins\n";

    internal static object Config(string plugins, TestBackend backend, object[] filters, string level = "Warning") => new
    {
        service = new { name = "client", address = "127.0.0.1", port = 0 },
        admin = new { address = "127.0.0.1", port = 0 },
        listeners = new object[] { new { name = "outbound", address = "127.0.0.1", port = 0, direction = "outbound", protocol = "http" } },
        routes = new object[] { new { name = "api", service = "api", filters } },
        services = new Dictionary<string, object> { ["api"] = TestConfig.Service([backend]) },
        plugins = new { directory = plugins },
        logging = new { level },
    };

    // 200 with the stamp the backend received, or the fail-closed 503 of a missing "stamp"; anything else fails.
    private static string? StampOutcome(HttpResponseMessage response, string body)
    {
        if (response.StatusCode == HttpStatusCode.ServiceUnavailable && body == MissingStamp)
        {
            return "missing";
        }

        if (response.StatusCode != HttpStatusCode.OK)
        {
            return null;
        }

        var echo = JsonSerializer.Deserialize<EchoResponse>(body, new JsonSerializerOptions(JsonSerializerDefaults.Web))!;
        return echo.Headers.TryGetValue("x-stamp", out var stamp) ? "stamp:" + stamp : null;
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
        Assert.True(RequestLoop.Monotonic(sequences, order), "a client saw an older behaviour after a newer one");
    }

    [Fact]
    public async Task Plugin_AddedWhileTrafficFlows_ServesWithin2sWithNoFailedRequest()
    {
        using var plugins = new PluginDirectory();
        await using var backend = await TestBackend.StartAsync("api");
        await using var sidecar = await TestSidecar.StartAsync(Config(plugins.Path, backend, [new { name = "stamp" }]));
        await using var loop = RequestLoop.Start(() => Clients.Get(sidecar.Listener(), "/"), StampOutcome);
        await loop.SeenAsync("missing");

        var latency = await ChangeAndMeasureAsync(loop, "stamp:1.0.0", () => plugins.Write("Stamp", TestPluginSources.Stamp("1.0.0")));

        await AssertCleanAsync(loop, "missing", "stamp:1.0.0");
        Assert.True(latency < Promised, $"served after {latency}");
    }

    [Fact]
    public async Task Plugin_ReplacedInPlaceWhileTrafficFlows_NewVersionWithin2sWithNoFailedRequest()
    {
        using var plugins = new PluginDirectory();
        plugins.Write("Stamp", TestPluginSources.Stamp("1.0.0"));
        await using var backend = await TestBackend.StartAsync("api");
        await using var sidecar = await TestSidecar.StartAsync(Config(plugins.Path, backend, [new { name = "stamp" }]));
        await using var loop = RequestLoop.Start(() => Clients.Get(sidecar.Listener(), "/"), StampOutcome);
        await loop.SeenAsync("stamp:1.0.0");
        var v2 = PluginCompiler.Compile("Stamp", TestPluginSources.Stamp("2.0.0"), "2.0.0");

        var latency = await ChangeAndMeasureAsync(loop, "stamp:2.0.0", () => plugins.WriteInPlace("Stamp", v2));

        await AssertCleanAsync(loop, "stamp:1.0.0", "stamp:2.0.0");
        Assert.True(latency < Promised, $"served after {latency}");
    }

    [Fact]
    public async Task Plugin_ReplacedByRenameWhileTrafficFlows_NewVersionWithin2sWithNoFailedRequest()
    {
        using var plugins = new PluginDirectory();
        plugins.Write("Stamp", TestPluginSources.Stamp("1.0.0"));
        await using var backend = await TestBackend.StartAsync("api");
        await using var sidecar = await TestSidecar.StartAsync(Config(plugins.Path, backend, [new { name = "stamp" }]));
        await using var loop = RequestLoop.Start(() => Clients.Get(sidecar.Listener(), "/"), StampOutcome);
        await loop.SeenAsync("stamp:1.0.0");

        var latency = await ChangeAndMeasureAsync(loop, "stamp:3.0.0", () => plugins.WriteByRename("Stamp", TestPluginSources.Stamp("3.0.0"), "3.0.0"));

        await AssertCleanAsync(loop, "stamp:1.0.0", "stamp:3.0.0");
        Assert.True(latency < Promised, $"served after {latency}");
    }

    [Fact]
    public async Task Plugin_AuthPluginDeletedWhileTrafficFlows_FailsClosedWithin2s()
    {
        using var plugins = new PluginDirectory();
        plugins.Write("Auth", TestPluginSources.Auth);
        await using var backend = await TestBackend.StartAsync("api");
        await using var sidecar = await TestSidecar.StartAsync(Config(plugins.Path, backend, [new { name = "auth" }]));
        const string missing = "filter 'auth' (routes[0].filters[0]) is not loaded; see /admin/plugins\n";
        HttpRequestMessage WithKey()
        {
            var request = Clients.Get(sidecar.Listener(), "/");
            request.Headers.Add("x-key", "secret");
            return request;
        }

        await using var loop = RequestLoop.Start(WithKey, (response, body) =>
            response.StatusCode == HttpStatusCode.OK ? "allowed"
            : response.StatusCode == HttpStatusCode.ServiceUnavailable && body == missing ? "closed"
            : null);
        await loop.SeenAsync("allowed");
        using var client = Clients.Http1();
        Assert.Equal(HttpStatusCode.Unauthorized, (await client.SendAsync(Clients.Get(sidecar.Listener(), "/"))).StatusCode);

        var latency = await ChangeAndMeasureAsync(loop, "closed", () => plugins.Delete("Auth"));

        await AssertCleanAsync(loop, "allowed", "closed");
        Assert.True(latency < Promised, $"closed after {latency}");
        // Without the filter nobody gets through, with or without a key: it never opens the door.
        using var noKey = await client.SendAsync(Clients.Get(sidecar.Listener(), "/"));
        Assert.Equal(HttpStatusCode.ServiceUnavailable, noKey.StatusCode);
        Assert.Equal(missing, await noKey.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task Plugin_CorruptFileReplacesIt_RefusedWithReasonAndOldVersionKeepsServing()
    {
        using var plugins = new PluginDirectory();
        plugins.Write("Stamp", TestPluginSources.Stamp("1.0.0"));
        await using var backend = await TestBackend.StartAsync("api");
        var logs = new LogCapture();
        await using var sidecar = await TestSidecar.StartAsync(Config(plugins.Path, backend, [new { name = "stamp" }]), logs: logs);
        await using var loop = RequestLoop.Start(() => Clients.Get(sidecar.Listener(), "/"), StampOutcome);
        await loop.SeenAsync("stamp:1.0.0");

        var file = plugins.WriteInPlace("Stamp", [.. Enumerable.Range(0, 8192).Select(i => (byte)(i * 31 + 7))]);
        var plugin = await WaitForPluginAsync(sidecar, file, p => p["refused"] is not null);
        await loop.SeenAsync("stamp:1.0.0");

        await AssertCleanAsync(loop, "stamp:1.0.0");
        Assert.Equal("loaded", (string?)plugin["state"]);
        Assert.Equal("1.0.0", (string?)plugin["assemblyVersion"]);
        Assert.Equal("not a .NET assembly (no PE header)", (string?)plugin["refused"]!["reason"]);
        Assert.Single(logs.Entries, e => e.EventId == 5201 && e.Message.Contains(file, StringComparison.Ordinal) && e.Message.Contains("not a .NET assembly", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Plugin_NewVersionWhoseConstructorThrows_RefusedAndOldVersionKeepsServing()
    {
        using var plugins = new PluginDirectory();
        plugins.Write("Stamp", TestPluginSources.Stamp("1.0.0"));
        await using var backend = await TestBackend.StartAsync("api");
        await using var sidecar = await TestSidecar.StartAsync(Config(plugins.Path, backend, [new { name = "stamp" }]));
        await using var loop = RequestLoop.Start(() => Clients.Get(sidecar.Listener(), "/"), StampOutcome);
        await loop.SeenAsync("stamp:1.0.0");

        var file = plugins.WriteByRename("Stamp", TestPluginSources.Stamp("2.0.0", constructorThrows: true), "2.0.0");
        var plugin = await WaitForPluginAsync(sidecar, file, p => p["refused"] is not null);

        await AssertCleanAsync(loop, "stamp:1.0.0");
        Assert.Equal("constructor of Stamp.StampFactory threw InvalidOperationException: stamp cannot start", (string?)plugin["refused"]!["reason"]);
        Assert.Equal("1.0.0", (string?)plugin["assemblyVersion"]);
    }

    [Fact]
    public async Task Plugin_NewVersionRejectsTheCurrentConfig_RefusedAndOldVersionKeepsServing()
    {
        using var plugins = new PluginDirectory();
        plugins.Write("Stamp", TestPluginSources.Stamp("1.0.0"));
        await using var backend = await TestBackend.StartAsync("api");
        await using var sidecar = await TestSidecar.StartAsync(Config(plugins.Path, backend, [new { name = "stamp", config = new { mode = "strict" } }]));
        await using var loop = RequestLoop.Start(() => Clients.Get(sidecar.Listener(), "/"), StampOutcome);
        await loop.SeenAsync("stamp:1.0.0");

        var file = plugins.WriteByRename("Stamp", TestPluginSources.StampRejectingConfig, "2.0.0");
        var plugin = await WaitForPluginAsync(sidecar, file, p => p["refused"] is not null);

        await AssertCleanAsync(loop, "stamp:1.0.0");
        Assert.Equal("its filters do not build with the current config: routes[0].filters[0].config.mode: unknown setting in this version", (string?)plugin["refused"]!["reason"]);
    }

    [Fact]
    public async Task Plugin_Replaced_InFlightRequestFinishesOnOldChainThenOldContextIsCollected()
    {
        using var plugins = new PluginDirectory();
        plugins.Write("Stamp", TestPluginSources.Stamp("1.0.0"));
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var slowStarted = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var backend = await TestBackend.StartAsync("api", configure: app => app.Run(async context =>
        {
            if (context.Request.Path == "/slow")
            {
                slowStarted.TrySetResult();
                await release.Task;
            }

            await context.Response.WriteAsJsonAsync(TestBackend.Echo("api", context));
        }));
        await using var sidecar = await TestSidecar.StartAsync(Config(plugins.Path, backend, [new { name = "stamp" }]));
        using var client = Clients.Http1();
        var slow = client.SendAsync(Clients.Get(sidecar.Listener(), "/slow"));
        await slowStarted.Task.WaitAsync(TestSidecar.Deadline);
        var runtime = sidecar.Sidecar.App.Services.GetRequiredService<FilterRuntime>();
        var v1 = runtime.Catalog.Registry.PackageOf("stamp")!;

        var replaced = sidecar.NextStateAsync();
        plugins.WriteByRename("Stamp", TestPluginSources.Stamp("2.0.0"), "2.0.0");
        await replaced.WaitAsync(TestSidecar.Deadline);
        using var fresh = await client.SendAsync(Clients.Get(sidecar.Listener(), "/"));
        Assert.Equal("2.0.0", fresh.Headers.GetValues("x-stamp-response").Single());

        // The old version drains: the in-flight request still holds its filter, so its context lives.
        // It is retired right after the swap that new requests already see, so wait for it.
        await Mesh.FunctionalTests.Consul.ConsulHarness.EventuallyAsync(() => Task.FromResult(v1.State != PackageState.Loaded), "the old version retired");
        Assert.Equal(PackageState.Draining, v1.State);
        Collect(v1);
        Assert.True(v1.LoadContext!.IsAlive);

        release.SetResult();
        using var finished = await slow.WaitAsync(TestSidecar.Deadline);
        // Its request and response filters were the old version's, though the response came after the swap.
        Assert.Equal("1.0.0", (await TestBackend.ReadEchoAsync(finished)).Headers["x-stamp"]);
        Assert.Equal("1.0.0", finished.Headers.GetValues("x-stamp-response").Single());

        Assert.Equal(PackageState.Unloaded, v1.State);
        Collect(v1);
        Assert.False(v1.LoadContext!.IsAlive, "the old plugin's load context was not collected after its last request");
        var retired = (await AdminJsonAsync(sidecar, "/admin/plugins"))["retired"]!.AsArray().Single(r => (string?)r!["assemblyVersion"] == "1.0.0")!;
        Assert.Equal(("unloaded", true), ((string?)retired["state"], (bool)retired["collected"]!));
    }

    [Fact]
    public async Task Plugin_SecondFileWithTheSameFilterName_RefusedUntilTheFirstIsDeletedThenServes()
    {
        using var plugins = new PluginDirectory();
        plugins.Write("Stamp", TestPluginSources.Stamp("1.0.0"));
        await using var backend = await TestBackend.StartAsync("api");
        await using var sidecar = await TestSidecar.StartAsync(Config(plugins.Path, backend, [new { name = "stamp" }]));
        await using var loop = RequestLoop.Start(() => Clients.Get(sidecar.Listener(), "/"), StampOutcome);
        await loop.SeenAsync("stamp:1.0.0");

        var second = plugins.Write("StampToo", TestPluginSources.Stamp("2.0.0"), "2.0.0");
        var refused = await WaitForPluginAsync(sidecar, second, p => (string?)p["state"] == "refused");
        Assert.Equal($"filter name 'stamp' is already published by {Path.Combine(plugins.Path, "Stamp.dll")}", (string?)refused["refused"]!["reason"]);

        // The first goes away: the second, refused only for the clash, loads without being touched.
        await ChangeAndMeasureAsync(loop, "stamp:2.0.0", () => plugins.Delete("Stamp"));

        await AssertCleanAsync(loop, "stamp:1.0.0", "missing", "stamp:2.0.0");
        Assert.Equal("loaded", (string?)(await WaitForPluginAsync(sidecar, second, p => (string?)p["state"] == "loaded"))["state"]);
    }

    [Fact]
    public async Task Plugin_MissingAtStart_SidecarStartsAndTheRouteFailsClosed()
    {
        using var plugins = new PluginDirectory();
        await using var backend = await TestBackend.StartAsync("api");
        var logs = new LogCapture();
        await using var sidecar = await TestSidecar.StartAsync(Config(plugins.Path, backend, [new { name = "stamp" }]), logs: logs);
        using var client = Clients.Http1();

        using var response = await client.SendAsync(Clients.Get(sidecar.Listener(), "/"));

        Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
        Assert.Equal(MissingStamp, await response.Content.ReadAsStringAsync());
        Assert.Equal(0, backend.Hits);
        Assert.Contains(logs.Entries, e => e.EventId == 5205 && e.Message.StartsWith("routes[0].filters[0]:", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Reload_FilterSettingRejectedByFactory_ConfigRejectedAndLastGoodKeepsServing()
    {
        using var plugins = new PluginDirectory();
        plugins.Write("Stamp", TestPluginSources.Stamp("1.0.0"));
        await using var backend = await TestBackend.StartAsync("api");
        await using var sidecar = await TestSidecar.StartAsync(Config(plugins.Path, backend, [new { name = "stamp" }]));
        var rejected = await MetricAsync(sidecar, "mesh_config_reloads_total{result=\"rejected\"}");

        await sidecar.WriteConfigAsync(JsonSerializer.Serialize(Config(plugins.Path, backend, [new { name = "stamp", config = new { refuse = true } }])));
        await WaitForMetricAsync(sidecar, "mesh_config_reloads_total{result=\"rejected\"}", rejected + 1);

        using var client = Clients.Http1();
        using var response = await client.SendAsync(Clients.Get(sidecar.Listener(), "/"));
        Assert.Equal("1.0.0", (await TestBackend.ReadEchoAsync(response)).Headers["x-stamp"]);
    }

    [Fact]
    public async Task Plugin_BuiltAgainstContract10_ServesTraffic()
    {
        using var plugins = new PluginDirectory();
        File.WriteAllBytes(Path.Combine(plugins.Path, "Legacy.dll"), PluginCompiler.Compile("Legacy", """
            namespace Legacy;
            public sealed class LegacyFactory : IRequestFilterFactory
            {
                public string Name => "legacy";
                public IRequestFilter Create(IReadOnlyDictionary<string, string> settings) => new LegacyFilter(settings["greeting"]);
            }
            public sealed class LegacyFilter(string greeting) : IRequestFilter
            {
                public ValueTask<FilterResult> OnRequestAsync(IRequestContext context, CancellationToken cancellationToken)
                {
                    context.SetHeader("x-greeting", greeting + " " + context.Route);
                    return ValueTask.FromResult(FilterResult.Continue);
                }
            }
            """, contract: PluginCompiler.Contract10()));
        await using var backend = await TestBackend.StartAsync("api");
        await using var sidecar = await TestSidecar.StartAsync(Config(plugins.Path, backend, [new { name = "legacy", config = new { greeting = "hello" } }]));
        using var client = Clients.Http1();

        using var response = await client.SendAsync(Clients.Get(sidecar.Listener(), "/"));

        Assert.Equal("hello api", (await TestBackend.ReadEchoAsync(response)).Headers["x-greeting"]);
    }

    internal static async Task<JsonNode> AdminJsonAsync(TestSidecar sidecar, string path)
    {
        using var client = Clients.Http1();
        return JsonNode.Parse(await client.GetStringAsync(new Uri(sidecar.Admin, path)))!;
    }

    // Reads /admin/plugins as an operator would until the plugin of that file is in the wanted state.
    internal static async Task<JsonNode> WaitForPluginAsync(TestSidecar sidecar, string file, Func<JsonNode, bool> condition)
    {
        using var deadline = new CancellationTokenSource(TestSidecar.Deadline);
        while (true)
        {
            var plugins = (await AdminJsonAsync(sidecar, "/admin/plugins"))["plugins"]!.AsArray();
            if (plugins.FirstOrDefault(p => (string?)p!["id"] == file) is { } plugin && condition(plugin))
            {
                return plugin;
            }

            await Task.Delay(50, deadline.Token);
        }
    }

    internal static async Task<double> MetricAsync(TestSidecar sidecar, string series)
    {
        using var client = Clients.Http1();
        var text = await client.GetStringAsync(new Uri(sidecar.Admin, "/metrics"));
        var line = text.Split('\n').FirstOrDefault(l => l.StartsWith(series + " ", StringComparison.Ordinal));
        return line is null ? 0 : double.Parse(line[(series.Length + 1)..], System.Globalization.CultureInfo.InvariantCulture);
    }

    internal static async Task WaitForMetricAsync(TestSidecar sidecar, string series, double value)
    {
        using var deadline = new CancellationTokenSource(TestSidecar.Deadline);
        while (await MetricAsync(sidecar, series) < value)
        {
            await Task.Delay(50, deadline.Token);
        }
    }

    // Bounded: an unloaded context is collected within a few collections once nothing refers to it.
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void Collect(FilterPackage package)
    {
        for (var i = 0; i < 20 && package.LoadContext!.IsAlive; i++)
        {
            GC.Collect();
            GC.WaitForPendingFinalizers();
        }
    }
}
