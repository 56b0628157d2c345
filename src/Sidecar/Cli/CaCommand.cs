// mesh-sidecar ca init: writes the built-in CA (certificate and key) that sidecars with identity.source "ca" issue their leaves from.
using System.CommandLine;
using Mesh.Sidecar.Security;
using Mesh.Sidecar.Security.Certificates;

namespace Mesh.Sidecar.Cli;

/// <summary>The <c>ca</c> command group.</summary>
internal static class CaCommand
{
    /// <summary>Exit code for bad arguments or a CA that cannot be written.</summary>
    public const int Failed = 1;

    public static Command Create(TextWriter output, TextWriter error)
    {
        var dir = new Option<string>("--dir") { Description = "Folder to write ca.crt and ca.key into (created if missing).", Required = true };
        var trustDomain = new Option<string>("--trust-domain") { Description = "SPIFFE trust domain, for example mesh.local.", Required = true };
        var years = new Option<int>("--years") { Description = "CA lifetime in years.", DefaultValueFactory = _ => 10 };
        var force = new Option<bool>("--force") { Description = "Replace an existing CA (every leaf it issued stops being trusted)." };
        var init = new Command("init", "Create the built-in CA: an ECDSA P-256 certificate (CA:TRUE, spiffe://TRUST-DOMAIN) and its key.") { dir, trustDomain, years, force };
        init.SetAction(result => Init(result.GetValue(dir)!, result.GetValue(trustDomain)!, result.GetValue(years), result.GetValue(force), output, error));
        return new Command("ca", "The built-in certificate authority for development and small meshes.") { init };
    }

    private static int Init(string directory, string trustDomain, int years, bool force, TextWriter output, TextWriter error)
    {
        if (!SpiffeId.TryParse(SpiffeId.Prefix + trustDomain, out var id, out var problem) || id.Path.Length > 0)
        {
            error.WriteLine($"--trust-domain: '{trustDomain}' is not a trust domain name ({problem ?? "no '/' allowed"})");
            return Failed;
        }

        if (years is < 1 or > 50)
        {
            error.WriteLine($"--years: {years} is out of range; use 1 to 50");
            return Failed;
        }

        try
        {
            using var ca = BuiltInCa.CreateCa(id.TrustDomain, DateTimeOffset.UtcNow, TimeSpan.FromDays(365 * years));
            BuiltInCa.Write(directory, ca, force);
            var full = Path.GetFullPath(directory);
            output.WriteLine($"CA for trust domain {id.TrustDomain} written to {full}");
            output.WriteLine($"  {Path.Combine(full, BuiltInCa.CertificateFileName)}  certificate (the trust bundle; share it)");
            output.WriteLine($"  {Path.Combine(full, BuiltInCa.KeyFileName)}  private key (mode 0600; keep it off shared disks and out of images)");
            output.WriteLine($"Sidecars use it with: \"identity\": {{ \"source\": \"ca\", \"caDir\": \"{full}\", \"trustDomain\": \"{id.TrustDomain}\" }}");
            return 0;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            error.WriteLine($"--dir: {ex.Message}");
            return Failed;
        }
    }
}
