// Compiles test plugins with Roslyn: real DLLs in milliseconds, in as many versions and faults as a test needs.
using System.Reflection;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;

namespace Mesh.Tests;

/// <summary>
/// Builds plugin assemblies from C# source against the sidecar's contract (or against the released
/// 1.0 contract, or a future one), so tests can drop exact variants into a plugins directory.
/// </summary>
public static class PluginCompiler
{
    private const string GlobalUsings = """
        global using System;
        global using System.Collections.Generic;
        global using System.Linq;
        global using System.Threading;
        global using System.Threading.Tasks;
        global using Mesh.Plugins;
        """;

    private static readonly Lazy<MetadataReference[]> Framework = new(() =>
    [
        .. ((string)AppContext.GetData("TRUSTED_PLATFORM_ASSEMBLIES")!)
            .Split(Path.PathSeparator)
            .Where(path => Path.GetFileName(path) is var name && (name.StartsWith("System.", StringComparison.Ordinal) || name is "netstandard.dll" or "mscorlib.dll"))
            .Select(path => MetadataReference.CreateFromFile(path)),
    ]);

    private static readonly Lazy<MetadataReference> Host = new(() => MetadataReference.CreateFromFile(typeof(Mesh.Plugins.IRequestFilter).Assembly.Location));

    private static readonly Lazy<string> Contract10Source = new(() =>
    {
        using var stream = typeof(PluginCompiler).Assembly.GetManifestResourceStream("Contract-1.0-source.txt")
            ?? throw new InvalidOperationException("embedded resource Contract-1.0-source.txt is missing");
        using var reader = new StreamReader(stream);
        return reader.ReadToEnd();
    });

    /// <summary>The contract the sidecar under test carries.</summary>
    public static MetadataReference HostContract => Host.Value;

    /// <summary>
    /// The contract exactly as released in 1.0, compiled as <c>Mesh.Plugins.Abstractions</c> with
    /// <paramref name="assemblyVersion"/> (1.0.0.0 for a plugin built against 1.0; 2.0.0.0 for one built against a future major).
    /// </summary>
    public static MetadataReference Contract10(string assemblyVersion = "1.0.0.0") =>
        MetadataReference.CreateFromImage(Emit("Mesh.Plugins.Abstractions", Contract10Source.Value, assemblyVersion, null, contract: null));

    /// <summary>Compiles <paramref name="source"/> into an assembly (global usings for System.* and Mesh.Plugins included).</summary>
    public static byte[] Compile(string assemblyName, string source, string version = "1.0.0", MetadataReference? contract = null, IEnumerable<MetadataReference>? references = null) =>
        Emit(assemblyName, source, version, references, contract ?? Host.Value);

    /// <summary>Compiles a plugin and writes it to <paramref name="directory"/>/<paramref name="assemblyName"/>.dll; returns the path.</summary>
    public static string WritePlugin(string directory, string assemblyName, string source, string version = "1.0.0", MetadataReference? contract = null)
    {
        var path = Path.Combine(directory, assemblyName + ".dll");
        File.WriteAllBytes(path, Compile(assemblyName, source, version, contract));
        return path;
    }

    private static byte[] Emit(string assemblyName, string source, string version, IEnumerable<MetadataReference>? references, MetadataReference? contract)
    {
        var attributes = $"""
            [assembly: System.Reflection.AssemblyVersion("{NumericVersion(version)}")]
            [assembly: System.Reflection.AssemblyInformationalVersion("{version}")]
            """;
        var trees = new List<SyntaxTree> { CSharpSyntaxTree.ParseText(source), CSharpSyntaxTree.ParseText(attributes) };
        if (contract is not null)
        {
            trees.Add(CSharpSyntaxTree.ParseText(GlobalUsings));
        }
        else
        {
            trees.Add(CSharpSyntaxTree.ParseText(GlobalUsings.Replace("global using Mesh.Plugins;", "", StringComparison.Ordinal)));
        }

        var all = Framework.Value.Concat(references ?? []);
        if (contract is not null)
        {
            all = all.Append(contract);
        }

        var compilation = CSharpCompilation.Create(
            assemblyName,
            trees,
            all,
            new CSharpCompilationOptions(OutputKind.DynamicallyLinkedLibrary, nullableContextOptions: NullableContextOptions.Enable, deterministic: true));
        using var image = new MemoryStream();
        var result = compilation.Emit(image);
        if (!result.Success)
        {
            throw new InvalidOperationException($"test plugin {assemblyName} does not compile:\n" + string.Join("\n", result.Diagnostics.Where(d => d.Severity == DiagnosticSeverity.Error)));
        }

        return image.ToArray();
    }

    private static string NumericVersion(string version)
    {
        var numeric = version.Split('-', '+')[0];
        return Version.TryParse(numeric, out _) ? numeric : "1.0.0";
    }
}
