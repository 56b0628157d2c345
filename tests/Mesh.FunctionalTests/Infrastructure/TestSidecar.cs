// The real sidecar host on ephemeral loopback ports, driven through its config file as a user would.
using System.Text.Json;
using Mesh.Sidecar.Hosting;
using Mesh.Sidecar.Translation;

namespace Mesh.FunctionalTests.Infrastructure;

/// <summary>A running sidecar plus its config file; reloads wait for the new state instead of sleeping.</summary>
public sealed class TestSidecar : IAsyncDisposable
{
    public static readonly TimeSpan Deadline = TimeSpan.FromSeconds(20);
    private static readonly JsonSerializerOptions Json = new() { WriteIndented = true };

    private readonly string _directory;

    private TestSidecar(RunningSidecar sidecar, string directory, string configPath)
    {
        Sidecar = sidecar;
        _directory = directory;
        ConfigPath = configPath;
    }

    internal RunningSidecar Sidecar { get; }

    public string ConfigPath { get; }

    public Uri Admin => Sidecar.AdminUri;

    internal MeshStateStore State => Sidecar.State;

    public Uri Listener(string name = "outbound") => Sidecar.UriOf(name);

    public static Task<TestSidecar> StartAsync(object config, Action<IServiceCollection>? services = null, ILoggerProvider? logs = null) =>
        StartFromJsonAsync(JsonSerializer.Serialize(config, Json), services, logs);

    public static async Task<TestSidecar> StartFromJsonAsync(string json, Action<IServiceCollection>? services = null, ILoggerProvider? logs = null)
    {
        var directory = Directory.CreateTempSubdirectory("mesh-test-").FullName;
        var path = Path.Combine(directory, "sidecar.json");
        await File.WriteAllTextAsync(path, json);
        var launch = new SidecarLaunch(path)
        {
            Environment = new Dictionary<string, string>(),
            ReloadInterval = TimeSpan.FromMilliseconds(100),
            ConfigureLogging = logging =>
            {
                logging.ClearProviders();
                if (logs is LogCapture capture)
                {
                    capture.AddTo(logging);
                }
                else if (logs is not null)
                {
                    logging.AddProvider(logs);
                }
            },
            ConfigureServices = services,
        };
        try
        {
            return new TestSidecar(await SidecarHost.StartAsync(launch), directory, path);
        }
        catch
        {
            Directory.Delete(directory, recursive: true);
            throw;
        }
    }

    /// <summary>Replaces the config file (write then rename, as editors and ConfigMaps do) without waiting.</summary>
    public async Task WriteConfigAsync(string json)
    {
        var temp = ConfigPath + ".tmp";
        await File.WriteAllTextAsync(temp, json);
        File.Move(temp, ConfigPath, overwrite: true);
    }

    /// <summary>Writes a new config and waits until the sidecar has applied it.</summary>
    public async Task ReloadAsync(object config)
    {
        var applied = NextStateAsync();
        await WriteConfigAsync(JsonSerializer.Serialize(config, Json));
        await applied.WaitAsync(Deadline);
    }

    /// <summary>Completes when the routing state is next swapped.</summary>
    public Task NextStateAsync()
    {
        var next = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        State.GetChangeToken().RegisterChangeCallback(_ => next.TrySetResult(), null);
        return next.Task;
    }

    public async ValueTask DisposeAsync()
    {
        await Sidecar.DisposeAsync();
        try
        {
            Directory.Delete(_directory, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}
