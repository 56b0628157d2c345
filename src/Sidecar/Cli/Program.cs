// Entry point: mesh-sidecar run | validate | demo | version, parsed with System.CommandLine.
using System.CommandLine;
using System.Runtime.InteropServices;
using System.Reflection;
using Mesh.Sidecar.Configuration;
using Mesh.Sidecar.Demo;
using Mesh.Sidecar.Filters;
using Mesh.Sidecar.Hosting;

namespace Mesh.Sidecar.Cli;

/// <summary>The <c>mesh-sidecar</c> command line.</summary>
internal static class Program
{
    /// <summary>Exit code for an invalid configuration.</summary>
    public const int InvalidConfig = 2;

    // Only the real process entry may re-exec itself; tests call InvokeAsync inside their own host.
    private static bool s_isProcessEntry;

    public static async Task<int> Main(string[] args)
    {
        s_isProcessEntry = true;

        // SIGTERM (Kubernetes, systemd) and SIGINT (a terminal) start the graceful drain; the
        // runtime's default would end the process at once (exit 143) with requests in flight.
        using var stop = new CancellationTokenSource();
        using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, Stop);
        using var sigint = PosixSignalRegistration.Create(PosixSignal.SIGINT, Stop);
        return await InvokeAsync(args, Console.Out, Console.Error, stop.Token).ConfigureAwait(false);

        void Stop(PosixSignalContext context)
        {
            context.Cancel = true;
            stop.Cancel();
        }
    }

    /// <summary>Parses and runs <paramref name="args"/>, writing help and results to the given writers.</summary>
    public static Task<int> InvokeAsync(string[] args, TextWriter output, TextWriter error) =>
        BuildCommand(output, error).Parse(args).InvokeAsync(new InvocationConfiguration { Output = output, Error = error });

    // The process entry owns the signals, so System.CommandLine's own handling (which waits only
    // two seconds) is off; its token is cancelled by the signal handlers instead.
    private static Task<int> InvokeAsync(string[] args, TextWriter output, TextWriter error, CancellationToken stop) =>
        BuildCommand(output, error).Parse(args).InvokeAsync(new InvocationConfiguration { Output = output, Error = error, ProcessTerminationTimeout = null }, stop);

    public static RootCommand BuildCommand(TextWriter output, TextWriter error)
    {
        var rootConfig = ConfigOption();
        var root = new RootCommand("Mesh: a scriptable service-mesh sidecar. With no command, runs the sidecar.") { rootConfig };
        root.TreatUnmatchedTokensAsErrors = false;
        root.SetAction((result, ct) => RunAsync(result.GetValue(rootConfig)!, result.UnmatchedTokens, output, error, ct));

        var runConfig = ConfigOption();
        var run = new Command("run", "Run the sidecar. Extra --key=value arguments override config keys (for example --admin:port=19001).") { runConfig };
        run.TreatUnmatchedTokensAsErrors = false;
        run.SetAction((result, ct) => RunAsync(result.GetValue(runConfig)!, result.UnmatchedTokens, output, error, ct));

        var validateConfig = ConfigOption();
        var validate = new Command("validate", "Check a config file; print every problem with its JSON path and exit 2 if there is any.") { validateConfig };
        validate.TreatUnmatchedTokensAsErrors = false;
        validate.SetAction(result => Validate(result.GetValue(validateConfig)!, result.UnmatchedTokens, output, error));

        var port = new Option<int>("--port") { Description = "Outbound listener port.", DefaultValueFactory = _ => 15001 };
        var adminPort = new Option<int>("--admin-port") { Description = "Admin listener port.", DefaultValueFactory = _ => 19000 };
        var demo = new Command("demo", "Start sample upstreams (api x2, admin, static, marketing) and a sidecar routing by Host on loopback.") { port, adminPort };
        demo.SetAction((result, ct) => DemoAsync(result.GetValue(port), result.GetValue(adminPort), output, error, ct));

        var version = new Command("version", "Print the version.");
        version.SetAction(_ =>
        {
            output.WriteLine($"mesh-sidecar {Version}");
            return 0;
        });

        root.Subcommands.Add(run);
        root.Subcommands.Add(validate);
        root.Subcommands.Add(demo);
        root.Subcommands.Add(version);
        root.Subcommands.Add(CaCommand.Create(output, error));
        return root;
    }

    public static string Version =>
        typeof(Program).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion.Split('+')[0] ?? "0.0.0";

    private static Option<string> ConfigOption() => new("--config", "-c")
    {
        Description = "Config file (JSON).",
        DefaultValueFactory = _ => ConfigLoader.DefaultFile,
    };

    private static int Validate(string path, IReadOnlyList<string> overrides, TextWriter output, TextWriter error)
    {
        // Filters are checked against the plugin directory too: a filter not there, a factory's settings error.
        var result = FilterValidation.Check(path, ConfigLoader.Load(path, overrides));
        if (result.IsValid)
        {
            output.WriteLine($"{path}: configuration is valid");
            return 0;
        }

        PrintErrors(path, result.Errors, error);
        return InvalidConfig;
    }

    private static async Task<int> RunAsync(string path, IReadOnlyList<string> overrides, TextWriter output, TextWriter error, CancellationToken cancellationToken)
    {
        // Runtime settings come before the runtime or the first socket reads them.
        var preview = ConfigLoader.Load(path, overrides);
        if (preview.IsValid)
        {
            var performance = preview.Options!.Performance;
            if (s_isProcessEntry)
            {
                RuntimeRelaunch.Relaunch(RuntimeRelaunch.Wanted(performance));
            }

            if (performance.InlineCompletions)
            {
                Environment.SetEnvironmentVariable("DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS", "1");
            }
        }

        RunningSidecar sidecar;
        try
        {
            sidecar = await SidecarHost.StartAsync(new SidecarLaunch(path) { Overrides = overrides }, cancellationToken).ConfigureAwait(false);
        }
        catch (SidecarConfigException ex)
        {
            PrintErrors(path, ex.Errors, error);
            return InvalidConfig;
        }

        await using (sidecar.ConfigureAwait(false))
        {
            output.WriteLine($"mesh-sidecar {Version} running; admin on {sidecar.AdminUri}");
            try
            {
                await Task.Delay(Timeout.Infinite, cancellationToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
            }
        }

        return 0;
    }

    private static async Task<int> DemoAsync(int port, int adminPort, TextWriter output, TextWriter error, CancellationToken cancellationToken)
    {
        try
        {
            return await DemoCommand.RunAsync(port, adminPort, output, cancellationToken).ConfigureAwait(false);
        }
        catch (SidecarConfigException ex)
        {
            PrintErrors("demo", ex.Errors, error);
            error.WriteLine("Another process may hold the port; choose others with --port and --admin-port.");
            return InvalidConfig;
        }
    }

    private static void PrintErrors(string path, IReadOnlyList<ConfigError> errors, TextWriter error)
    {
        error.WriteLine($"{path}: {errors.Count} problem{(errors.Count == 1 ? "" : "s")} in the configuration:");
        foreach (var problem in errors)
        {
            error.WriteLine($"  {problem}");
        }
    }
}
