// Entry point: mesh-sidecar run | validate | demo | version | help, parsed with System.CommandLine.
using System.CommandLine;
using System.CommandLine.Help;
using System.CommandLine.Invocation;
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

    /// <summary>Exit code for a command line that cannot be understood (unknown command or option).</summary>
    public const int UsageError = 2;

    private const string Name = "mesh-sidecar";

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
        InvokeAsync(args, output, error, CancellationToken.None);

    /// <summary>As <see cref="InvokeAsync(string[], TextWriter, TextWriter)"/>; <paramref name="stop"/> ends a <c>run</c> as SIGTERM would.</summary>
    public static Task<int> InvokeAsync(string[] args, TextWriter output, TextWriter error, CancellationToken stop) =>
        InvokeCoreAsync(args, output, error, stop);

    // The process entry owns the signals, so System.CommandLine's own handling (which waits only
    // two seconds) is off; the token is cancelled by the signal handlers instead.
    private static Task<int> InvokeCoreAsync(string[] args, TextWriter output, TextWriter error, CancellationToken stop)
    {
        var root = BuildCommand(output, error);
        var parsed = root.Parse(ConfigOverrides.Normalise(args));
        if (parsed.Action is ParseErrorAction)
        {
            // A mistyped command or option must never fall through to running the sidecar.
            return Task.FromResult(CommandLineErrors.Report(parsed, error));
        }

        return parsed.InvokeAsync(new InvocationConfiguration { Output = output, Error = error, ProcessTerminationTimeout = null }, stop);
    }

    public static Command BuildCommand(TextWriter output, TextWriter error)
    {
        var rootConfig = ConfigOption();
        var rootSet = SetOption();
        // A plain command named mesh-sidecar rather than RootCommand, whose name is the host's file
        // name (dotnet, or testhost in tests): help and errors then always say mesh-sidecar.
        var root = new Command(Name, "Mesh: a scriptable service-mesh sidecar. With no command, runs the sidecar (as 'run').")
        {
            rootConfig,
            rootSet,
            new HelpOption(),
            new VersionOption { Action = new VersionAction(output) },
        };
        root.SetAction((result, ct) => RunAsync(result.GetValue(rootConfig)!, result.GetValue(rootSet), output, error, ct));

        var runConfig = ConfigOption();
        var runSet = SetOption();
        var run = new Command("run", "Run the sidecar on a config file; the file is reloaded when it changes. SIGTERM or Ctrl-C drains and exits 0.") { runConfig, runSet };
        run.SetAction((result, ct) => RunAsync(result.GetValue(runConfig)!, result.GetValue(runSet), output, error, ct));

        var validateConfig = ConfigOption();
        var validateSet = SetOption();
        var validate = new Command("validate", "Check a config file (with the same overrides run would use); print every problem with its JSON path and exit 2 if there is any.") { validateConfig, validateSet };
        validate.SetAction(result => Validate(result.GetValue(validateConfig)!, result.GetValue(validateSet), output, error));

        var port = new Option<int>("--port") { Description = "Outbound listener port.", DefaultValueFactory = _ => 15001 };
        var adminPort = new Option<int>("--admin-port") { Description = "Admin listener port.", DefaultValueFactory = _ => 19000 };
        var demo = new Command("demo", "Start sample upstreams (api x2, admin, static, marketing) and a sidecar routing by Host on loopback.") { port, adminPort };
        demo.SetAction((result, ct) => DemoAsync(result.GetValue(port), result.GetValue(adminPort), output, error, ct));

        var version = new Command("version", "Print the version and the commit it was built from (same as --version).");
        version.SetAction(_ => PrintVersion(output));

        var topic = new Argument<string?>("command") { Description = "The command to describe.", Arity = ArgumentArity.ZeroOrOne, DefaultValueFactory = _ => null };
        var help = new Command("help", "Show help for mesh-sidecar or for one command.") { topic };

        root.Subcommands.Add(run);
        root.Subcommands.Add(validate);
        root.Subcommands.Add(demo);
        root.Subcommands.Add(version);
        root.Subcommands.Add(CaCommand.Create(output, error));
        root.Subcommands.Add(help);
        help.SetAction(result => Help(root, result.GetValue(topic), output, error));
        return root;
    }

    /// <summary>The version and commit, as <c>version</c> and <c>--version</c> print it.</summary>
    public static string VersionLine
    {
        get
        {
            var informational = typeof(Program).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion ?? Version;
            var plus = informational.IndexOf('+', StringComparison.Ordinal);
            return plus < 0 ? $"{Name} {informational}" : $"{Name} {informational[..plus]} (commit {informational[(plus + 1)..]})";
        }
    }

    public static string Version =>
        typeof(Program).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion.Split('+')[0] ?? "0.0.0";

    private static int PrintVersion(TextWriter output)
    {
        output.WriteLine(VersionLine);
        return 0;
    }

    private static Option<string> ConfigOption() => new("--config", "-c")
    {
        Description = "Config file (JSON).",
        DefaultValueFactory = _ => ConfigLoader.DefaultFile,
    };

    private static Option<string[]> SetOption() => new(ConfigOverrides.SetOption)
    {
        Description = "Override one config key for this run, as if the file said so: --set admin:port=19001 sets \"admin\": { \"port\": 19001 }; "
            + "list elements by index: --set listeners:0:port=15002. Repeat for more keys. Shorthand: --admin:port=19001. "
            + "MESH__ADMIN__PORT=19001 in the environment does the same; the command line wins.",
        HelpName = "key=value",
        AllowMultipleArgumentsPerToken = false,
    };

    private static int Help(Command root, string? topic, TextWriter output, TextWriter error)
    {
        string[] args = ["--help"];
        if (topic is not null)
        {
            if (!root.Subcommands.Any(c => c.Name == topic))
            {
                return CommandLineErrors.UnknownCommand(root, topic, error);
            }

            args = [topic, "--help"];
        }

        return root.Parse(args).Invoke(new InvocationConfiguration { Output = output, Error = error });
    }

    private static int Validate(string path, string[]? set, TextWriter output, TextWriter error)
    {
        if (ConfigOverrides.ToLoaderForm(set, out var overrides) is { } problem)
        {
            return CommandLineErrors.Report(problem, "validate", error);
        }

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

    private static async Task<int> RunAsync(string path, string[]? set, TextWriter output, TextWriter error, CancellationToken cancellationToken)
    {
        if (ConfigOverrides.ToLoaderForm(set, out var overrides) is { } problem)
        {
            return CommandLineErrors.Report(problem, "run", error);
        }

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
            // Printed only now that every socket is bound, with the addresses they really got.
            output.WriteLine($"{Name} {Version} running; admin on {sidecar.AdminUri} {sidecar.DescribeListeners()}");
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

    private sealed class VersionAction(TextWriter output) : SynchronousCommandLineAction
    {
        public override int Invoke(ParseResult parseResult) => PrintVersion(output);
    }
}
