// The built-in sources: the CA source issues and renews at two-thirds of the leaf's life (fake clock); the files source reloads whole pairs.
using System.Security.Cryptography.X509Certificates;
using Mesh.Sidecar.Configuration;
using Mesh.Sidecar.Security.Certificates;
using Mesh.Sidecar.Security.Identity;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;

namespace Mesh.Sidecar.Tests.Security.Identity;

public sealed class CertificateSourceTests : IDisposable
{
    private readonly TestCertificates _pki = new();
    private readonly List<(string Reason, string Message)> _failures = [];

    public void Dispose() => _pki.Dispose();

    private CertificateSourceContext Context(TimeProvider time) => new(time, NullLoggerFactory.Instance, (reason, message) =>
    {
        lock (_failures)
        {
            _failures.Add((reason, message));
        }
    });

    private MeshOptions Options(IdentityOptions identity) => new() { Service = new LocalServiceOptions { Name = "web" }, Identity = identity };

    [Fact]
    public async Task CaSource_IssuesSpiffeLeaf_RenewsAtTwoThirds()
    {
        _pki.Write("ca", _pki.Ca);
        var clock = new FakeTimeProvider(DateTimeOffset.UtcNow);
        await using var source = new CaCertificateSourceFactory().Create(Options(new IdentityOptions { Source = "ca", CaDir = _pki.Directory, LeafTtlHours = 3 }), Context(clock));

        var first = await source.LoadAsync(CancellationToken.None);
        Assert.Equal("spiffe://mesh.local/ns/default/svc/web", first.Id.Value);
        Assert.Equal(clock.GetUtcNow().AddHours(3).ToUnixTimeSeconds(), first.NotAfter.ToUnixTimeSeconds(), 1.0);
        Assert.Equal(_pki.Ca.Thumbprint, Assert.Single(first.TrustBundle).Thumbprint);
        Assert.False(Assert.Single(first.TrustBundle).HasPrivateKey);

        using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        var renewals = source.WatchAsync(stop.Token).GetAsyncEnumerator(stop.Token);
        var next = renewals.MoveNextAsync().AsTask();
        try
        {
            clock.Advance(TimeSpan.FromMinutes(119));
            Assert.False(next.IsCompleted);
            clock.Advance(TimeSpan.FromMinutes(2));
            Assert.True(await next.WaitAsync(stop.Token));
            Assert.NotEqual(first.SerialNumber, renewals.Current.SerialNumber);
            Assert.True(renewals.Current.NotAfter > first.NotAfter);
            Assert.Empty(_failures);
        }
        finally
        {
            await StopAsync(stop, next, renewals);
        }
    }

    [Fact]
    public async Task CaSource_CaGoneAtRenewal_ReportsAndRetries()
    {
        _pki.Write("ca", _pki.Ca);
        var clock = new FakeTimeProvider(DateTimeOffset.UtcNow);
        await using var source = new CaCertificateSourceFactory().Create(Options(new IdentityOptions { Source = "ca", CaDir = _pki.Directory, LeafTtlHours = 3 }), Context(clock));
        await source.LoadAsync(CancellationToken.None);
        File.Move(Path.Combine(_pki.Directory, "ca.key"), Path.Combine(_pki.Directory, "ca.key.moved"));

        using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        var renewals = source.WatchAsync(stop.Token).GetAsyncEnumerator(stop.Token);
        var next = renewals.MoveNextAsync().AsTask();
        try
        {
            clock.Advance(TimeSpan.FromMinutes(121));
            await WaitUntilAsync(() => _failures.Count > 0, stop.Token);
            Assert.Equal("renewal-failed", Assert.Single(_failures).Reason);
            Assert.False(next.IsCompleted);

            File.Move(Path.Combine(_pki.Directory, "ca.key.moved"), Path.Combine(_pki.Directory, "ca.key"));
            // The retry is a minute later.
            clock.Advance(TimeSpan.FromMinutes(1));
            Assert.True(await next.WaitAsync(stop.Token));
        }
        finally
        {
            await StopAsync(stop, next, renewals);
        }
    }

    // A pending MoveNextAsync must end before the enumerator can be disposed.
    private static async Task StopAsync(CancellationTokenSource stop, Task<bool> pending, IAsyncEnumerator<IdentitySnapshot> enumerator)
    {
        await stop.CancelAsync();
        try
        {
            await pending;
        }
        catch (OperationCanceledException)
        {
        }

        await enumerator.DisposeAsync();
    }

    [Fact]
    public async Task CaSource_TrustDomainOfAnotherCa_FailsWithPath()
    {
        _pki.Write("ca", _pki.Ca);
        await using var source = new CaCertificateSourceFactory().Create(Options(new IdentityOptions { Source = "ca", CaDir = _pki.Directory, TrustDomain = "elsewhere" }), Context(TimeProvider.System));

        var error = await Assert.ThrowsAsync<CertificateSourceException>(() => source.LoadAsync(CancellationToken.None));
        Assert.Equal("identity.trustDomain", error.Path);
    }

    [Fact]
    public async Task FilesSource_HalfRotatedPairSkipped_WholePairLoaded()
    {
        var leaf = _pki.Leaf("spiffe://mesh.local/ns/default/svc/web");
        var (certificate, key) = _pki.Write("leaf", leaf);
        var bundle = _pki.WriteBundle("bundle", _pki.Ca);
        await using var source = new FileCertificateSourceFactory().Create(
            Options(new IdentityOptions { Source = "files", CertificateFile = certificate, KeyFile = key, TrustBundleFile = bundle }),
            Context(TimeProvider.System));
        var first = await source.LoadAsync(CancellationToken.None);
        Assert.Equal("files", first.Source);
        using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        var changes = source.WatchAsync(stop.Token).GetAsyncEnumerator(stop.Token);
        var next = _pki.Leaf("spiffe://mesh.local/ns/default/svc/web");
        File.WriteAllText(certificate, next.ExportCertificatePem());
        var moved = changes.MoveNextAsync().AsTask();
        try
        {
            await WaitUntilAsync(() => _failures.Count > 0, stop.Token);
            Assert.Equal("reload-failed", _failures[0].Reason);
            Assert.Contains("identity.keyFile", _failures[0].Message, StringComparison.Ordinal);
            Assert.False(moved.IsCompleted);

            using (var nextKey = next.GetECDsaPrivateKey()!)
            {
                // Written whole (temp file, then rename): a poll must not see a half-written key, a third state this test is not about.
                File.WriteAllText(key + ".tmp", nextKey.ExportPkcs8PrivateKeyPem());
                File.Move(key + ".tmp", key, overwrite: true);
            }

            Assert.True(await moved.WaitAsync(stop.Token));
            Assert.Equal(next.SerialNumber, changes.Current.SerialNumber);
            Assert.Single(_failures);
        }
        finally
        {
            await StopAsync(stop, moved, changes);
        }
    }

    [Fact]
    public void Snapshot_LeafWithoutKeyOrSpiffeId_Refused()
    {
        var withKey = _pki.Leaf("spiffe://mesh.local/ns/default/svc/web");
        using var withoutKey = X509CertificateLoader.LoadCertificate(withKey.RawData);

        Assert.Throws<CertificateFileException>(() => new IdentitySnapshot("test", withoutKey, [], [_pki.Ca]));
        Assert.Throws<CertificateFileException>(() => new IdentitySnapshot("test", _pki.Leaf(null), [], [_pki.Ca]));
        Assert.Throws<CertificateFileException>(() => new IdentitySnapshot("test", withKey, [], []));
    }

    private async Task WaitUntilAsync(Func<bool> condition, CancellationToken cancellationToken)
    {
        while (true)
        {
            lock (_failures)
            {
                if (condition())
                {
                    return;
                }
            }

            await Task.Delay(10, cancellationToken);
        }
    }
}
