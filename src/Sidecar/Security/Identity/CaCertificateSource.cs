// identity.source "ca": the sidecar issues its own leaf from the built-in CA at start and renews it at two-thirds of its life.
using System.Runtime.CompilerServices;
using System.Security.Cryptography.X509Certificates;
using Mesh.Sidecar.Configuration;
using Mesh.Sidecar.Security.Certificates;

namespace Mesh.Sidecar.Security.Identity;

/// <summary>Creates <see cref="CaCertificateSource"/>s.</summary>
internal sealed class CaCertificateSourceFactory : ICertificateSourceFactory
{
    public const string SourceName = "ca";

    public string Name => SourceName;

    public ICertificateSource Create(MeshOptions options, CertificateSourceContext context) => new CaCertificateSource(options, context);
}

/// <summary>
/// Issues an ECDSA P-256 leaf for <c>spiffe://TD/ns/NS/svc/NAME</c> from the CA in
/// <c>identity.caDir</c>. The CA files are read again at each renewal, so a replaced CA is used from
/// the next leaf on.
/// </summary>
internal sealed class CaCertificateSource(MeshOptions options, CertificateSourceContext context) : ICertificateSource
{
    // After a failed renewal, try again this often (or sooner, near expiry).
    private static readonly TimeSpan RetryPeriod = TimeSpan.FromMinutes(1);

    // Timers take at most about 49 days; longer waits are taken in steps.
    private static readonly TimeSpan LongestWait = TimeSpan.FromDays(30);

    private readonly string _directory = options.Identity.CaDir ?? "";
    private readonly string _id = SpiffeId.ForService(options.Identity.TrustDomain, options.Identity.Namespace, options.Service.Name);
    private readonly TimeSpan _lifetime = TimeSpan.FromHours(options.Identity.LeafTtlHours);
    private DateTimeOffset _renewAt;

    public string Name => CaCertificateSourceFactory.SourceName;

    public Task<IdentitySnapshot> LoadAsync(CancellationToken cancellationToken) => Task.FromResult(Issue());

    public async IAsyncEnumerable<IdentitySnapshot> WatchAsync([EnumeratorCancellation] CancellationToken cancellationToken)
    {
        var time = context.Time;
        var due = _renewAt;
        while (!cancellationToken.IsCancellationRequested)
        {
            var wait = due - time.GetUtcNow();
            if (wait > TimeSpan.Zero)
            {
                await Task.Delay(wait < LongestWait ? wait : LongestWait, time, cancellationToken).ConfigureAwait(false);
                continue;
            }

            IdentitySnapshot? next = null;
            try
            {
                next = Issue();
                due = _renewAt;
            }
            catch (CertificateSourceException ex)
            {
                context.ReportFailure("renewal-failed", ex.Message);
                due = time.GetUtcNow() + RetryPeriod;
            }

            if (next is not null)
            {
                yield return next;
            }
        }
    }

    public ValueTask DisposeAsync() => ValueTask.CompletedTask;

    private IdentitySnapshot Issue()
    {
        X509Certificate2 ca;
        try
        {
            ca = BuiltInCa.Load(_directory);
        }
        catch (CertificateFileException ex)
        {
            throw new CertificateSourceException("identity.caDir", ex.Message, ex);
        }

        using (ca)
        {
            var domain = PemFiles.SpiffeIdOf(ca, out _);
            if (domain is not null && !string.Equals(domain.TrustDomain, options.Identity.TrustDomain, StringComparison.OrdinalIgnoreCase))
            {
                throw new CertificateSourceException("identity.trustDomain", $"'{options.Identity.TrustDomain}' differs from the CA's trust domain '{domain.TrustDomain}' in '{_directory}'");
            }

            var now = context.Time.GetUtcNow();
            try
            {
                var leaf = BuiltInCa.IssueLeaf(ca, _id, options.Service.Name, now, _lifetime);
                var issuedFor = leaf.NotAfter.ToUniversalTime() - now;
                _renewAt = now + (issuedFor * 2 / 3);
                var bundle = new X509Certificate2Collection(X509CertificateLoader.LoadCertificate(ca.RawData));
                return new IdentitySnapshot(Name, leaf, [], bundle);
            }
            catch (CertificateFileException ex)
            {
                throw new CertificateSourceException("identity.caDir", ex.Message, ex);
            }
        }
    }
}
