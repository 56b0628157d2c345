// A real Kestrel upstream on an ephemeral loopback port that says who it is and echoes the request.
using System.Net;
using System.Text.Json;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Server.Kestrel.Core;

namespace Mesh.FunctionalTests.Infrastructure;

/// <summary>What the default backend handler sends back as JSON.</summary>
public sealed record EchoResponse(string Backend, string Method, string Host, string Path, string Query, Dictionary<string, string> Headers, string Protocol);

/// <summary>An upstream service instance for end-to-end tests.</summary>
public sealed class TestBackend : IAsyncDisposable
{
    private readonly WebApplication _app;
    private int _hits;

    private TestBackend(string name, WebApplication app, int port)
    {
        Name = name;
        _app = app;
        Port = port;
    }

    public string Name { get; }

    public int Port { get; }

    public int Hits => Volatile.Read(ref _hits);

    /// <summary>The endpoint entry for a sidecar config.</summary>
    public object Endpoint(int weight = 1) => new { address = "127.0.0.1", port = Port, weight };

    /// <summary>Starts a backend. Without <paramref name="configure"/> every request gets an <see cref="EchoResponse"/>.</summary>
    public static async Task<TestBackend> StartAsync(
        string name,
        HttpProtocols protocols = HttpProtocols.Http1,
        Action<IServiceCollection>? services = null,
        Action<WebApplication>? configure = null)
    {
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { ApplicationName = name });
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(k => k.Listen(IPAddress.Loopback, 0, listen => listen.Protocols = protocols));
        services?.Invoke(builder.Services);
        var app = builder.Build();
        TestBackend? backend = null;
        app.Use((context, next) =>
        {
            Interlocked.Increment(ref backend!._hits);
            context.Response.Headers["x-backend"] = name;
            return next(context);
        });
        if (configure is not null)
        {
            configure(app);
        }
        else
        {
            app.Run(context => context.Response.WriteAsJsonAsync(Echo(name, context)));
        }

        await app.StartAsync();
        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        backend = new TestBackend(name, app, new Uri(address).Port);
        return backend;
    }

    public static EchoResponse Echo(string name, HttpContext context) => new(
        name,
        context.Request.Method,
        context.Request.Host.Value ?? "",
        context.Request.Path.Value ?? "",
        context.Request.QueryString.Value ?? "",
        context.Request.Headers.ToDictionary(h => h.Key.ToLowerInvariant(), h => h.Value.ToString()),
        context.Request.Protocol);

    public static async Task<EchoResponse> ReadEchoAsync(HttpResponseMessage response) =>
        JsonSerializer.Deserialize<EchoResponse>(await response.Content.ReadAsStringAsync(), new JsonSerializerOptions(JsonSerializerDefaults.Web))!;

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
    }
}
