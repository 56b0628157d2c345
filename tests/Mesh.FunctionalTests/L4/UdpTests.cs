// UDP end to end: flows consistent-hashed on the client address, replies from the listener, idle flows expire.
using System.Net;
using System.Net.Sockets;
using Mesh.FunctionalTests.Infrastructure;
using static Mesh.FunctionalTests.L4.L4Harness;

namespace Mesh.FunctionalTests.L4;

public sealed class UdpTests
{
    private static object UdpConfig(IEnumerable<UdpEcho> backends, int flowIdleTimeoutMs) => Config(
        new { name = "udp", address = "127.0.0.1", port = 0, protocol = "udp", service = "game", udp = new { flowIdleTimeoutMs } },
        Services(("game", Service(backends.Select(b => b.Endpoint), "consistent-hash"))));

    private static Socket UdpClient(IPAddress address)
    {
        var client = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        client.Bind(new IPEndPoint(address, 0));
        return client;
    }

    [Fact]
    public async Task ConsistentHash_ManyClientAddresses_EachAlwaysReachesOneBackendAndRepliesComeFromListener()
    {
        var backends = Enumerable.Range(1, 3).Select(i => new UdpEcho($"u{i}")).ToArray();
        try
        {
            // A long flow timeout: every datagram of a client below belongs to one flow or, for the
            // second socket, to a second flow from the same address.
            await using var sidecar = await TestSidecar.StartAsync(UdpConfig(backends, 60_000));
            var listener = sidecar.Sidecar.EndpointOf("udp");

            var owners = new Dictionary<IPAddress, string>();
            for (var i = 2; i < 62; i++)
            {
                var address = IPAddress.Parse($"127.0.3.{i}");
                using var client = UdpClient(address);
                using var sameAddressOtherPort = UdpClient(address);
                var seen = new HashSet<string>(StringComparer.Ordinal);
                for (var n = 0; n < 3; n++)
                {
                    foreach (var socket in new[] { client, sameAddressOtherPort })
                    {
                        var (from, text) = await UdpEcho.AskAsync(socket, listener, $"m{i}.{n}");
                        Assert.Equal(listener, from);
                        seen.Add(Net.BackendOf(text));
                    }
                }

                owners[address] = Assert.Single(seen);
            }

            // The hash spreads the 60 addresses over all three backends.
            Assert.Equal(["u1", "u2", "u3"], owners.Values.Distinct().Order(StringComparer.Ordinal));
            await WaitForMetricAsync(sidecar, "mesh_udp_flows_created_total{listener=\"udp\"}", 120);
        }
        finally
        {
            foreach (var backend in backends)
            {
                await backend.DisposeAsync();
            }
        }
    }

    [Fact]
    public async Task FlowIdleTimeout_ClientsGoQuiet_ActiveFlowsReturnToZero()
    {
        var backends = Enumerable.Range(1, 3).Select(i => new UdpEcho($"u{i}")).ToArray();
        try
        {
            // Long enough that no flow expires between a datagram and its reply on a loaded machine
            // (at 300 ms one could, and the reply was then dropped with its flow); the test waits for
            // the sweep through the metrics, so the timeout's length costs only its own wait.
            await using var sidecar = await TestSidecar.StartAsync(UdpConfig(backends, 2_000));
            var listener = sidecar.Sidecar.EndpointOf("udp");
            var clients = Enumerable.Range(10, 10).Select(i => UdpClient(IPAddress.Parse($"127.0.4.{i}"))).ToArray();
            try
            {
                var firstReplies = new List<string>();
                foreach (var client in clients)
                {
                    var (from, text) = await UdpEcho.AskAsync(client, listener, "ping");
                    Assert.Equal(listener, from);
                    firstReplies.Add(text);
                }

                // Every flow goes idle and is swept; a resend after a lost datagram may have made one more flow.
                await WaitForMetricAsync(sidecar, "mesh_udp_flows_active{listener=\"udp\"}", 0);
                var created = await MetricAsync(sidecar, "mesh_udp_flows_created_total{listener=\"udp\"}");
                Assert.True(created >= 10, $"{created} flows created");
                Assert.Equal(created, await MetricAsync(sidecar, "mesh_udp_flows_expired_total{listener=\"udp\"}"));
                Assert.Equal(0, ListenerOf(await ClustersAsync(sidecar), "udp").GetProperty("udpFlows").GetInt32());

                // A client that speaks again after its flow expired gets a new flow, to the same backend.
                var again = await UdpEcho.AskAsync(clients[0], listener, "again");
                Assert.Equal(listener, again.From);
                Assert.Equal(Net.BackendOf(firstReplies[0]), Net.BackendOf(again.Text));
                await WaitForMetricAsync(sidecar, "mesh_udp_flows_created_total{listener=\"udp\"}", value => value > created!.Value, $"more than {created}");
            }
            finally
            {
                foreach (var client in clients)
                {
                    client.Dispose();
                }
            }
        }
        finally
        {
            foreach (var backend in backends)
            {
                await backend.DisposeAsync();
            }
        }
    }
}
