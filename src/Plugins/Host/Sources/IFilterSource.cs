// A source of filter factories (C# plugin DLLs, JavaScript files): it loads units and reports each change.
using System.Threading.Channels;

namespace Mesh.Plugins;

/// <summary>What happened to one unit of a source.</summary>
public enum FilterSourceChangeKind
{
    /// <summary>A new version loaded: <see cref="FilterSourceChange.Package"/> is ready to be accepted.</summary>
    Loaded,

    /// <summary>The unit cannot load: <see cref="FilterSourceChange.Reason"/> says why. The previous version keeps serving.</summary>
    Refused,

    /// <summary>The unit is gone.</summary>
    Removed,
}

/// <summary>One change of one unit.</summary>
/// <param name="Source">The source's name.</param>
/// <param name="Id">The unit's identity across versions (its path relative to the source's directory).</param>
/// <param name="File">The file (or folder) it concerns.</param>
/// <param name="Kind">What happened.</param>
/// <param name="Package">For <see cref="FilterSourceChangeKind.Loaded"/>: the loaded package.</param>
/// <param name="Reason">For <see cref="FilterSourceChangeKind.Refused"/>: why.</param>
public sealed record FilterSourceChange(string Source, string Id, string File, FilterSourceChangeKind Kind, FilterPackage? Package = null, string? Reason = null);

/// <summary>
/// Publishes filter factories from files. Like discovery providers, sources know nothing of routes:
/// they load units into <see cref="FilterPackage"/>s and report changes; <see cref="FilterCatalog"/>
/// merges every source's packages into one <see cref="FilterRegistry"/>. A second kind of filter
/// (JavaScript) is a second source; nothing else changes.
/// </summary>
public interface IFilterSource : IDisposable
{
    /// <summary>The source's name (<c>csharp</c>, <c>javascript</c>), shown in the admin API.</summary>
    string Name { get; }

    /// <summary>The directory watched; null before <see cref="SetDirectory"/>.</summary>
    string? Directory { get; }

    /// <summary>Points the source at a directory (absolute). A different directory is rescanned: its units load, the old ones are removed.</summary>
    void SetDirectory(string directory);

    /// <summary>Loads every complete unit present now, without waiting for files to settle (start-up, <c>validate</c>).</summary>
    IReadOnlyList<FilterSourceChange> ScanNow();

    /// <summary>Loads unit <paramref name="id"/> again on the next pass even if its files did not change (a refusal's cause went away).</summary>
    void Recheck(string id);

    /// <summary>Watches the directory until cancelled and writes each change once the files involved have settled.</summary>
    Task WatchAsync(ChannelWriter<FilterSourceChange> changes, CancellationToken cancellationToken);
}
