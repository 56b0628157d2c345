// Endpoints from Consul reach L7 and L4 routing as they change: added, removed, critical, subsets by tag, index resets.
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using Mesh.FunctionalTests.Infrastructure;
using Mesh.FunctionalTests.L4;
using Mesh.Tests.Consul;
using Xunit.Abstractions;

namespace Mesh.FunctionalTests.Consul;

public sealed class ConsulRoutingTests(ITestOutputHelper output) : IAsyncLifetime
{
    private ConsulTestServer _consul = null!;

    public async Task InitializeAsync() => _consul = await ConsulTestServer.StartAsync();

    public async Task DisposeAsync() => await _consul.DisposeAsync();

    [Fact]
    public async Task L7_EndpointsAddedRemovedAndCritical_ReachRouting()
    {
        await using var b1 = await TestBackend.StartAsync("b1");
        await using var b2 = await TestBackend.StartAsync("b2");
        _consul.AddInstance("api", b1.Port, id: "b1");
        await using var sidecar = await TestSidecar.StartAsync(ConsulHarness.Outbound(_consul));
        using var client = Clients.Http1();

        // Present from the first request: start waits for Consul's first answer.
        Assert.Equal([b1.Port], ConsulHarness.Ports(sidecar, "api"));
        Assert.All(await ConsulHarness.BackendsAsync(client, sidecar.Listener(), 4), n => Assert.Equal("b1", n));

        await ChangeAndMeasureAsync(sidecar, "added", () => _consul.AddInstance("api", b2.Port, id: "b2"), b1.Port, b2.Port);
        Assert.Equal(["b1", "b2"], (await ConsulHarness.BackendsAsync(client, sidecar.Listener(), 4)).Distinct().Order());

        await ChangeAndMeasureAsync(sidecar, "critical", () => _consul.SetHealth("b1", "critical"), b2.Port);
        Assert.All(await ConsulHarness.BackendsAsync(client, sidecar.Listener(), 4), n => Assert.Equal("b2", n));

        await ChangeAndMeasureAsync(sidecar, "removed", () => _consul.State.Deregister("b2"));
        using var none = await client.GetAsync(sidecar.Listener());
        Assert.Equal(HttpStatusCode.ServiceUnavailable, none.StatusCode);

        await ChangeAndMeasureAsync(sidecar, "passing again", () => _consul.SetHealth("b1", "passing"), b1.Port);
        Assert.All(await ConsulHarness.BackendsAsync(client, sidecar.Listener(), 2), n => Assert.Equal("b1", n));
    }

    [Fact]
    public async Task L7_InFlightRequest_CompletesWhileItsEndpointLeavesConsul()
    {
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var entered = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var slow = await TestBackend.StartAsync("slow", configure: app => app.Run(async context =>
        {
            entered.TrySetResult();
            await release.Task;
            await context.Response.WriteAsync("done");
        }));
        await using var other = await TestBackend.StartAsync("other");
        _consul.AddInstance("api", slow.Port, id: "slow");
        await using var sidecar = await TestSidecar.StartAsync(ConsulHarness.Outbound(_consul));
        using var client = Clients.Http1();

        var inFlight = client.GetAsync(sidecar.Listener());
        await entered.Task.WaitAsync(TestSidecar.Deadline);
        _consul.AddInstance("api", other.Port, id: "other");
        _consul.SetHealth("slow", "critical");
        await ConsulHarness.WaitForPortsAsync(sidecar, "api", other.Port);
        release.SetResult();
        using var response = await inFlight.WaitAsync(TestSidecar.Deadline);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("done", await response.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task L7_PythonHttpServerInConsul_ServedThroughTheSidecar()
    {
        await using var python = await PythonHttpServer.StartAsync("python-upstream");
        _consul.AddInstance("files", python.Port);
        await using var sidecar = await TestSidecar.StartAsync(ConsulHarness.Outbound(_consul, service: "files"));
        using var client = Clients.Http1();

        using var response = await client.GetAsync(new Uri(sidecar.Listener(), "/whoami.txt"));

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("python-upstream", (await response.Content.ReadAsStringAsync()).Trim());
        Assert.StartsWith("SimpleHTTP", response.Headers.Server.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task L4_EndpointsAddedRemovedAndCritical_ReachRoutingAndOpenConnectionsSurvive()
    {
        await using var e1 = new TcpPeer("e1");
        await using var e2 = new TcpPeer("e2");
        _consul.AddInstance("echo", e1.Port, id: "e1");
        await using var sidecar = await TestSidecar.StartAsync(new
        {
            service = new { name = "client" },
            admin = new { address = "127.0.0.1", port = 0 },
            listeners = new[] { new { name = "tcp", address = "127.0.0.1", port = 0, protocol = "tcp", service = "echo" } },
            services = new Dictionary<string, object> { ["echo"] = new { discovery = "consul" } },
            consul = new { address = _consul.Address.ToString(), register = false },
        });
        var listener = sidecar.Sidecar.EndpointOf("tcp");

        using var open = await ConnectAsync(listener);
        Assert.Equal("e1:a", await RoundTripAsync(open, "a"));

        await ChangeAndMeasureAsync(sidecar, "added", () => _consul.AddInstance("echo", e2.Port, id: "e2"), e1.Port, e2.Port, cluster: "echo");
        await ChangeAndMeasureAsync(sidecar, "critical", () => _consul.SetHealth("e1", "critical"), e2.Port, cluster: "echo");
        for (var i = 0; i < 3; i++)
        {
            using var fresh = await ConnectAsync(listener);
            Assert.Equal("e2:x", await RoundTripAsync(fresh, "x"));
        }

        // The connection opened to e1 before it left Consul keeps relaying.
        Assert.Equal("e1:b", await RoundTripAsync(open, "b"));

        await ChangeAndMeasureAsync(sidecar, "removed", () => _consul.State.Deregister("e2"), cluster: "echo");
        Assert.True(await NotServedAsync(listener), "a connection with no endpoint left is closed or reset");
    }

    [Fact]
    public async Task SubsetByTag_CanaryHeaderGoesToV2Only()
    {
        await using var v1 = await TestBackend.StartAsync("v1");
        await using var v2 = await TestBackend.StartAsync("v2");
        _consul.AddInstance("api", v1.Port, id: "api-v1", tags: ["v1"]);
        _consul.AddInstance("api", v2.Port, id: "api-v2", tags: ["v2", "canary"]);
        var routes = new object[]
        {
            TestConfig.Route("canary", "api-v2", new { headers = new[] { new { name = "x-canary", exact = "true" } } }),
            TestConfig.Route("stable", "api-v1"),
        };
        var services = new Dictionary<string, object>
        {
            ["api-v1"] = new { discovery = "consul", consul = new { service = "api", tag = "v1" } },
            ["api-v2"] = new { discovery = "consul", consul = new { service = "api", tag = "v2" } },
        };
        await using var sidecar = await TestSidecar.StartAsync(ConsulHarness.Outbound(_consul, routes: routes, services: services));
        using var client = Clients.Http1();

        Assert.All(await ConsulHarness.BackendsAsync(client, sidecar.Listener(), 6, header: "x-canary"), n => Assert.Equal("v2", n));
        Assert.All(await ConsulHarness.BackendsAsync(client, sidecar.Listener(), 6), n => Assert.Equal("v1", n));
        Assert.Equal(["canary", "v2"], sidecar.State.Current.Clusters["api-v2"].Endpoints.Single().Endpoint.Tags.Order());

        // Retagging in Consul moves an instance between subsets.
        _consul.AddInstance("api", v1.Port, id: "api-v1", tags: ["v2"]);
        await ConsulHarness.WaitForPortsAsync(sidecar, "api-v2", v1.Port, v2.Port);
        await ConsulHarness.WaitForPortsAsync(sidecar, "api-v1");
        Assert.Equal(["v1", "v2"], (await ConsulHarness.BackendsAsync(client, sidecar.Listener(), 6, header: "x-canary")).Distinct().Order());
    }

    [Fact]
    public async Task Weights_FromConsul_SetEndpointWeights()
    {
        await using var heavy = await TestBackend.StartAsync("heavy");
        await using var light = await TestBackend.StartAsync("light");
        _consul.AddInstance("api", heavy.Port, passingWeight: 3);
        _consul.AddInstance("api", light.Port, passingWeight: 1);
        await using var sidecar = await TestSidecar.StartAsync(ConsulHarness.Outbound(_consul));
        using var client = Clients.Http1();

        var names = await ConsulHarness.BackendsAsync(client, sidecar.Listener(), 8);

        Assert.Equal(6, names.Count(n => n == "heavy"));
        Assert.Equal(2, names.Count(n => n == "light"));
    }

    [Fact]
    public async Task IndexReset_LowerIndexMakesAFullReadAndChangesStillArrive()
    {
        await using var b1 = await TestBackend.StartAsync("b1");
        await using var b2 = await TestBackend.StartAsync("b2");
        _consul.MaxWait = TimeSpan.FromMilliseconds(300);
        _consul.AddInstance("other", 1);
        _consul.AddInstance("other", 2);
        _consul.AddInstance("api", b1.Port);
        await using var sidecar = await TestSidecar.StartAsync(ConsulHarness.Outbound(_consul));
        var before = _consul.State.ServiceIndex("api");

        _consul.State.ResetIndex(1);
        var lower = await _consul.WaitForRequestAsync(r => r.Path == "/v1/health/service/api" && r.Index < before, TestSidecar.Deadline, "a lower index");
        var next = await _consul.WaitForRequestAsync(r => r.Path == "/v1/health/service/api" && r.Received > lower.Received, TestSidecar.Deadline, "the read after it");
        _consul.AddInstance("api", b2.Port);
        await ConsulHarness.WaitForPortsAsync(sidecar, "api", b1.Port, b2.Port);

        Assert.Equal(0UL, next.QueryIndex);
    }

    // Applies a change in Consul and waits for the routing state; prints how long after Consul answered the swap came.
    private async Task ChangeAndMeasureAsync(TestSidecar sidecar, string what, Action change, params int[] ports) =>
        await ChangeAndMeasureAsync(sidecar, what, change, ports, "api");

    private async Task ChangeAndMeasureAsync(TestSidecar sidecar, string what, Action change, int port, int? port2 = null, string cluster = "api") =>
        await ChangeAndMeasureAsync(sidecar, what, change, port2 is { } p ? [port, p] : [port], cluster);

    private async Task ChangeAndMeasureAsync(TestSidecar sidecar, string what, Action change, string cluster) =>
        await ChangeAndMeasureAsync(sidecar, what, change, [], cluster);

    private async Task ChangeAndMeasureAsync(TestSidecar sidecar, string what, Action change, int[] ports, string cluster)
    {
        var clock = Stopwatch.StartNew();
        change();
        var service = cluster;
        var index = _consul.State.ServiceIndex(service);
        var swapped = await ConsulHarness.WaitForPortsAsync(sidecar, cluster, ports);
        var answered = ConsulHarness.AnsweredAt(_consul, service, index);
        output.WriteLine($"{what}: routing changed {clock.Elapsed.TotalMilliseconds:0} ms after the change, {(answered is { } a ? $"{(swapped - a).TotalMilliseconds:0} ms" : "?")} after Consul answered");
    }

    private static async Task<Socket> ConnectAsync(IPEndPoint endpoint)
    {
        var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await socket.ConnectAsync(endpoint);
        return socket;
    }

    private static async Task<string> RoundTripAsync(Socket socket, string text)
    {
        await socket.SendAsync(Encoding.ASCII.GetBytes(text), SocketFlags.None);
        // The echo answers "name:" and the bytes in two writes: read until the text is back.
        var buffer = new byte[256];
        var received = 0;
        using var deadline = new CancellationTokenSource(TestSidecar.Deadline);
        while (!Encoding.ASCII.GetString(buffer, 0, received).EndsWith(":" + text, StringComparison.Ordinal))
        {
            var read = await socket.ReceiveAsync(buffer.AsMemory(received), SocketFlags.None, deadline.Token);
            if (read == 0)
            {
                break;
            }

            received += read;
        }

        return Encoding.ASCII.GetString(buffer, 0, received);
    }

    // No endpoint: the sidecar resets or closes the connection without a byte.
    private static async Task<bool> NotServedAsync(IPEndPoint listener)
    {
        using var deadline = new CancellationTokenSource(TestSidecar.Deadline);
        try
        {
            using var socket = await ConnectAsync(listener);
            await socket.SendAsync(Encoding.ASCII.GetBytes("x"), SocketFlags.None);
            return await socket.ReceiveAsync(new byte[16], SocketFlags.None, deadline.Token) == 0;
        }
        catch (SocketException)
        {
            return true;
        }
    }
}
