// The verified caller beyond the app's header: the IPeerIdentityFeature on the connection and the access log's peer field.
using System.Collections.Concurrent;
using System.Net;
using Mesh.FunctionalTests.Infrastructure;

namespace Mesh.FunctionalTests.Security;

public sealed class PeerIdentityTests : IDisposable
{
    private readonly TestMeshCa _ca = new();

    public void Dispose() => _ca.Dispose();

    [Fact]
    public async Task AccessLog_MtlsRequest_NamesTheCaller_PlaintextShowsDash()
    {
        var lines = new CapturingLoggerProvider();
        await using var app = await TestBackend.StartAsync("api-app");
        var config = MeshConfig.Inbound("api", app.Port, _ca.Identity(), mtls: "permissive");
        await using var api = await TestSidecar.StartAsync(WithAccessLog(config), services => services.AddSingleton<ILoggerProvider>(lines));
        using var mtls = TlsClients.Presenting(_ca.Leaf("web"), _ca.Ca);
        using var plain = Clients.Http1();

        Assert.Equal(HttpStatusCode.OK, (await mtls.GetAsync(new Uri($"https://{api.Sidecar.EndpointOf("inbound")}/with-cert"))).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await plain.GetAsync(new Uri(api.Listener("inbound"), "/without"))).StatusCode);

        // The line is written once the response is done, which the client may see first.
        await lines.WaitForAsync(m => m.Contains("/with-cert 200", StringComparison.Ordinal) && m.Contains($"peer={TestPki.Spiffe("web")}", StringComparison.Ordinal));
        await lines.WaitForAsync(m => m.Contains("/without 200", StringComparison.Ordinal) && m.Contains("peer=-", StringComparison.Ordinal));
    }

    private static object WithAccessLog(object config)
    {
        var json = System.Text.Json.JsonSerializer.SerializeToNode(config)!;
        json["logging"] = new System.Text.Json.Nodes.JsonObject { ["level"] = "Warning", ["accessLog"] = true };
        return json;
    }

    private sealed class CapturingLoggerProvider : ILoggerProvider
    {
        public ConcurrentQueue<string> Messages { get; } = new();

        public async Task WaitForAsync(Func<string, bool> match)
        {
            using var deadline = new CancellationTokenSource(TestSidecar.Deadline);
            while (!Messages.Any(match))
            {
                if (deadline.IsCancellationRequested)
                {
                    Assert.Fail("no access log line matched; lines: " + string.Join(" | ", Messages));
                }

                await Task.Delay(10);
            }
        }

        public ILogger CreateLogger(string categoryName) => categoryName == "Mesh.AccessLog" ? new Capture(Messages) : Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance;

        public void Dispose()
        {
        }

        private sealed class Capture(ConcurrentQueue<string> messages) : ILogger
        {
            public IDisposable? BeginScope<TState>(TState state)
                where TState : notnull => null;

            public bool IsEnabled(LogLevel logLevel) => true;

            public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
                messages.Enqueue(formatter(state, exception));
        }
    }
}
