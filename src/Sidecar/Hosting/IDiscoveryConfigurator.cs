// A provider's hook into config applies: prepare (may fail the apply), then commit or abandon.
using Mesh.Sidecar.Configuration;

namespace Mesh.Sidecar.Hosting;

/// <summary>
/// Lets a discovery provider take part in <see cref="MeshRuntime.ApplyAsync"/> all-or-nothing:
/// <see cref="Prepare"/> runs before listeners bind and may reject the config (a certificate that
/// does not load); <see cref="Commit"/> runs once the config is applied, <see cref="Abandon"/> if not.
/// </summary>
internal interface IDiscoveryConfigurator
{
    /// <summary>Checks and prepares what <paramref name="options"/> needs; changes nothing live.</summary>
    IReadOnlyList<ConfigError> Prepare(MeshOptions options);

    /// <summary>Switches to what <see cref="Prepare"/> prepared.</summary>
    void Commit();

    /// <summary>Drops what <see cref="Prepare"/> prepared.</summary>
    void Abandon();
}
