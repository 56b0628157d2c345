// The certificate-source contract: built-in CA, PEM files, and (from the Consul issue) Consul Connect's CA.
using Mesh.Sidecar.Configuration;

namespace Mesh.Sidecar.Security.Identity;

/// <summary>
/// Supplies the sidecar's identity (<c>identity.source</c>). A source loads a first snapshot, then
/// streams each newer one (renewal, rotated files, new roots); the sidecar swaps it in for new
/// handshakes. A source that cannot produce a new snapshot keeps quiet (after
/// <see cref="CertificateSourceContext.ReportFailure"/>) and the last good one keeps serving.
/// </summary>
/// <remarks>
/// To add a source, implement this and <see cref="ICertificateSourceFactory"/> and register the factory
/// in the service collection; <c>identity.source</c> then accepts its <see cref="ICertificateSourceFactory.Name"/>.
/// </remarks>
public interface ICertificateSource : IAsyncDisposable
{
    /// <summary>The <c>identity.source</c> value this source serves.</summary>
    string Name { get; }

    /// <summary>
    /// Produces the first identity. Throws <see cref="CertificateSourceException"/> with the config path
    /// at fault when it cannot; the config that asked for it is then rejected.
    /// </summary>
    Task<IdentitySnapshot> LoadAsync(CancellationToken cancellationToken);

    /// <summary>Yields each identity newer than the last one produced, until cancelled.</summary>
    IAsyncEnumerable<IdentitySnapshot> WatchAsync(CancellationToken cancellationToken);
}

/// <summary>Creates the <see cref="ICertificateSource"/> for one <c>identity</c> config; found by <see cref="Name"/>.</summary>
public interface ICertificateSourceFactory
{
    /// <summary>The <c>identity.source</c> value (for example <c>consul</c>).</summary>
    string Name { get; }

    /// <summary>A source for <paramref name="options"/> (the whole config, for keys outside <c>identity</c>).</summary>
    ICertificateSource Create(MeshOptions options, CertificateSourceContext context);
}

/// <summary>What a source gets from the sidecar.</summary>
/// <param name="Time">The clock for issuing, renewing and checking validity (a fake one in tests).</param>
/// <param name="LoggerFactory">For the source's own logs.</param>
/// <param name="ReportFailure">Call with a short reason (metric label) and a message when a refresh fails; the last good identity stays.</param>
public sealed record CertificateSourceContext(TimeProvider Time, ILoggerFactory LoggerFactory, Action<string, string> ReportFailure);

/// <summary>A certificate source cannot produce an identity; <see cref="Path"/> names the config key at fault.</summary>
public sealed class CertificateSourceException(string path, string message, Exception? inner = null) : Exception(message, inner)
{
    /// <summary>JSON path of the config key at fault, such as <c>identity.keyFile</c>.</summary>
    public string Path { get; } = path;
}
