// The access log line as docs/configuration.md shows it, captured through a logger provider, and switched by reload.
using System.Net;
using System.Text.RegularExpressions;
using Mesh.FunctionalTests.Infrastructure;

namespace Mesh.FunctionalTests.L7;

public sealed partial class AccessLogTests
{
    private static object Config(TestBackend backend, bool accessLog) => TestConfig.Outbound(
        [TestConfig.Route("users", "svc", new { path = new { prefix = "/users/" } })],
        new Dictionary<string, object> { ["svc"] = TestConfig.Service([backend]) },
        accessLog);

    // `GET api.example.com/users/42 200 route=api service=api peer=- 0.812ms`: method, host as sent
    // (port included), path without the query, status, route, service, peer, milliseconds.
    [GeneratedRegex(@"^GET logs\.test:8080/users/42 200 route=users service=svc peer=- \d+(\.\d{1,3})?ms$")]
    private static partial Regex DocumentedLine();

    [Fact]
    public async Task AccessLog_On_OneLinePerRequestInTheDocumentedFormat()
    {
        await using var backend = await TestBackend.StartAsync("b");
        var logs = new LogCapture();
        await using var sidecar = await TestSidecar.StartAsync(Config(backend, accessLog: true), logs: logs);
        using var client = Clients.Http1();

        using var response = await client.SendAsync(Clients.Get(sidecar.Listener(), "/users/42?verbose=1", host: "logs.test:8080"));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        await response.Content.ReadAsStringAsync();
        using var missing = await client.SendAsync(Clients.Get(sidecar.Listener(), "/other", host: "logs.test:8080"));
        Assert.Equal(HttpStatusCode.NotFound, missing.StatusCode);

        // The line is written once the response is done; the client can see the response a moment earlier.
        var line = await WaitForAsync(logs, 3001);
        Assert.Equal("Mesh.AccessLog", line.Category);
        Assert.Equal(LogLevel.Information, line.Level);
        Assert.Matches(DocumentedLine(), line.Message);
        Assert.Equal(200, line.Values["Status"]);
        Assert.Equal("users", line.Values["Route"]);
        Assert.Equal("svc", line.Values["Service"]);
        Assert.Single(logs.WithEvent(3001));
    }

    [Fact]
    public async Task AccessLog_Off_NothingUntilAReloadTurnsItOn()
    {
        await using var backend = await TestBackend.StartAsync("b");
        var logs = new LogCapture();
        await using var sidecar = await TestSidecar.StartAsync(Config(backend, accessLog: false), logs: logs);
        using var client = Clients.Http1();

        using (var quiet = await client.SendAsync(Clients.Get(sidecar.Listener(), "/users/1", host: "logs.test:8080")))
        {
            Assert.Equal(HttpStatusCode.OK, quiet.StatusCode);
        }

        await sidecar.ReloadAsync(Config(backend, accessLog: true));
        using (var logged = await client.SendAsync(Clients.Get(sidecar.Listener(), "/users/42", host: "logs.test:8080")))
        {
            Assert.Equal(HttpStatusCode.OK, logged.StatusCode);
        }

        var line = await WaitForAsync(logs, 3001);
        Assert.Matches(DocumentedLine(), line.Message);
        // The request before the reload left no line: the only one is /users/42.
        Assert.Single(logs.WithEvent(3001));
    }

    private static async Task<LogEntry> WaitForAsync(LogCapture logs, int eventId)
    {
        using var deadline = new CancellationTokenSource(TestSidecar.Deadline);
        while (true)
        {
            if (logs.WithEvent(eventId) is [var first, ..])
            {
                return first;
            }

            await Task.Delay(10, deadline.Token);
        }
    }
}
