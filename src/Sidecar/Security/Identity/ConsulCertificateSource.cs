// identity.source "consul": the leaf and roots of Consul Connect's CA from the local agent, followed with blocking queries.
using System.Runtime.CompilerServices;
using Mesh.Discovery.Consul;
using Mesh.Sidecar.Configuration;
using Mesh.Sidecar.Hosting;
using Mesh.Sidecar.Security.Certificates;

namespace Mesh.Sidecar.Security.Identity;

/// <summary>Creates <see cref="ConsulCertificateSource"/>s.</summary>
internal sealed class ConsulCertificateSourceFactory : ICertificateSourceFactory
{
    public const string SourceName = "consul";

    public string Name => SourceName;

    public ICertificateSource Create(MeshOptions options, CertificateSourceContext context) => new ConsulCertificateSource(options, context);
}

/// <summary>
/// The sidecar's identity from Consul Connect: <c>/v1/agent/connect/ca/leaf/SERVICE-NAME</c> with
/// its key, and every root of <c>/v1/agent/connect/ca/roots</c> as the trust bundle. Both are
/// followed with blocking queries (<see cref="ConnectIdentityWatcher"/>), so the agent's renewals
/// and CA rotations are swapped in like any other source's; while the agent is unreachable the last
/// identity keeps serving and each failure is reported.
/// </summary>
internal sealed class ConsulCertificateSource(MeshOptions options, CertificateSourceContext context) : ICertificateSource
{
    private readonly string _service = options.Service.Name;
    private ConsulClient? _client;
    private ConnectIdentityWatcher? _watcher;
    private ConnectIdentity? _loaded;

    public string Name => ConsulCertificateSourceFactory.SourceName;

    public async Task<IdentitySnapshot> LoadAsync(CancellationToken cancellationToken)
    {
        if (options.Consul is not { } consul)
        {
            throw new CertificateSourceException("identity.source", "the consul source needs the top-level \"consul\" block (the agent's address)");
        }

        try
        {
            _client = new ConsulClient(ConsulDiscovery.ClientOptions(consul), context.LoggerFactory.CreateLogger<ConsulCertificateSource>());
        }
        catch (ConsulException ex)
        {
            throw new CertificateSourceException("consul", ex.Message, ex);
        }

        _watcher = new ConnectIdentityWatcher(_client, _service, context.LoggerFactory.CreateLogger<ConnectIdentityWatcher>(), context.Time)
        {
            OnFailure = reason => context.ReportFailure("consul-unreachable", reason),
        };
        ConnectIdentity identity;
        try
        {
            (identity, _, _) = await _watcher.LoadAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (ConsulException ex)
        {
            throw new CertificateSourceException("identity.source", $"cannot get the Connect leaf of '{_service}' from the Consul agent: {ex.Message}", ex);
        }

        var snapshot = ToSnapshot(identity);
        _loaded = identity;
        return snapshot;
    }

    public async IAsyncEnumerable<IdentitySnapshot> WatchAsync([EnumeratorCancellation] CancellationToken cancellationToken)
    {
        if (_watcher is null)
        {
            yield break;
        }

        await foreach (var identity in _watcher.WatchAsync(cancellationToken).ConfigureAwait(false))
        {
            if (_loaded is { } loaded && Same(loaded, identity))
            {
                continue;
            }

            IdentitySnapshot? next = null;
            try
            {
                next = ToSnapshot(identity);
                _loaded = identity;
            }
            catch (CertificateSourceException ex)
            {
                context.ReportFailure("reload-failed", $"{ex.Path}: {ex.Message}");
            }

            if (next is not null)
            {
                yield return next;
            }
        }
    }

    public ValueTask DisposeAsync()
    {
        _client?.Dispose();
        return ValueTask.CompletedTask;
    }

    private static bool Same(ConnectIdentity a, ConnectIdentity b) =>
        a.Leaf.SerialNumber == b.Leaf.SerialNumber && a.Leaf.CertPem == b.Leaf.CertPem
        && a.Roots.ActiveRootId == b.Roots.ActiveRootId && a.Roots.Roots.Count == b.Roots.Roots.Count;

    private IdentitySnapshot ToSnapshot(ConnectIdentity identity)
    {
        IdentitySnapshot snapshot;
        try
        {
            snapshot = new IdentitySnapshot(Name, identity.CreateCertificate(), identity.CreateIntermediates(), identity.CreateTrustBundle());
        }
        catch (Exception ex) when (ex is CertificateFileException or System.Security.Cryptography.CryptographicException or ArgumentException)
        {
            throw new CertificateSourceException("identity.source", $"the Connect leaf of '{_service}' from the Consul agent cannot be an identity: {ex.Message}", ex);
        }

        if (!string.Equals(snapshot.Id.TrustDomain, options.Identity.TrustDomain, StringComparison.OrdinalIgnoreCase))
        {
            throw new CertificateSourceException("identity.trustDomain", $"'{options.Identity.TrustDomain}' differs from the trust domain '{snapshot.Id.TrustDomain}' of Consul's Connect CA; set identity.trustDomain to it");
        }

        if (snapshot.NotAfter <= context.Time.GetUtcNow())
        {
            throw new CertificateSourceException("identity.source", $"the Connect leaf of '{_service}' expired on {snapshot.NotAfter:u}");
        }

        return snapshot;
    }
}
