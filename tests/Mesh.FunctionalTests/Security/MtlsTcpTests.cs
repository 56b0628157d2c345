// Opaque TCP inside mTLS between sidecars (as Consul Connect does), the strict tcp listener's refusals, and TCP authorization.
using System.Net;
using Mesh.FunctionalTests.Infrastructure;
using Mesh.FunctionalTests.L4;

namespace Mesh.FunctionalTests.Security;

public sealed class MtlsTcpTests : IDisposable
{
    private readonly TestMeshCa _ca = new();

    public void Dispose() => _ca.Dispose();

    /// <summary>The database's sidecar: a strict inbound tcp listener "db-in" in front of the TCP app.</summary>
    private object DbSidecar(TcpPeer app, object? authorization = null, string mtls = "strict") => new
    {
        service = new { name = "db", address = "127.0.0.1", port = app.Port },
        admin = new { address = "127.0.0.1", port = 0 },
        identity = _ca.Identity(),
        listeners = new object[] { new { name = "db-in", address = "127.0.0.1", port = 0, direction = "inbound", protocol = "tcp", service = "db-app", mtls } },
        services = new Dictionary<string, object> { ["db-app"] = new { endpoints = new[] { app.Endpoint } } },
        authorization = authorization ?? new { defaultAction = "allow" },
        logging = new { level = "Warning" },
    };

    /// <summary>A client app's sidecar named <paramref name="service"/>: an outbound tcp listener "db-out" to the db sidecar over mTLS.</summary>
    private object ClientSidecar(string service, IPEndPoint db) => new
    {
        service = new { name = service },
        admin = new { address = "127.0.0.1", port = 0 },
        identity = _ca.Identity(),
        listeners = new object[] { new { name = "db-out", address = "127.0.0.1", port = 0, direction = "outbound", protocol = "tcp", service = "db" } },
        services = new Dictionary<string, object> { ["db"] = MeshConfig.MeshService([db]) },
        logging = new { level = "Warning" },
    };

    [Fact]
    public async Task Tcp_ThroughMtlsBetweenSidecars_BytesFlowBothWays()
    {
        await using var app = new TcpPeer("db");
        await using var db = await TestSidecar.StartAsync(DbSidecar(app));
        await using var web = await TestSidecar.StartAsync(ClientSidecar("web", db.Sidecar.EndpointOf("db-in")));

        using var socket = await Net.ConnectAsync(web.Sidecar.EndpointOf("db-out"));
        Assert.Equal("db:hello", await Net.AskAsync(socket, "hello"));
        Assert.Equal("db:again", await Net.AskAsync(socket, "again"));

        // A half-close travels through both TLS hops and the app's FIN comes back.
        socket.Shutdown(System.Net.Sockets.SocketShutdown.Send);
        Assert.Empty(await Net.ReadToEndAsync(socket));
        await MetricsReader.WaitForAsync(db.Admin, "mesh_tls_handshakes_total{listener=\"db-in\",mode=\"mtls\"}");
        await MetricsReader.WaitForAsync(web.Admin, "mesh_tls_upstream_handshakes_total{service=\"db\",mode=\"mesh\"}");
    }

    [Fact]
    public async Task StrictTcpListener_PlaintextClient_ClosedAndCounted()
    {
        await using var app = new TcpPeer("db");
        await using var db = await TestSidecar.StartAsync(DbSidecar(app));

        using var socket = await Net.ConnectAsync(db.Sidecar.EndpointOf("db-in"));
        await Net.SendAllAsync(socket, "SELECT 1;\n"u8.ToArray());

        await Net.ClosedWithoutDataAsync(socket);
        await MetricsReader.WaitForAsync(db.Admin, "mesh_tls_refusals_total{listener=\"db-in\",reason=\"plaintext\"}");
        Assert.Equal(0, app.Accepted);
    }

    [Fact]
    public async Task PermissiveTcpListener_TakesMtlsAndPlaintext()
    {
        await using var app = new TcpPeer("db");
        await using var db = await TestSidecar.StartAsync(DbSidecar(app, mtls: "permissive"));
        await using var web = await TestSidecar.StartAsync(ClientSidecar("web", db.Sidecar.EndpointOf("db-in")));

        using (var viaMesh = await Net.ConnectAsync(web.Sidecar.EndpointOf("db-out")))
        {
            Assert.Equal("db:m", await Net.AskAsync(viaMesh, "m"));
        }

        using (var plaintext = await Net.ConnectAsync(db.Sidecar.EndpointOf("db-in")))
        {
            Assert.Equal("db:p", await Net.AskAsync(plaintext, "p"));
        }

        Assert.Equal(2, app.Accepted);
    }

    [Fact]
    public async Task TcpAuthorization_AllowedCallerRelayed_OtherCallerClosedAfterHandshake()
    {
        await using var app = new TcpPeer("db");
        await using var db = await TestSidecar.StartAsync(DbSidecar(app, new
        {
            defaultAction = "deny",
            rules = new object[]
            {
                // A rule with an HTTP match never applies to TCP; it must not let billing in.
                new { name = "billing-http-only", from = new[] { TestPki.Spiffe("billing") }, match = new { path = new { prefix = "/" } }, action = "allow" },
                new { name = "web-to-db", from = new[] { TestPki.Spiffe("web") }, action = "allow" },
            },
        }));
        await using var web = await TestSidecar.StartAsync(ClientSidecar("web", db.Sidecar.EndpointOf("db-in")));
        await using var billing = await TestSidecar.StartAsync(ClientSidecar("billing", db.Sidecar.EndpointOf("db-in")));

        using (var allowed = await Net.ConnectAsync(web.Sidecar.EndpointOf("db-out")))
        {
            Assert.Equal("db:ok", await Net.AskAsync(allowed, "ok"));
        }

        using (var denied = await Net.ConnectAsync(billing.Sidecar.EndpointOf("db-out")))
        {
            await Net.SendAllAsync(denied, "DROP TABLE\n"u8.ToArray());
            await Net.ClosedWithoutDataAsync(denied);
        }

        await MetricsReader.WaitForAsync(db.Admin, "mesh_authz_decisions_total{listener=\"db-in\",rule=\"web-to-db\",action=\"allow\"}");
        await MetricsReader.WaitForAsync(db.Admin, "mesh_authz_decisions_total{listener=\"db-in\",rule=\"default\",action=\"deny\"}");
        Assert.Equal(1, app.Accepted);
        // The handshake itself succeeded: the deny came after it, from the policy.
        Assert.Equal(2, await MetricsReader.ValueAsync(db.Admin, "mesh_tls_handshakes_total{listener=\"db-in\",mode=\"mtls\"}"));
    }
}
