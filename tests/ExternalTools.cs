// Finds the third-party programs some tests run against (nginx, curl, h2load, node...), installing missing Debian packages when it can.
using System.Diagnostics;

namespace Mesh.Tests;

/// <summary>
/// Programs nobody here wrote, used as peers in tests. A missing program is installed with apt-get
/// when the tests run as root on Debian (a fresh CI or developer machine); otherwise the test fails
/// with the command that installs it. Never a skip: a test that cannot run has not passed.
/// </summary>
internal static class ExternalTools
{
    private static readonly Dictionary<string, string> Packages = new(StringComparer.Ordinal)
    {
        ["nginx"] = "nginx-light",
        ["haproxy"] = "haproxy",
        ["wrk"] = "wrk",
        ["h2load"] = "nghttp2-client",
        ["nghttp"] = "nghttp2-client",
        ["openssl"] = "openssl",
        ["curl"] = "curl",
        ["python3"] = "python3",
        ["node"] = "nodejs",
        ["npm"] = "npm",
    };

    private static readonly string[] ExtraDirectories = ["/usr/sbin", "/usr/local/sbin", "/sbin", "/usr/bin", "/usr/local/bin"];
    private static readonly object Gate = new();

    /// <summary>The full path of <paramref name="command"/>, installing its Debian package first if needed.</summary>
    public static string Require(string command)
    {
        ArgumentNullException.ThrowIfNull(command);
        if (Find(command) is { } found)
        {
            return found;
        }

        lock (Gate)
        {
            if (Find(command) is { } again)
            {
                return again;
            }

            var package = Packages.GetValueOrDefault(command, command);
            var why = TryInstall(package);
            return Find(command)
                ?? throw new InvalidOperationException($"This test needs '{command}', which is not installed ({why}). Install it with: apt-get install {package}");
        }
    }

    /// <summary>
    /// A folder whose node_modules holds <paramref name="packages"/> (npm names with versions), installed
    /// once per machine into a cache folder; for Node peers such as @grpc/grpc-js.
    /// </summary>
    public static string NodeModules(params string[] packages)
    {
        ArgumentNullException.ThrowIfNull(packages);
        var npm = Require("npm");
        var key = Convert.ToHexString(System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(string.Join(' ', packages))))[..16];
        var folder = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "mesh-test-node", key);
        var done = System.IO.Path.Combine(folder, ".installed");
        lock (Gate)
        {
            using var machineLock = MachineLock("npm-" + key);
            if (File.Exists(done))
            {
                return folder;
            }

            Directory.CreateDirectory(folder);
            File.WriteAllText(System.IO.Path.Combine(folder, "package.json"), "{\"private\":true}");
            var (code, output) = Run(npm, ["install", "--no-audit", "--no-fund", "--loglevel=error", .. packages], folder, TimeSpan.FromMinutes(5));
            if (code != 0)
            {
                throw new InvalidOperationException($"npm install {string.Join(' ', packages)} failed in {folder} (exit {code}): {output}");
            }

            File.WriteAllText(done, "");
            return folder;
        }
    }

    private static string? Find(string command)
    {
        var path = Environment.GetEnvironmentVariable("PATH") ?? "";
        foreach (var dir in path.Split(':', StringSplitOptions.RemoveEmptyEntries).Concat(ExtraDirectories))
        {
            var candidate = System.IO.Path.Combine(dir, command);
            if (File.Exists(candidate))
            {
                return candidate;
            }
        }

        return null;
    }

    private static string TryInstall(string package)
    {
        if (!OperatingSystem.IsLinux() || Environment.UserName != "root")
        {
            return "not running as root, so it cannot be installed here";
        }

        if (Find("apt-get") is not { } aptGet)
        {
            return "no apt-get on this machine";
        }

        // Test projects run in parallel processes: one apt-get at a time machine-wide.
        using var machineLock = MachineLock("apt");
        var env = new Dictionary<string, string> { ["DEBIAN_FRONTEND"] = "noninteractive" };
        var (code, output) = Run(aptGet, ["install", "-y", "-qq", "--no-install-recommends", package], null, TimeSpan.FromMinutes(10), env);
        if (code != 0)
        {
            Run(aptGet, ["update", "-qq"], null, TimeSpan.FromMinutes(10), env);
            (code, output) = Run(aptGet, ["install", "-y", "-qq", "--no-install-recommends", package], null, TimeSpan.FromMinutes(10), env);
        }

        return code == 0 ? "installed, yet still not found" : $"apt-get install {package} failed: {output.Trim()}";
    }

    private static FileStream MachineLock(string name)
    {
        var path = System.IO.Path.Combine(System.IO.Path.GetTempPath(), $"mesh-tests-{name}.lock");
        var deadline = DateTime.UtcNow.AddMinutes(15);
        while (true)
        {
            try
            {
                return new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
            }
            catch (IOException) when (DateTime.UtcNow < deadline)
            {
                // Another test process holds it; it is released when that install ends.
                Thread.Sleep(200);
            }
        }
    }

    private static (int Code, string Output) Run(string file, string[] arguments, string? workingDirectory, TimeSpan timeout, Dictionary<string, string>? environment = null)
    {
        var start = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        if (workingDirectory is not null)
        {
            start.WorkingDirectory = workingDirectory;
        }

        foreach (var (key, value) in environment ?? [])
        {
            start.Environment[key] = value;
        }

        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(timeout))
        {
            process.Kill(entireProcessTree: true);
            return (-1, $"timed out after {timeout}");
        }

        return (process.ExitCode, stdout.Result + stderr.Result);
    }
}
