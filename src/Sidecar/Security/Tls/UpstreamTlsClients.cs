// Hands out one UpstreamTls per service TLS setting, kept across reloads so HTTP/2 connections to peers stay pooled.
using Mesh.Sidecar.Configuration;
using Mesh.Sidecar.Security.Certificates;
using Mesh.Sidecar.Security.Identity;

namespace Mesh.Sidecar.Security.Tls;

/// <summary>
/// The TLS clients of services in <c>mesh</c> or <c>tls</c> mode. Files are read when a config is
/// prepared (so a bad file rejects the config with its path); translation then only looks them up.
/// Clients are never disposed before shutdown: requests of an older snapshot may still use them.
/// </summary>
internal sealed class UpstreamTlsClients(IdentityManager identity, SecurityMetrics metrics, ILoggerFactory loggerFactory) : IDisposable
{
    private readonly Dictionary<Key, UpstreamTls> _clients = [];
    private readonly Lock _lock = new();
    private readonly ILogger _logger = loggerFactory.CreateLogger<UpstreamTls>();

    /// <summary>Creates the clients <paramref name="options"/> needs; returns the problems, each with its JSON path.</summary>
    public IReadOnlyList<ConfigError> Prepare(MeshOptions options)
    {
        var errors = new List<ConfigError>();
        foreach (var (name, service) in options.Services)
        {
            if (service.Tls.Mode == UpstreamTlsModes.Off)
            {
                continue;
            }

            try
            {
                Get(name, service, options);
            }
            catch (CertificateFileException ex)
            {
                errors.Add(new ConfigError(PathOf($"services.{name}.tls", service, ex), ex.Message));
            }
        }

        if (options.Service.Tls.Mode == UpstreamTlsModes.Tls && options.Service.Port > 0)
        {
            var local = LocalApp(options);
            try
            {
                Get(LocalName(options), local, options);
            }
            catch (CertificateFileException ex)
            {
                errors.Add(new ConfigError(PathOf("service.tls", local, ex), ex.Message));
            }
        }

        return errors;
    }

    /// <summary>The client of a service, or null in <c>off</c> mode.</summary>
    public UpstreamTls? For(string name, ServiceOptions service, MeshOptions options)
    {
        if (service.Tls.Mode == UpstreamTlsModes.Off)
        {
            return null;
        }

        // Prepare loaded it; a file that broke since then would fail here, and then no TLS session opens.
        return Get(name, service, options);
    }

    private UpstreamTls Get(string name, ServiceOptions service, MeshOptions options)
    {
        var key = new Key(name, service.Tls, service.Protocol, service.ConnectTimeoutMs, service.RequestTimeoutMs, options.Identity.TrustDomain, options.Identity.Namespace);
        lock (_lock)
        {
            if (!_clients.TryGetValue(key, out var client))
            {
                client = new UpstreamTls(name, service, options.Identity.TrustDomain, options.Identity.Namespace, identity, metrics, _logger);
                _clients[key] = client;
            }

            return client;
        }
    }

    /// <summary>The local app as a service: its protocol and <c>service.tls</c>.</summary>
    public static ServiceOptions LocalApp(MeshOptions options) => new() { Protocol = options.Service.Protocol, Tls = options.Service.Tls };

    /// <summary>The TLS client of the local app (inbound listeners deliver to it), or null when it is plaintext.</summary>
    public UpstreamTls? ForLocalApp(MeshOptions options, ServiceOptions local) => For(LocalName(options), local, options);

    // The key of the local app's client; a service cannot be named so (':' is refused in names).
    private static string LocalName(MeshOptions options) => "inbound:" + options.Service.Name;

    private static string PathOf(string at, ServiceOptions service, CertificateFileException ex)
    {
        var tls = service.Tls;
        return ex.File is null ? at + ".serverIdentity"
            : ex.File == tls.CaFile ? at + ".caFile"
            : ex.File == tls.KeyFile ? at + ".keyFile"
            : at + ".certificateFile";
    }

    public void Dispose()
    {
        lock (_lock)
        {
            foreach (var client in _clients.Values)
            {
                client.Dispose();
            }

            _clients.Clear();
        }
    }

    private sealed record Key(string Service, UpstreamTlsOptions Tls, string Protocol, int ConnectTimeoutMs, int RequestTimeoutMs, string TrustDomain, string Namespace);
}
