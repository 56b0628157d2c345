// identity.source "files": PEM leaf, key and trust bundle written by cert-manager, SPIRE's helper or Vault, reloaded when they change.
using System.Runtime.CompilerServices;
using System.Security.Cryptography;
using Mesh.Sidecar.Configuration;
using Mesh.Sidecar.Security.Certificates;

namespace Mesh.Sidecar.Security.Identity;

/// <summary>Creates <see cref="FileCertificateSource"/>s.</summary>
internal sealed class FileCertificateSourceFactory : ICertificateSourceFactory
{
    public const string SourceName = "files";

    public string Name => SourceName;

    public ICertificateSource Create(MeshOptions options, CertificateSourceContext context) => new FileCertificateSource(options.Identity, context);
}

/// <summary>
/// Reads <c>identity.certificateFile</c>, <c>keyFile</c> and <c>trustBundleFile</c>, then polls their
/// bytes. Polling, not file-system events: Kubernetes swaps secret volumes through symlinks, which
/// watchers miss. Writers replace files one at a time, so a half-rotated pair (new certificate, old
/// key) is normal for a moment: it is reported and skipped, and the next poll picks up the whole pair.
/// </summary>
internal sealed class FileCertificateSource(IdentityOptions options, CertificateSourceContext context) : ICertificateSource
{
    /// <summary>How often the files are compared with what was loaded.</summary>
    public static readonly TimeSpan PollInterval = TimeSpan.FromMilliseconds(250);

    private byte[] _loaded = [];
    private byte[] _failed = [];

    public string Name => FileCertificateSourceFactory.SourceName;

    public Task<IdentitySnapshot> LoadAsync(CancellationToken cancellationToken)
    {
        var fingerprint = Fingerprint();
        var snapshot = Read();
        _loaded = fingerprint;
        return Task.FromResult(snapshot);
    }

    public async IAsyncEnumerable<IdentitySnapshot> WatchAsync([EnumeratorCancellation] CancellationToken cancellationToken)
    {
        // Real time, not the sidecar's clock: polling must go on when tests drive a fake clock.
        using var timer = new PeriodicTimer(PollInterval);
        while (await WaitAsync(timer, cancellationToken).ConfigureAwait(false))
        {
            var fingerprint = Fingerprint();
            if (fingerprint.AsSpan().SequenceEqual(_loaded) || fingerprint.AsSpan().SequenceEqual(_failed))
            {
                continue;
            }

            IdentitySnapshot? next = null;
            try
            {
                next = Read();
                _loaded = fingerprint;
                _failed = [];
            }
            catch (CertificateSourceException ex)
            {
                _failed = fingerprint;
                context.ReportFailure("reload-failed", $"{ex.Path}: {ex.Message}");
            }

            if (next is not null)
            {
                yield return next;
            }
        }
    }

    public ValueTask DisposeAsync() => ValueTask.CompletedTask;

    private static async ValueTask<bool> WaitAsync(PeriodicTimer timer, CancellationToken cancellationToken)
    {
        try
        {
            return await timer.WaitForNextTickAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            return false;
        }
    }

    private IdentitySnapshot Read()
    {
        var certificateFile = options.CertificateFile ?? "";
        var keyFile = options.KeyFile ?? "";
        var bundleFile = options.TrustBundleFile ?? "";
        try
        {
            var (leaf, intermediates) = PemFiles.ReadLeaf(certificateFile, keyFile);
            var now = context.Time.GetUtcNow();
            if (leaf.NotAfter.ToUniversalTime() <= now)
            {
                throw new CertificateSourceException("identity.certificateFile", $"the certificate in '{certificateFile}' expired on {leaf.NotAfter.ToUniversalTime():u}");
            }

            if (leaf.NotBefore.ToUniversalTime() > now + BuiltInCa.ClockSkew)
            {
                throw new CertificateSourceException("identity.certificateFile", $"the certificate in '{certificateFile}' is not valid before {leaf.NotBefore.ToUniversalTime():u}");
            }

            var bundle = PemFiles.ReadCertificates(bundleFile);
            var snapshot = new IdentitySnapshot(Name, leaf, intermediates, bundle);
            if (!string.Equals(snapshot.Id.TrustDomain, options.TrustDomain, StringComparison.OrdinalIgnoreCase))
            {
                throw new CertificateSourceException("identity.certificateFile", $"the certificate's SPIFFE ID {snapshot.Id} is not in trust domain '{options.TrustDomain}'");
            }

            return snapshot;
        }
        catch (CertificateFileException ex)
        {
            var path = ex.File == keyFile ? "identity.keyFile" : ex.File == bundleFile ? "identity.trustBundleFile" : "identity.certificateFile";
            throw new CertificateSourceException(path, ex.Message, ex);
        }
    }

    // A hash of the three files' bytes; unreadable files hash as empty, and Read reports why.
    private byte[] Fingerprint()
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        foreach (var path in new[] { options.CertificateFile, options.KeyFile, options.TrustBundleFile })
        {
            try
            {
                hash.AppendData(File.ReadAllBytes(path ?? ""));
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or ArgumentException)
            {
            }

            hash.AppendData([0]);
        }

        return hash.GetHashAndReset();
    }
}
