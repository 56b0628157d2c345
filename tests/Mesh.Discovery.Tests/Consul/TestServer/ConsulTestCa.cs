// The test agent's Connect CA: an EC P-256 root per generation, SPIFFE leaf certificates, intentions.
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace Mesh.Tests.Consul;

/// <summary>One CA root with its key.</summary>
public sealed record TestCaRoot(string Id, string Name, ulong Serial, X509Certificate2 Certificate, string Pem, ulong CreateIndex, string SigningKeyId);

/// <summary>A leaf issued to a service.</summary>
public sealed record TestLeaf(string Service, string Serial, string CertPem, string KeyPem, string Uri, DateTimeOffset ValidAfter, DateTimeOffset ValidBefore, ulong Index);

/// <summary>An intention: may <see cref="Source"/> connect to <see cref="Destination"/> (either may be <c>*</c>).</summary>
public sealed record TestIntention(string Source, string Destination, bool Allow);

/// <summary>
/// Issues Connect certificates the way Consul's built-in CA does: a self-signed EC root whose URI
/// SAN is the trust domain, and leaves for <c>spiffe://&lt;trust domain&gt;/ns/default/dc/&lt;dc&gt;/svc/&lt;service&gt;</c>.
/// Rotation adds a new active root and keeps the old one trusted; leaves are reissued.
/// </summary>
public sealed class ConsulTestCa
{
    private readonly Lock _lock = new();
    private readonly List<TestCaRoot> _roots = [];
    private readonly Dictionary<string, TestLeaf> _leaves = new(StringComparer.Ordinal);
    private readonly List<TestIntention> _intentions = [];
    private readonly string _datacenter;
    private ECDsa _activeKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
    private TaskCompletionSource _changed = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private ulong _index = 1;
    private ulong _generation;

    public ConsulTestCa(string datacenter)
    {
        _datacenter = datacenter;
        TrustDomain = Guid.NewGuid().ToString() + ".consul";
        Rotate();
    }

    /// <summary>The SPIFFE trust domain, <c>&lt;uuid&gt;.consul</c>.</summary>
    public string TrustDomain { get; }

    /// <summary>How long a leaf is valid.</summary>
    public TimeSpan LeafLifetime { get; set; } = TimeSpan.FromHours(72);

    /// <summary>What <c>authorize</c> answers when no intention matches (Consul's ACL default policy).</summary>
    public bool DefaultAllow { get; set; } = true;

    public ulong Index
    {
        get
        {
            lock (_lock)
            {
                return _index;
            }
        }
    }

    public Task Changed
    {
        get
        {
            lock (_lock)
            {
                return _changed.Task;
            }
        }
    }

    public IReadOnlyList<TestCaRoot> Roots
    {
        get
        {
            lock (_lock)
            {
                return [.. _roots];
            }
        }
    }

    public TestCaRoot ActiveRoot
    {
        get
        {
            lock (_lock)
            {
                return _roots[^1];
            }
        }
    }

    /// <summary>How many leaves were issued (a rotation or expiry issues new ones).</summary>
    public int LeavesIssued { get; private set; }

    public string SpiffeId(string service) => $"spiffe://{TrustDomain}/ns/default/dc/{_datacenter}/svc/{service}";

    /// <summary>A new active root; the old ones stay trusted; every leaf is reissued on its next read.</summary>
    public void Rotate()
    {
        lock (_lock)
        {
            _generation++;
            _activeKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
            var request = new CertificateRequest($"CN=Consul CA {_generation}", _activeKey, HashAlgorithmName.SHA256);
            request.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
            request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign | X509KeyUsageFlags.DigitalSignature, true));
            var san = new SubjectAlternativeNameBuilder();
            san.AddUri(new Uri($"spiffe://{TrustDomain}"));
            request.CertificateExtensions.Add(san.Build());
            var ski = new X509SubjectKeyIdentifierExtension(request.PublicKey, false);
            request.CertificateExtensions.Add(ski);
            var now = DateTimeOffset.UtcNow;
            var certificate = request.CreateSelfSigned(now.AddMinutes(-5), now.AddYears(10));
            var id = string.Join(':', certificate.GetCertHash(HashAlgorithmName.SHA1).Select(b => b.ToString("x2", System.Globalization.CultureInfo.InvariantCulture)));
            _index++;
            _roots.Add(new TestCaRoot(id, "Consul CA Root Cert", _generation, certificate, certificate.ExportCertificatePem() + "\n", _index, ski.SubjectKeyIdentifier ?? ""));
            _leaves.Clear();
            Pulse();
        }
    }

    /// <summary>The current leaf of <paramref name="service"/>, issued when missing or expired.</summary>
    public TestLeaf Leaf(string service)
    {
        lock (_lock)
        {
            if (_leaves.TryGetValue(service, out var leaf) && leaf.ValidBefore > DateTimeOffset.UtcNow)
            {
                return leaf;
            }

            leaf = Issue(service);
            _leaves[service] = leaf;
            return leaf;
        }
    }

    /// <summary>Forces a new leaf for <paramref name="service"/> (as the agent does before expiry).</summary>
    public void RenewLeaf(string service)
    {
        lock (_lock)
        {
            _leaves[service] = Issue(service);
            Pulse();
        }
    }

    public void AddIntention(string source, string destination, bool allow)
    {
        lock (_lock)
        {
            _intentions.RemoveAll(i => i.Source == source && i.Destination == destination);
            _intentions.Add(new TestIntention(source, destination, allow));
        }
    }

    public void ClearIntentions()
    {
        lock (_lock)
        {
            _intentions.Clear();
        }
    }

    /// <summary>
    /// Consul's authorize: the URI must be a service in this trust domain; then the most precise
    /// intention wins (exact over wildcard, destination before source); none falls back to the default.
    /// </summary>
    public (bool Authorized, string Reason) Authorize(string target, string clientUri)
    {
        var prefix = $"spiffe://{TrustDomain}/";
        if (!clientUri.StartsWith(prefix, StringComparison.OrdinalIgnoreCase))
        {
            return (false, "Client certificate URI is not in this trust domain");
        }

        var marker = clientUri.LastIndexOf("/svc/", StringComparison.Ordinal);
        if (marker < 0)
        {
            return (false, "Client certificate URI is not a service identity");
        }

        var source = clientUri[(marker + 5)..];
        lock (_lock)
        {
            var match = _intentions
                .Where(i => (i.Source == source || i.Source == "*") && (i.Destination == target || i.Destination == "*"))
                .OrderByDescending(i => (i.Destination == "*" ? 0 : 2) + (i.Source == "*" ? 0 : 1))
                .FirstOrDefault();
            if (match is null)
            {
                return (DefaultAllow, "Default behavior configured by ACLs");
            }

            return (match.Allow, $"Matched intention: {match.Source} => {match.Destination} ({(match.Allow ? "allow" : "deny")})");
        }
    }

    private TestLeaf Issue(string service)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest($"CN={service}", key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(false, false, 0, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.DigitalSignature | X509KeyUsageFlags.KeyEncipherment | X509KeyUsageFlags.KeyAgreement, true));
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid("1.3.6.1.5.5.7.3.2"), new Oid("1.3.6.1.5.5.7.3.1")], false));
        var san = new SubjectAlternativeNameBuilder();
        var uri = SpiffeId(service);
        san.AddUri(new Uri(uri));
        request.CertificateExtensions.Add(san.Build());
        var root = _roots[^1];
        var serial = RandomNumberGenerator.GetBytes(8);
        serial[0] &= 0x7f;
        var now = DateTimeOffset.UtcNow;
        var notAfter = now + LeafLifetime;
        var generator = X509SignatureGenerator.CreateForECDsa(_activeKey);
        using var certificate = request.Create(root.Certificate.SubjectName, generator, now.AddMinutes(-1), notAfter, serial);
        LeavesIssued++;
        _index++;
        return new TestLeaf(
            service,
            string.Join(':', serial.Select(b => b.ToString("x2", System.Globalization.CultureInfo.InvariantCulture))),
            certificate.ExportCertificatePem() + "\n",
            key.ExportECPrivateKeyPem() + "\n",
            uri,
            now.AddMinutes(-1),
            notAfter,
            _index);
    }

    private void Pulse()
    {
        _index++;
        Interlocked.Exchange(ref _changed, new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).TrySetResult();
    }
}
