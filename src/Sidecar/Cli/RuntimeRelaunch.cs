// Restarts `run` in place (execve, same PID) with runtime settings that only the environment can carry.
using System.Globalization;
using System.Runtime.InteropServices;
using Mesh.Sidecar.Configuration;

namespace Mesh.Sidecar.Cli;

/// <summary>
/// The GC reads its first-generation budget once, before any managed code runs, and only from the
/// environment (<c>DOTNET_GCgen0size</c> has no runtimeconfig.json name). So <c>run</c> re-executes
/// itself once, on Linux, with that variable set: same PID, same name, same arguments and file
/// descriptors, so supervisors and signals are unaffected. A value the user exported wins and stops the re-exec.
/// </summary>
internal static partial class RuntimeRelaunch
{
    /// <summary>Set in the re-executed process, so that it never loops.</summary>
    public const string MarkerVariable = "MESH_RELAUNCHED";

    /// <summary>The GC's minimum first-generation budget, in hexadecimal bytes.</summary>
    public const string Gen0SizeVariable = "DOTNET_GCgen0size";

    /// <summary>The environment additions <paramref name="performance"/> asks for, or none.</summary>
    public static IReadOnlyDictionary<string, string> Wanted(PerformanceOptions performance)
    {
        ArgumentNullException.ThrowIfNull(performance);
        var wanted = new Dictionary<string, string>(StringComparer.Ordinal);
        if (performance.GcGen0SizeMb > 0 && Environment.GetEnvironmentVariable(Gen0SizeVariable) is null)
        {
            wanted[Gen0SizeVariable] = ((long)performance.GcGen0SizeMb * 1024 * 1024).ToString("x", CultureInfo.InvariantCulture);
        }

        return wanted;
    }

    /// <summary>
    /// Replaces this process with itself plus <paramref name="additions"/>. Returns only when the
    /// re-exec is not possible (not Linux, already re-executed, nothing to add, or execve failed);
    /// the caller then runs with the runtime's defaults.
    /// </summary>
    public static void Relaunch(IReadOnlyDictionary<string, string> additions)
    {
        ArgumentNullException.ThrowIfNull(additions);
        if (additions.Count == 0 || !OperatingSystem.IsLinux() || Environment.GetEnvironmentVariable(MarkerVariable) is not null)
        {
            return;
        }

        string[] argv;
        try
        {
            // The exact argv this process started with: the apphost, or dotnet and the dll.
            argv = File.ReadAllText("/proc/self/cmdline").TrimEnd('\0').Split('\0');
        }
        catch (IOException)
        {
            return;
        }

        var environment = new List<string>();
        foreach (System.Collections.DictionaryEntry entry in Environment.GetEnvironmentVariables())
        {
            environment.Add($"{entry.Key}={entry.Value}");
        }

        foreach (var (name, value) in additions)
        {
            environment.Add($"{name}={value}");
        }

        environment.Add($"{MarkerVariable}=1");
        Console.Out.Flush();
        Console.Error.Flush();
        Execute(ExecutablePath(), argv, environment);
    }

    /// <summary>
    /// The file to re-execute. The kernel names a process after the last part of the path given to
    /// execve, so <c>/proc/self/exe</c> would turn <c>mesh-sidecar</c> into <c>exe</c> in ps, top,
    /// <c>ss -p</c> and <c>pgrep -x</c>. The real path keeps the name; <c>/proc/self/exe</c> (always this
    /// very binary) is the fallback when that file is gone, say replaced by an upgrade.
    /// </summary>
    internal static string ExecutablePath()
    {
        var path = Environment.ProcessPath;
        return path is not null && Path.IsPathFullyQualified(path) && File.Exists(path) ? path : "/proc/self/exe";
    }

    private static unsafe void Execute(string path, string[] argv, List<string> environment)
    {
        var args = new nint[argv.Length + 1];
        var env = new nint[environment.Count + 1];
        try
        {
            for (var i = 0; i < argv.Length; i++)
            {
                args[i] = Marshal.StringToCoTaskMemUTF8(argv[i]);
            }

            for (var i = 0; i < environment.Count; i++)
            {
                env[i] = Marshal.StringToCoTaskMemUTF8(environment[i]);
            }

            fixed (nint* a = args)
            fixed (nint* e = env)
            {
                // Returns only on failure; the process carries on as it is.
                _ = ExecVe(path, a, e);
            }
        }
        finally
        {
            foreach (var p in args)
            {
                Marshal.FreeCoTaskMem(p);
            }

            foreach (var p in env)
            {
                Marshal.FreeCoTaskMem(p);
            }
        }
    }

    [LibraryImport("libc", EntryPoint = "execve", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    private static unsafe partial int ExecVe(string path, nint* argv, nint* envp);
}
