// Composition root: builds the Kestrel host, wires every stage, applies the first config and starts watching.
using System.Collections;
using System.Net;
using Mesh.Discovery;
using Mesh.Discovery.Consul;
using Mesh.Discovery.Static;
using Mesh.Plugins;
using Mesh.Plugins.JavaScript;
using Mesh.Sidecar.Admin;
using Mesh.Sidecar.Configuration;
using Mesh.Sidecar.Filters;
using Mesh.Sidecar.L4;
using Mesh.Sidecar.L7;
using Mesh.Sidecar.Listeners;
using Mesh.Sidecar.Metrics;
using Mesh.Sidecar.Resilience;
using Mesh.Sidecar.Security;
using Mesh.Sidecar.Security.Authorization;
using Mesh.Sidecar.Security.Identity;
using Mesh.Sidecar.Translation;
using Mesh.Sidecar.Upstream;
using Mesh.Sidecar.Upstream.Http1;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.AspNetCore.Server.Kestrel.Transport.Sockets;

namespace Mesh.Sidecar.Hosting;

/// <summary>How to start a sidecar: the config file and any overrides.</summary>
public sealed record SidecarLaunch(string ConfigPath)
{
    /// <summary>Command-line overrides such as <c>--admin:port=19001</c>.</summary>
    public IReadOnlyList<string> Overrides { get; init; } = [];

    /// <summary>Environment to read <c>MESH__</c> overrides from; the process environment when null.</summary>
    public IDictionary? Environment { get; init; }

    /// <summary>How often the config file is checked for changes.</summary>
    public TimeSpan ReloadInterval { get; init; } = TimeSpan.FromMilliseconds(250);

    /// <summary>Extra logging setup (tests route logs to their output).</summary>
    public Action<ILoggingBuilder>? ConfigureLogging { get; init; }

    /// <summary>Extra services, such as <see cref="Mesh.Plugins.IConnectionFilter"/>s, registered before the host is built.</summary>
    public Action<IServiceCollection>? ConfigureServices { get; init; }
}

/// <summary>Thrown when the first configuration cannot be applied; carries every problem.</summary>
public sealed class SidecarConfigException(IReadOnlyList<ConfigError> errors)
    : Exception("invalid configuration:\n  " + string.Join("\n  ", errors))
{
    /// <summary>Every problem found.</summary>
    public IReadOnlyList<ConfigError> Errors { get; } = errors;
}

/// <summary>Starts sidecars.</summary>
internal static class SidecarHost
{
    public static async Task<RunningSidecar> StartAsync(SidecarLaunch launch, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(launch);
        ConfigLoadResult Load() => ConfigLoader.Load(launch.ConfigPath, launch.Overrides, launch.Environment);
        var content = ReadOrEmpty(launch.ConfigPath);
        var loaded = Load();
        if (!loaded.IsValid)
        {
            throw new SidecarConfigException(loaded.Errors);
        }

        var options = loaded.Options!;
        var app = Build(options, launch);
        var runtime = app.Services.GetRequiredService<MeshRuntime>();
        await app.StartAsync(cancellationToken).ConfigureAwait(false);
        var errors = await runtime.ApplyAsync(options, cancellationToken).ConfigureAwait(false);
        if (errors.Count > 0)
        {
            await app.StopAsync(CancellationToken.None).ConfigureAwait(false);
            await app.DisposeAsync().ConfigureAwait(false);
            throw new SidecarConfigException(errors);
        }

        // Services read from Consul get their first endpoints before the sidecar counts as started (bounded: an unreachable agent only delays).
        await app.Services.GetRequiredService<ConsulDiscovery>().WaitForFirstAnswersAsync(TimeSpan.FromSeconds(5), cancellationToken).ConfigureAwait(false);
        runtime.StartWatching(launch.ConfigPath, content, Load, launch.ReloadInterval);
        return new RunningSidecar(app);
    }

    private static WebApplication Build(MeshOptions options, SidecarLaunch launch)
    {
        var builder = WebApplication.CreateEmptyBuilder(new WebApplicationOptions { ApplicationName = "mesh-sidecar" });
        ConfigureLogging(builder.Logging, options);
        launch.ConfigureLogging?.Invoke(builder.Logging);

        var inline = options.Performance.InlineCompletions;
        builder.WebHost.UseKestrelCore();
        builder.WebHost.ConfigureKestrel(kestrel =>
        {
            kestrel.AddServerHeader = false;
            kestrel.Limits.MaxRequestBodySize = null;
            // Kestrel never binds a real socket: Mesh's listeners feed these pipelines.
            kestrel.Listen(new VirtualEndPoint(HttpPipeline.Http1), listen => ConfigurePipeline(listen, HttpProtocols.Http1));
            kestrel.Listen(new VirtualEndPoint(HttpPipeline.Http2), listen => ConfigurePipeline(listen, HttpProtocols.Http2));
            kestrel.Listen(new VirtualEndPoint(HttpPipeline.Tls), listen =>
            {
                ConfigurePipeline(listen, HttpProtocols.Http1AndHttp2);
                TlsTermination.Configure(listen);
            });
            // Sidecars speak HTTP/2 to each other inside their own TLS session, so requests arrive with
            // :scheme http on a TLS connection; Kestrel would otherwise reset them.
            kestrel.AllowAlternateSchemes = true;
        });
        builder.Services.Configure<SocketTransportOptions>(sockets => sockets.UnsafePreferInlineScheduling = inline);
        builder.Services.Configure<HostOptions>(host => host.ShutdownTimeout = TimeSpan.FromMilliseconds(options.Shutdown.DrainTimeoutMs));
        // Signals belong to the command line, which cancels and disposes the sidecar; the console
        // lifetime would block SIGTERM until the host is disposed, which never happens then.
        builder.Services.AddSingleton<IHostLifetime, CommandLineLifetime>();

        var services = builder.Services;
        services.AddMetrics();
        services.AddHttpForwarder();
        services.AddSingleton<VirtualConnectionListenerFactory>();
        services.AddSingleton<IConnectionListenerFactory>(sp => sp.GetRequiredService<VirtualConnectionListenerFactory>());
        services.AddSingleton<MeshMetrics>();
        services.AddSingleton<PrometheusExporter>();
        services.AddSingleton<UpstreamClients>();
        services.AddSingleton<Http1Forwarder>();
        services.AddSingleton<StateTranslator>();
        services.AddSingleton<MeshStateStore>();
        services.AddSingleton<StaticServiceCatalog>();
        services.AddSingleton(sp => new ConsulServiceCatalog(sp.GetRequiredService<ILogger<ConsulServiceCatalog>>()));
        services.AddSingleton<IServiceCatalog>(sp => sp.GetRequiredService<ConsulServiceCatalog>());
        services.AddSingleton<ConsulRegistration>();
        services.AddSingleton<ConsulDiscovery>();
        services.AddSingleton<IDiscoveryConfigurator>(sp => sp.GetRequiredService<ConsulDiscovery>());
        services.AddSingleton<DiscoveryStatusReader>();
        services.AddSingleton<ICertificateSourceFactory, ConsulCertificateSourceFactory>();
        services.AddSingleton<ConsulIntentionsCheck>();
        services.AddSingleton<ConnectionHook>();
        services.AddSingleton<L4DataPath>();
        services.AddMeshSecurity();
        services.AddMeshResilience();
        services.AddSingleton<ListenerManager>();
        services.AddSingleton<MeshRuntime>(sp => new MeshRuntime(
            sp.GetRequiredService<MeshStateStore>(),
            sp.GetRequiredService<StateTranslator>(),
            sp.GetRequiredService<StaticServiceCatalog>(),
            sp.GetServices<IServiceCatalog>(),
            sp.GetRequiredService<ListenerManager>(),
            sp.GetRequiredService<SecurityRuntime>(),
            sp.GetRequiredService<MeshMetrics>(),
            sp.GetRequiredService<ILogger<MeshRuntime>>(),
            sp.GetRequiredService<FilterRuntime>(),
            sp.GetServices<IDiscoveryConfigurator>()));
        services.AddSingleton<FilterMetrics>();
        // JavaScript files in jsFilters.directory: a second filter source beside the C# plugins.
        services.AddSingleton<IFilterSource>(sp => new JsFilterSource(sp.GetRequiredService<ILoggerFactory>(), sp.GetRequiredService<MeshMetrics>().Meter));
        services.AddSingleton(sp => new FilterRuntime(
            sp.GetRequiredService<FilterMetrics>(),
            sp.GetRequiredService<ILoggerFactory>(),
            sp.GetServices<IRequestFilterFactory>(),
            sp.GetServices<IFilterSource>())
        {
            // plugins.directory is relative to the config file.
            BaseDirectory = Path.GetDirectoryName(Path.GetFullPath(launch.ConfigPath)) ?? Environment.CurrentDirectory,
        });
        services.AddSingleton<PluginsAdmin>();
        services.AddSingleton<AdminEndpoints>();
        services.AddSingleton<HttpDataPath>();
        services.AddSingleton<ShutdownDrain>();
        services.AddSingleton<UpstreamErrors>();

        launch.ConfigureServices?.Invoke(services);

        var app = builder.Build();
        var dataPath = app.Services.GetRequiredService<HttpDataPath>();
        app.Run(dataPath.InvokeAsync);
        return app;
    }

    private static void ConfigurePipeline(ListenOptions listen, HttpProtocols protocols)
    {
        listen.Protocols = protocols;
        var metrics = listen.ApplicationServices.GetRequiredService<MeshMetrics>();
        var drain = listen.ApplicationServices.GetRequiredService<ShutdownDrain>();
        listen.Use(next => async connection =>
        {
            var feature = connection.Features.Get<MeshListenerFeature>();
            var name = feature?.Name ?? "";
            metrics.ConnectionOpened(name);
            drain.ConnectionOpened(connection, admin: feature is null || feature.Kind == ListenerKind.Admin);
            try
            {
                await next(connection).ConfigureAwait(false);
            }
            finally
            {
                drain.ConnectionClosed(connection);
                metrics.ConnectionClosed(name);
            }
        });
    }

    private static void ConfigureLogging(ILoggingBuilder logging, MeshOptions options)
    {
        logging.AddSimpleConsole(console =>
        {
            console.SingleLine = true;
            console.TimestampFormat = "HH:mm:ss.fff ";
        });
        var level = Enum.Parse<LogLevel>(options.Logging.Level, ignoreCase: true);
        logging.SetMinimumLevel(level);
        // Framework categories log per request at Information; keep them to warnings unless tracing.
        var framework = level == LogLevel.Trace ? LogLevel.Trace : LogLevel.Warning;
        logging.AddFilter("Microsoft", framework);
        logging.AddFilter("Yarp", framework);
        // Kestrel's lifetime lines name its virtual endpoints (http://mesh-http1), not addresses anyone
        // can use, and come before Mesh binds its sockets; `run` prints the real addresses instead.
        logging.AddFilter("Microsoft.Hosting.Lifetime", LogLevel.Warning);
        // With this category enabled at any level, ASP.NET Core starts an Activity and a log scope
        // for every request; Mesh has its own access log, so only tracing turns it on.
        logging.AddFilter("Microsoft.AspNetCore.Hosting.Diagnostics", level == LogLevel.Trace ? LogLevel.Trace : LogLevel.None);
        // The access log is switched per request from the live config, so a reload can turn it on.
        logging.AddFilter("Mesh.AccessLog", LogLevel.Information);
    }

    private static byte[] ReadOrEmpty(string path)
    {
        try
        {
            return File.ReadAllBytes(path);
        }
        catch (IOException)
        {
            return [];
        }
    }
}

/// <summary>A host lifetime that leaves Ctrl-C and SIGTERM to the caller.</summary>
internal sealed class CommandLineLifetime : IHostLifetime
{
    public Task WaitForStartAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}

/// <summary>A started sidecar: its host and the addresses it bound.</summary>
internal sealed class RunningSidecar(WebApplication app) : IAsyncDisposable
{
    public WebApplication App { get; } = app;

    public ListenerManager Listeners => App.Services.GetRequiredService<ListenerManager>();

    public MeshStateStore State => App.Services.GetRequiredService<MeshStateStore>();

    /// <summary>The address a listener (by name) actually bound; resolves port 0.</summary>
    public IPEndPoint EndpointOf(string listener) => Listeners.BoundEndpoints[listener];

    public Uri UriOf(string listener) => new($"http://{EndpointOf(listener)}");

    public Uri AdminUri => new($"http://{EndpointOf(ListenerManager.AdminKey)}");

    /// <summary>Each listener's real address and protocol, for the line that says Mesh is running: <c>| out: http on 127.0.0.1:15001</c>.</summary>
    public string DescribeListeners()
    {
        var bound = Listeners.BoundEndpoints;
        var text = new System.Text.StringBuilder();
        foreach (var listener in State.Current.Options.Listeners)
        {
            if (bound.TryGetValue(listener.Name, out var endpoint))
            {
                text.Append(text.Length == 0 ? "| " : " | ").Append(listener.Name).Append(": ").Append(listener.Protocol).Append(" on ").Append(endpoint);
            }
        }

        return text.ToString();
    }

    public Task WaitForShutdownAsync(CancellationToken cancellationToken = default) => App.WaitForShutdownAsync(cancellationToken);

    /// <summary>The drain deadline in force: <c>shutdown.drainTimeoutMs</c> of the config serving now (it follows reloads).</summary>
    public TimeSpan DrainDeadline => TimeSpan.FromMilliseconds(State.HasState ? State.Current.Options.Shutdown.DrainTimeoutMs : 0);

    // After a complete drain, the admin connections (a scrape in flight) get this long to finish.
    private static readonly TimeSpan AdminGrace = TimeSpan.FromSeconds(2);

    private int _disposed;

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        // /ready answers 503 from this moment. Leave Consul first, then give peers the grace period
        // to stop sending here, still serving; the drain comes after.
        var drain = App.Services.GetRequiredService<ShutdownDrain>();
        drain.BeginLeaving();
        await App.Services.GetRequiredService<ConsulRegistration>().DeregisterAsync().ConfigureAwait(false);

        // Stop reloading first: a reload must not bind sockets while the drain closes them.
        await App.Services.GetRequiredService<MeshRuntime>().DisposeAsync().ConfigureAwait(false);

        // /ready turns 503 and proxy sockets stop accepting while admin still answers; open requests
        // and connections get up to the deadline to finish.
        var drained = await App.Services.GetRequiredService<ShutdownDrain>().DrainAsync(Listeners, DrainDeadline).ConfigureAwait(false);

        // Kestrel closes the admin connections, and past the deadline aborts whatever HTTP is left at once;
        // disposing the listeners then cuts the remaining L4 connections and frees the sockets.
        using (var stop = new CancellationTokenSource(drained ? AdminGrace : TimeSpan.Zero))
        {
            await App.StopAsync(stop.Token).ConfigureAwait(false);
        }

        await Listeners.DisposeAsync().ConfigureAwait(false);
        await App.DisposeAsync().ConfigureAwait(false);
    }
}
