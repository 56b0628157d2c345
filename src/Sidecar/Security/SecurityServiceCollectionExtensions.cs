// Registers the security feature: identity and certificate sources, TLS termination and origination, authorization.
using Mesh.Sidecar.Security.Identity;
using Mesh.Sidecar.Security.Tls;
using Microsoft.Extensions.DependencyInjection.Extensions;

namespace Mesh.Sidecar.Security;

/// <summary>Service registration for mTLS, identities and authorization.</summary>
internal static class SecurityServiceCollectionExtensions
{
    /// <summary>
    /// Adds the security services and the built-in certificate sources (<c>ca</c>, <c>files</c>). Other
    /// sources (Consul's) register an <see cref="ICertificateSourceFactory"/> of their own; a test may
    /// register an <see cref="IdentityClock"/> with a fake clock to drive renewal.
    /// </summary>
    public static IServiceCollection AddMeshSecurity(this IServiceCollection services)
    {
        services.TryAddSingleton(new IdentityClock(TimeProvider.System));
        services.AddSingleton<ICertificateSourceFactory, CaCertificateSourceFactory>();
        services.AddSingleton<ICertificateSourceFactory, FileCertificateSourceFactory>();
        services.AddSingleton<SecurityMetrics>();
        services.AddSingleton<IdentityManager>();
        services.AddSingleton<UpstreamTlsClients>();
        services.AddSingleton<SecurityRuntime>();
        services.AddSingleton<InboundTls>();
        services.AddSingleton<IdentityAdmin>();
        return services;
    }
}
