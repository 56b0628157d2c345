// Registers the resilience feature: its clock, metrics, runtime, mirror sender and the data-path stages.
using Microsoft.Extensions.DependencyInjection.Extensions;

namespace Mesh.Sidecar.Resilience;

/// <summary>Service registration for retries, timeouts, breakers, outlier detection, health checks and traffic policy.</summary>
internal static class ResilienceServiceCollectionExtensions
{
    /// <summary>Adds the resilience services; a test may register a <see cref="ResilienceClock"/> with a fake clock first or after.</summary>
    public static IServiceCollection AddMeshResilience(this IServiceCollection services)
    {
        services.TryAddSingleton(new ResilienceClock(TimeProvider.System));
        services.AddSingleton<ResilienceMetrics>();
        services.AddSingleton<ResilienceRuntime>();
        services.AddSingleton<MirrorSender>();
        services.AddSingleton<ResilientForwarder>();
        return services;
    }
}
