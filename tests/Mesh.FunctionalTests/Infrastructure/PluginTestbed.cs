// Plugin test helpers: a temporary plugins directory, the samples built once per run, a bounded request loop, captured logs.
using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using Mesh.Tests;

namespace Mesh.FunctionalTests.Infrastructure;

/// <summary>A plugins directory of its own, deleted afterwards.</summary>
public sealed class PluginDirectory : IDisposable
{
    public string Path { get; } = Directory.CreateTempSubdirectory("mesh-plugins-").FullName;

    /// <summary>Compiles a test plugin (Roslyn) into <c>Name.dll</c> here.</summary>
    public string Write(string assemblyName, string source, string version = "1.0.0") => PluginCompiler.WritePlugin(Path, assemblyName, source, version);

    /// <summary>Compiles to a hidden temporary file and renames it over <c>Name.dll</c>, as deploy tools do.</summary>
    public string WriteByRename(string assemblyName, string source, string version)
    {
        var target = System.IO.Path.Combine(Path, assemblyName + ".dll");
        var temp = System.IO.Path.Combine(Path, $".{assemblyName}.dll.tmp");
        File.WriteAllBytes(temp, PluginCompiler.Compile(assemblyName, source, version));
        File.Move(temp, target, overwrite: true);
        return target;
    }

    /// <summary>Overwrites <c>Name.dll</c> in place (truncate and write, as <c>cp</c> does).</summary>
    public string WriteInPlace(string assemblyName, byte[] content)
    {
        var target = System.IO.Path.Combine(Path, assemblyName + ".dll");
        using var file = new FileStream(target, FileMode.Truncate, FileAccess.Write);
        file.Write(content);
        return target;
    }

    public void Delete(string assemblyName) => File.Delete(System.IO.Path.Combine(Path, assemblyName + ".dll"));

    public void Dispose()
    {
        try
        {
            Directory.Delete(Path, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}

/// <summary>
/// The four plugins-samples, built with <c>dotnet build</c> once per test run (an up-to-date check
/// when the solution build already built them) and copied into plugin directories as folders.
/// </summary>
public static class SamplePlugins
{
#if DEBUG
    private const string Configuration = "Debug";
#else
    private const string Configuration = "Release";
#endif

    private static readonly Lazy<Task<string>> Built = new(BuildAsync);

    /// <summary>Copies the built sample into <paramref name="directory"/>/<paramref name="sample"/>/ (a plugin folder).</summary>
    public static async Task<string> CopyToAsync(string directory, string sample)
    {
        var root = await Built.Value;
        var output = Path.Combine(root, sample, "bin", Configuration, "net10.0");
        var target = Path.Combine(directory, sample);
        Directory.CreateDirectory(target);
        foreach (var file in Directory.GetFiles(output))
        {
            File.Copy(file, Path.Combine(target, Path.GetFileName(file)), overwrite: true);
        }

        return target;
    }

    private static async Task<string> BuildAsync()
    {
        var root = Path.Combine(TestFixtures.RepositoryRoot, "plugins-samples");
        // The contract project is already built (the tests reference it); building it again here could
        // race with other test processes, so only the samples themselves are built.
        var start = new ProcessStartInfo("dotnet", ["build", Path.Combine(root, "PluginSamples.slnx"), "-c", Configuration, "-p:BuildProjectReferences=false", "--disable-build-servers", "-nologo", "-v:q"])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        start.Environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
        start.Environment["DOTNET_NOLOGO"] = "1";
        using var process = Process.Start(start)!;
        var output = process.StandardOutput.ReadToEndAsync();
        var error = process.StandardError.ReadToEndAsync();
        using var deadline = new CancellationTokenSource(TimeSpan.FromMinutes(5));
        await process.WaitForExitAsync(deadline.Token);
        if (process.ExitCode != 0)
        {
            throw new InvalidOperationException($"building plugins-samples failed ({process.ExitCode}):\n{await output}\n{await error}");
        }

        return root;
    }
}

/// <summary>
/// A bounded request loop: a few clients (HTTP/1.1 and HTTP/2) send requests, each answer is named by
/// a classifier, and anything the classifier does not accept counts as a failed request.
/// </summary>
public sealed class RequestLoop : IAsyncDisposable
{
    private readonly CancellationTokenSource _stop = new(TimeSpan.FromSeconds(90));
    private readonly ConcurrentQueue<string> _failures = new();
    private readonly ConcurrentDictionary<string, long> _firstSeen = new();
    private readonly ConcurrentDictionary<string, TaskCompletionSource<long>> _waiters = new();
    private readonly List<List<string>> _sequences = [];
    private readonly Task[] _workers;
    private long _completed;

    private RequestLoop(Func<HttpRequestMessage> request, Func<HttpResponseMessage, string, string?> classify, int workers, int perWorker)
    {
        _workers = new Task[workers];
        for (var i = 0; i < workers; i++)
        {
            var sequence = new List<string>();
            _sequences.Add(sequence);
            var http2 = i % 2 == 1;
            _workers[i] = Task.Run(() => WorkAsync(request, classify, http2, perWorker, sequence));
        }
    }

    /// <summary>
    /// Starts the loop. <paramref name="classify"/> gets each response and its body and returns the
    /// outcome's name, or null for a failed request.
    /// </summary>
    public static RequestLoop Start(Func<HttpRequestMessage> request, Func<HttpResponseMessage, string, string?> classify, int workers = 3, int perWorker = 4000) =>
        new(request, classify, workers, perWorker);

    public long Completed => Interlocked.Read(ref _completed);

    /// <summary>Completes with the timestamp of the first response of this outcome (or at once if already seen).</summary>
    public Task<long> SeenAsync(string outcome)
    {
        var waiter = _waiters.GetOrAdd(outcome, static _ => new TaskCompletionSource<long>(TaskCreationOptions.RunContinuationsAsynchronously));
        if (_firstSeen.TryGetValue(outcome, out var at))
        {
            waiter.TrySetResult(at);
        }

        return waiter.Task.WaitAsync(TestSidecar.Deadline);
    }

    /// <summary>Stops the clients and returns every failure and each HTTP/1.1 client's outcomes in order.</summary>
    public async Task<(IReadOnlyList<string> Failures, IReadOnlyList<IReadOnlyList<string>> Sequences)> StopAsync()
    {
        await _stop.CancelAsync();
        await Task.WhenAll(_workers);
        return ([.. _failures], [.. _sequences.Select(s => (IReadOnlyList<string>)s)]);
    }

    /// <summary>True when every client saw the outcomes in the order given (each possibly absent), never going back.</summary>
    public static bool Monotonic(IReadOnlyList<IReadOnlyList<string>> sequences, params string[] order)
    {
        foreach (var sequence in sequences)
        {
            var at = 0;
            foreach (var outcome in sequence)
            {
                var index = Array.IndexOf(order, outcome);
                if (index < at)
                {
                    return false;
                }

                at = index;
            }
        }

        return true;
    }

    public async ValueTask DisposeAsync()
    {
        await StopAsync();
        _stop.Dispose();
    }

    // HTTP/1.1 clients send one request at a time (their outcomes must never go back to an older
    // behaviour); HTTP/2 clients send bursts of concurrent streams on one connection.
    private async Task WorkAsync(Func<HttpRequestMessage> request, Func<HttpResponseMessage, string, string?> classify, bool http2, int perWorker, List<string> sequence)
    {
        using var client = http2 ? Clients.Http2() : Clients.Http1();
        for (var i = 0; i < perWorker && !_stop.IsCancellationRequested; i++)
        {
            if (http2)
            {
                await Task.WhenAll(Enumerable.Range(0, 6).Select(_ => OneAsync(client, request, classify, http2: true)));
            }
            else if (await OneAsync(client, request, classify, http2: false) is { } outcome)
            {
                sequence.Add(outcome);
            }

            // Paced, so the sidecar's own watcher still gets the machine's cores.
            await Task.Delay(2, CancellationToken.None);
        }
    }

    private async Task<string?> OneAsync(HttpClient client, Func<HttpRequestMessage> request, Func<HttpResponseMessage, string, string?> classify, bool http2)
    {
        string? outcome;
        try
        {
            using var message = request();
            if (http2)
            {
                message.Version = HttpVersion.Version20;
                message.VersionPolicy = HttpVersionPolicy.RequestVersionExact;
            }

            using var response = await client.SendAsync(message, _stop.Token);
            var body = await response.Content.ReadAsStringAsync(_stop.Token);
            outcome = classify(response, body);
            if (outcome is null)
            {
                _failures.Enqueue($"unexpected {(int)response.StatusCode}: {body.Trim()}");
                return null;
            }
        }
        catch (OperationCanceledException) when (_stop.IsCancellationRequested)
        {
            return null;
        }
        catch (Exception ex)
        {
            _failures.Enqueue($"{ex.GetType().Name}: {ex.Message}");
            return null;
        }

        var now = Stopwatch.GetTimestamp();
        Interlocked.Increment(ref _completed);
        _firstSeen.TryAdd(outcome, now);
        if (_waiters.TryGetValue(outcome, out var waiter))
        {
            waiter.TrySetResult(_firstSeen[outcome]);
        }

        return outcome;
    }
}
