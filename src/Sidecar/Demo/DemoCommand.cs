// `mesh-sidecar demo`: the concept note's scenario one (a SaaS with subdomains) on loopback, in one process.
using System.Text.Json;
using Mesh.Sidecar.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;

namespace Mesh.Sidecar.Demo;

/// <summary>Starts sample upstreams (api ×2, admin, static, marketing) and a sidecar routing by Host.</summary>
internal static class DemoCommand
{
    /// <summary>The demo's services and how many instances each has.</summary>
    public static readonly (string Service, int Instances, string Host)[] Services =
    [
        ("api", 2, "api.example.com"),
        ("admin", 1, "admin.example.com"),
        ("static", 1, "static.example.com"),
        ("marketing", 1, "*"),
    ];

    public static async Task<int> RunAsync(int port, int adminPort, TextWriter output, CancellationToken cancellationToken)
    {
        await using var demo = await StartAsync(port, adminPort, cancellationToken).ConfigureAwait(false);
        var listen = demo.Sidecar.EndpointOf("outbound");
        var admin = demo.Sidecar.AdminUri;
        output.WriteLine($"""

            Mesh demo: a sidecar on http://{listen} routing by Host to {demo.Backends.Count} upstream instances.
            Config: {demo.ConfigPath} (edit it while running; changes apply within 2 s)

            Try:
              curl -i -H 'Host: api.example.com' http://{listen}/users/42      # api-1 and api-2 take turns
              curl -i -H 'Host: admin.example.com' http://{listen}/             # admin-1
              curl -i -H 'Host: static.example.com' http://{listen}/app.js      # static-1
              curl -i -H 'Host: www.example.com' http://{listen}/               # marketing-1 (any other host)
              curl --http2-prior-knowledge -H 'Host: api.example.com' http://{listen}/   # HTTP/2 on the same port
              curl {admin}admin/clusters
              curl {admin}metrics

            Press Ctrl-C to stop.
            """);
        try
        {
            await Task.Delay(Timeout.Infinite, cancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
        }

        output.WriteLine("Stopping the demo.");
        return 0;
    }

    /// <summary>Starts the backends and the sidecar; tests call this directly with port 0.</summary>
    public static async Task<RunningDemo> StartAsync(int port, int adminPort, CancellationToken cancellationToken, Action<ILoggingBuilder>? logging = null)
    {
        var backends = new List<WebApplication>();
        var endpoints = new Dictionary<string, List<object>>(StringComparer.Ordinal);
        foreach (var (service, instances, _) in Services)
        {
            endpoints[service] = [];
            for (var n = 1; n <= instances; n++)
            {
                var backend = await StartBackendAsync($"{service}-{n}", service, cancellationToken).ConfigureAwait(false);
                backends.Add(backend.App);
                endpoints[service].Add(new { address = "127.0.0.1", port = backend.Port });
            }
        }

        var config = new
        {
            service = new { name = "demo-client", address = "127.0.0.1", port = 0 },
            admin = new { address = "127.0.0.1", port = adminPort },
            listeners = new[] { new { name = "outbound", address = "127.0.0.1", port, direction = "outbound", protocol = "http" } },
            routes = Services.Select(s => new
            {
                name = s.Service,
                match = new { hosts = s.Host == "*" ? Array.Empty<string>() : [s.Host] },
                service = s.Service,
            }),
            services = Services.ToDictionary(s => s.Service, s => new { endpoints = endpoints[s.Service], loadBalancing = new { policy = "round-robin" } }),
        };

        var directory = Path.Combine(Path.GetTempPath(), $"mesh-demo-{Environment.ProcessId}-{Guid.NewGuid():N}"[..40]);
        Directory.CreateDirectory(directory);
        var configPath = Path.Combine(directory, "sidecar.json");
        await File.WriteAllTextAsync(configPath, JsonSerializer.Serialize(config, new JsonSerializerOptions { WriteIndented = true }), cancellationToken).ConfigureAwait(false);
        var sidecar = await SidecarHost.StartAsync(new SidecarLaunch(configPath) { Environment = new Dictionary<string, string>(), ConfigureLogging = logging }, cancellationToken).ConfigureAwait(false);
        return new RunningDemo(sidecar, backends, configPath);
    }

    private static async Task<(WebApplication App, int Port)> StartBackendAsync(string instance, string service, CancellationToken cancellationToken)
    {
        var builder = WebApplication.CreateEmptyBuilder(new WebApplicationOptions { ApplicationName = instance });
        builder.WebHost.UseKestrelCore();
        builder.WebHost.ConfigureKestrel(k => k.Listen(System.Net.IPAddress.Loopback, 0));
        // Ctrl-C belongs to the command line; a console lifetime here would swallow it.
        builder.Services.AddSingleton<IHostLifetime, CommandLineLifetime>();
        var app = builder.Build();
        app.Run(context =>
        {
            context.Response.Headers["x-mesh-demo-instance"] = instance;
            context.Response.ContentType = "text/plain; charset=utf-8";
            return context.Response.WriteAsync($"{instance}: the {service} service answered {context.Request.Method} {context.Request.Host}{context.Request.Path}\n");
        });
        await app.StartAsync(cancellationToken).ConfigureAwait(false);
        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        return (app, new Uri(address).Port);
    }
}

/// <summary>The running demo: sidecar, backends and the generated config file.</summary>
internal sealed class RunningDemo(RunningSidecar sidecar, IReadOnlyList<WebApplication> backends, string configPath) : IAsyncDisposable
{
    public RunningSidecar Sidecar { get; } = sidecar;

    public IReadOnlyList<WebApplication> Backends { get; } = backends;

    public string ConfigPath { get; } = configPath;

    public async ValueTask DisposeAsync()
    {
        await Sidecar.DisposeAsync().ConfigureAwait(false);
        foreach (var backend in Backends)
        {
            await backend.StopAsync(CancellationToken.None).ConfigureAwait(false);
            await backend.DisposeAsync().ConfigureAwait(false);
        }

        try
        {
            Directory.Delete(Path.GetDirectoryName(ConfigPath)!, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}
