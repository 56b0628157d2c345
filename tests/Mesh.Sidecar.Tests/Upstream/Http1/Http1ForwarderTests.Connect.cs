// Mesh's HTTP/1.1 client, connecting: a connect that takes longer than connectTimeoutMs fails with a reason that names the limit.
using System.Net;
using System.Net.Sockets;
using Mesh.Discovery;
using Mesh.Sidecar.Endpoints;
using Mesh.Sidecar.Upstream;
using Yarp.ReverseProxy.Forwarder;

namespace Mesh.Sidecar.Tests.Upstream.Http1;

public sealed partial class Http1ForwarderTests
{
    [Fact]
    public async Task SendAsync_ConnectLongerThanTheConnectTimeout_Returns502NamingTheLimit()
    {
        // A listener that never accepts, its backlog filled: the kernel then leaves further connects unanswered.
        // A connect that has not completed in 3 s (on loopback, where a free slot answers at once) means it is full.
        using var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        listener.Listen(1);
        var port = ((IPEndPoint)listener.LocalEndPoint!).Port;
        var fillers = new List<Socket>();
        var full = false;
        try
        {
            for (var i = 0; i < 16; i++)
            {
                var filler = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
                fillers.Add(filler);
                using var wait = new CancellationTokenSource(TimeSpan.FromSeconds(3));
                try
                {
                    await filler.ConnectAsync(new IPEndPoint(IPAddress.Loopback, port), wait.Token);
                }
                catch (OperationCanceledException)
                {
                    full = true;
                    break;
                }
            }

            Assert.True(full, "the listen backlog never filled");

            var context = Context();
            var endpoint = new EndpointState(new ServiceEndpoint("127.0.0.1", port), "http", _pools);

            var error = await _forwarder.SendAsync(context, endpoint, Settings with { ConnectTimeoutMs = 300 }, RouteTransformer.None).AsTask().WaitAsync(TimeSpan.FromSeconds(20));

            Assert.Equal(ForwarderError.Request, error);
            Assert.Equal(502, context.Response.StatusCode);
            Assert.Equal($"connecting to 127.0.0.1:{port} took longer than 300 ms", Reason(context));
        }
        finally
        {
            foreach (var filler in fillers)
            {
                filler.Dispose();
            }
        }
    }
}
