// Reads a plugin file's PE and metadata without loading it: is it complete, is it .NET, which contract it was built against.
using System.Collections.Immutable;
using System.Reflection.Metadata;
using System.Reflection.PortableExecutable;

namespace Mesh.Plugins.Loading;

/// <summary>What a look at a plugin file's bytes found.</summary>
internal enum InspectionStatus
{
    /// <summary>A complete .NET assembly built against a contract this sidecar supports.</summary>
    Ok,

    /// <summary>The file ends before the sections its headers declare: still being written.</summary>
    Incomplete,

    /// <summary>Not loadable; <see cref="Inspection.Reason"/> says why.</summary>
    Refused,
}

/// <summary>The outcome of <see cref="PluginInspector.Inspect"/>.</summary>
internal readonly record struct Inspection(InspectionStatus Status, string Reason, Version? ContractVersion)
{
    public static Inspection Refuse(string reason) => new(InspectionStatus.Refused, reason, null);
}

/// <summary>Checks a plugin's main assembly before any load context exists.</summary>
internal static class PluginInspector
{
    /// <summary>The contract assembly's name.</summary>
    public const string ContractAssembly = "Mesh.Plugins.Abstractions";

    /// <summary>The contract version this sidecar carries.</summary>
    public static Version HostContract { get; } = typeof(IRequestFilterFactory).Assembly.GetName().Version ?? new Version(1, 0);

    /// <summary>A plugin built against <paramref name="built"/> runs here when the major matches and the minor is not newer.</summary>
    public static bool IsCompatible(Version built) =>
        built.Major == HostContract.Major && built.Minor <= HostContract.Minor;

    public static Inspection Inspect(byte[] image)
    {
        if (image.Length < 2 || image[0] != (byte)'M' || image[1] != (byte)'Z')
        {
            return Inspection.Refuse("not a .NET assembly (no PE header)");
        }

        try
        {
            using var pe = new PEReader(ImmutableArray.Create(image));
            var headers = pe.PEHeaders;
            foreach (var section in headers.SectionHeaders)
            {
                if ((long)section.PointerToRawData + section.SizeOfRawData > image.Length)
                {
                    return new Inspection(InspectionStatus.Incomplete, $"file is shorter than its headers declare ({image.Length} bytes)", null);
                }
            }

            if (!pe.HasMetadata)
            {
                return Inspection.Refuse("not a .NET assembly (a native PE file)");
            }

            var metadata = pe.GetMetadataReader();
            if (!metadata.IsAssembly)
            {
                return Inspection.Refuse("not a .NET assembly (a module without an assembly manifest)");
            }

            Version? contract = null;
            foreach (var handle in metadata.AssemblyReferences)
            {
                var reference = metadata.GetAssemblyReference(handle);
                if (metadata.StringComparer.Equals(reference.Name, ContractAssembly))
                {
                    contract = reference.Version;
                }
            }

            if (contract is null)
            {
                return Inspection.Refuse($"does not reference {ContractAssembly}, so it has no filter factory");
            }

            if (!IsCompatible(contract))
            {
                return new Inspection(
                    InspectionStatus.Refused,
                    $"built against {ContractAssembly} {contract.Major}.{contract.Minor}; this sidecar has {HostContract.Major}.{HostContract.Minor} and loads plugins built against {HostContract.Major}.0 to {HostContract.Major}.{HostContract.Minor}",
                    contract);
            }

            return new Inspection(InspectionStatus.Ok, "", contract);
        }
        catch (BadImageFormatException ex)
        {
            // A PE whose headers are cut short is also a file still being written.
            return image.Length < 4096
                ? new Inspection(InspectionStatus.Incomplete, $"file is too short to hold its headers ({image.Length} bytes): {ex.Message}", null)
                : Inspection.Refuse($"not a valid .NET assembly: {ex.Message}");
        }
    }
}
