// What `mesh-sidecar run` prints at start-up and shutdown: real addresses only, after every bind, and the drain.
using System.Net;
using System.Net.Sockets;
using System.Text.RegularExpressions;

namespace Mesh.FunctionalTests.Cli;

public sealed partial class StartupTests
{
    [Theory]
    [InlineData("Information")]
    [InlineData("Trace")]
    public async Task Run_Started_RunningLineListsEachListenersRealAddressAndProtocol(string level)
    {
        using var process = SidecarProcess.StartAppHost("run", "--config", WriteConfig(level, port: 0));
        var running = await process.WaitForLineAsync("running; admin on");

        var listeners = ListenerPart().Matches(running).ToDictionary(m => m.Groups["name"].Value, m => (Protocol: m.Groups["protocol"].Value, EndPoint: IPEndPoint.Parse(m.Groups["address"].Value)));
        Assert.Equal(["db", "web"], listeners.Keys.Order(StringComparer.Ordinal));
        Assert.Equal("http", listeners["web"].Protocol);
        Assert.Equal("tcp", listeners["db"].Protocol);

        // The addresses are the ones really bound: the HTTP listener answers, the TCP one accepts.
        try
        {
            using var client = new HttpClient { Timeout = SidecarProcess.Deadline };
            using var response = await client.GetAsync(new Uri($"http://{listeners["web"].EndPoint}/nowhere"));
            Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
            Assert.Contains("no route matched", await response.Content.ReadAsStringAsync(), StringComparison.Ordinal);
            using var tcp = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            await tcp.ConnectAsync(listeners["db"].EndPoint);
        }
        catch (Exception ex) when (ex is HttpRequestException or SocketException)
        {
            // What the sidecar said about it is the first thing to read.
            throw new InvalidOperationException($"a listener of the running line did not answer ({running}); the sidecar printed:\n{process.Output}", ex);
        }

        await process.SignalAsync("TERM");
        Assert.Equal(0, await process.WaitForExitAsync());

        // Kestrel's lifetime lines name its virtual pipelines, which no one can connect to; never printed, at any level.
        Assert.DoesNotContain("mesh-http", process.Output, StringComparison.Ordinal);
        Assert.DoesNotContain("Now listening on", process.Output, StringComparison.Ordinal);
        Assert.Contains("Draining: /ready answers 503", process.Output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Run_BindFails_PrintsNothingAboutListening()
    {
        using var taken = new TcpListener(IPAddress.Loopback, 0);
        taken.Start();
        var port = ((IPEndPoint)taken.LocalEndpoint).Port;

        using var process = SidecarProcess.StartAppHost("run", "--config", WriteConfig("Debug", port));
        Assert.Equal(2, await process.WaitForExitAsync());

        Assert.Contains($"listeners[0]: cannot bind http 127.0.0.1:{port}", process.Output, StringComparison.Ordinal);
        Assert.DoesNotContain("running", process.Output, StringComparison.Ordinal);
        Assert.DoesNotContain("listening", process.Output, StringComparison.OrdinalIgnoreCase);
        Assert.DoesNotContain("bound on", process.Output, StringComparison.Ordinal);
        Assert.DoesNotContain("mesh-http", process.Output, StringComparison.Ordinal);
    }

    private static string WriteConfig(string level, int port)
    {
        var config = Path.Combine(Directory.CreateTempSubdirectory("mesh-startup-").FullName, "sidecar.json");
        File.WriteAllText(config, $$"""
            {
              "service": { "name": "startup" },
              "admin": { "address": "127.0.0.1", "port": 0 },
              "listeners": [
                { "name": "web", "address": "127.0.0.1", "port": {{port}}, "protocol": "http" },
                { "name": "db", "address": "127.0.0.1", "port": 0, "protocol": "tcp", "service": "db" }
              ],
              "services": { "db": { "endpoints": [ { "address": "127.0.0.1", "port": 9 } ] } },
              "logging": { "level": "{{level}}" },
              "performance": { "gcGen0SizeMb": 0 }
            }
            """);
        return config;
    }

    // "| web: http on 127.0.0.1:40123"
    [GeneratedRegex(@"\| (?<name>[A-Za-z0-9._-]+): (?<protocol>[a-z-]+) on (?<address>\S+)")]
    private static partial Regex ListenerPart();
}
