// TLS origination to a service's endpoints: mesh (mTLS to peer sidecars, server identity checked, HTTP/2 by ALPN) or plain TLS.
using System.Net;
using System.Net.Http;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Authentication;
using System.Security.Cryptography.X509Certificates;
using Mesh.Sidecar.Configuration;
using Mesh.Sidecar.Security.Certificates;
using Mesh.Sidecar.Security.Identity;
using Yarp.ReverseProxy.Forwarder;

namespace Mesh.Sidecar.Security.Tls;

/// <summary>An endpoint refused by the upstream TLS check; carries both identities for the 502 body.</summary>
public sealed class UpstreamTlsException(string service, string reason, string message, string? expected = null, string? presented = null, Exception? inner = null)
    : IOException(message, inner)
{
    /// <summary>The service being called.</summary>
    public string Service { get; } = service;

    /// <summary>One of <see cref="RefusalReasons"/>.</summary>
    public string Reason { get; } = reason;

    /// <summary>The SPIFFE ID the endpoint had to present (mesh mode).</summary>
    public string? Expected { get; } = expected;

    /// <summary>The SPIFFE ID it presented, when it had a valid one.</summary>
    public string? Presented { get; } = presented;

    /// <summary>The first <see cref="UpstreamTlsException"/> in <paramref name="exception"/>'s inner chain.</summary>
    public static UpstreamTlsException? Find(Exception? exception)
    {
        for (var current = exception; current is not null; current = current.InnerException)
        {
            if (current is UpstreamTlsException found)
            {
                return found;
            }
        }

        return null;
    }
}

/// <summary>
/// How one service is reached over TLS. HTTP goes through YARP with a <see cref="SocketsHttpHandler"/>
/// whose connect callback opens the TLS session here: the handler then speaks plain HTTP/1.1 or HTTP/2
/// over it. Doing the handshake here (rather than the handler's own https) lets each new connection
/// take the current leaf, send the configured server name, check the peer's SPIFFE ID, and fail with
/// an error that names both identities. L4 listeners use <see cref="ConnectAsync"/> directly.
/// </summary>
internal sealed partial class UpstreamTls : IDisposable
{
    private static readonly List<SslApplicationProtocol> Http2Only = [SslApplicationProtocol.Http2];
    private static readonly List<SslApplicationProtocol> Http11Only = [SslApplicationProtocol.Http11];

    private readonly IdentityManager _identity;
    private readonly SecurityMetrics _metrics;
    private readonly ILogger _logger;
    private readonly string? _serverName;
    private readonly X509Certificate2Collection? _roots;
    private readonly SslStreamCertificateContext? _clientCertificate;

    public UpstreamTls(string service, ServiceOptions options, string trustDomain, string ns, IdentityManager identity, SecurityMetrics metrics, ILogger logger)
    {
        Service = service;
        Mode = options.Tls.Mode;
        _identity = identity;
        _metrics = metrics;
        _logger = logger;
        var http2 = Mode == UpstreamTlsModes.Mesh || options.Protocol == UpstreamProtocols.Http2;
        if (Mode == UpstreamTlsModes.Mesh)
        {
            var expected = options.Tls.ServerIdentity ?? SpiffeId.ForService(trustDomain, ns, service);
            ExpectedId = SpiffeId.TryParse(expected, out var id, out var problem)
                ? id
                : throw new CertificateFileException($"serverIdentity '{expected}' is not a SPIFFE ID: {problem}");
        }
        else
        {
            _serverName = options.Tls.ServerName;
            _roots = options.Tls.CaFile is { Length: > 0 } caFile ? PemFiles.ReadCertificates(caFile) : null;
            if (options.Tls.CertificateFile is { Length: > 0 } certificateFile)
            {
                var (leaf, intermediates) = PemFiles.ReadLeaf(certificateFile, options.Tls.KeyFile ?? "");
                _clientCertificate = SslStreamCertificateContext.Create(leaf, intermediates, offline: true);
            }
        }

        ApplicationProtocols = http2 ? Http2Only : Http11Only;
        RequestConfig = http2
            // The handler sees a plain stream, so HTTP/2 is prior knowledge on top of the TLS session; ALPN already agreed on h2.
            ? new ForwarderRequestConfig { Version = HttpVersion.Version20, VersionPolicy = HttpVersionPolicy.RequestVersionExact, ActivityTimeout = TimeSpan.FromMilliseconds(options.RequestTimeoutMs) }
            : new ForwarderRequestConfig { Version = HttpVersion.Version11, VersionPolicy = HttpVersionPolicy.RequestVersionOrLower, ActivityTimeout = TimeSpan.FromMilliseconds(options.RequestTimeoutMs) };
        Invoker = new HttpMessageInvoker(new SocketsHttpHandler
        {
            UseProxy = false,
            AllowAutoRedirect = false,
            AutomaticDecompression = DecompressionMethods.None,
            UseCookies = false,
            ActivityHeadersPropagator = null,
            EnableMultipleHttp2Connections = true,
            ConnectTimeout = TimeSpan.FromMilliseconds(options.ConnectTimeoutMs),
            PooledConnectionIdleTimeout = TimeSpan.FromSeconds(60),
            ConnectCallback = ConnectCallbackAsync,
        });
    }

    public string Service { get; }

    /// <summary><c>mesh</c> or <c>tls</c>.</summary>
    public string Mode { get; }

    /// <summary>Mesh mode: the SPIFFE ID endpoints must present.</summary>
    public SpiffeId? ExpectedId { get; }

    /// <summary>What ALPN offers: h2 between sidecars and for HTTP/2 services, http/1.1 otherwise.</summary>
    public List<SslApplicationProtocol> ApplicationProtocols { get; }

    public HttpMessageInvoker Invoker { get; }

    public ForwarderRequestConfig RequestConfig { get; }

    /// <summary>
    /// Opens TLS over a connected socket (which the stream then owns) and checks the server.
    /// <paramref name="alpn"/> null offers no ALPN (opaque TCP). Throws <see cref="UpstreamTlsException"/> on refusal.
    /// </summary>
    public async ValueTask<SslStream> ConnectAsync(Socket socket, string host, List<SslApplicationProtocol>? alpn, CancellationToken cancellationToken)
    {
        var ssl = new SslStream(new NetworkStream(socket, ownsSocket: true), leaveInnerStreamOpen: false);
        var check = new CheckState();
        try
        {
            var options = TlsDefaults.Apply(new SslClientAuthenticationOptions
            {
                TargetHost = _serverName ?? host,
                ApplicationProtocols = alpn,
            });
            if (Mode == UpstreamTlsModes.Mesh)
            {
                var identity = _identity.Current ?? throw Refuse(RefusalReasons.NoIdentity, "this sidecar has no identity to present (identity.source)");
                check.Identity = identity;
                options.ClientCertificateContext = identity.CertificateContext;
                options.RemoteCertificateValidationCallback = (_, certificate, chain, _) => CheckMeshPeer(check, certificate, chain);
            }
            else
            {
                options.ClientCertificateContext = _clientCertificate;
                var name = _serverName ?? host;
                options.RemoteCertificateValidationCallback = (_, certificate, chain, errors) => CheckTlsServer(check, name, certificate, chain, errors);
            }

            try
            {
                await ssl.AuthenticateAsClientAsync(options, cancellationToken).ConfigureAwait(false);
            }
            catch (AuthenticationException ex)
            {
                throw check.Refusal ?? Refuse(RefusalReasons.HandshakeFailed, $"TLS handshake with {host} failed: {ex.Message}", inner: ex);
            }

            // HTTP/2 must be agreed; an HTTP/1.1 server that ignores ALPN still speaks HTTP/1.1.
            if (alpn is [var wanted, ..] && wanted == SslApplicationProtocol.Http2 && ssl.NegotiatedApplicationProtocol != wanted)
            {
                throw Refuse(RefusalReasons.NoHttp2, $"{host} did not agree to HTTP/2 by ALPN");
            }

            _metrics.UpstreamHandshake(Service, Mode);
            return ssl;
        }
        catch
        {
            await ssl.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    private async ValueTask<Stream> ConnectCallbackAsync(SocketsHttpConnectionContext context, CancellationToken cancellationToken)
    {
        var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        try
        {
            await socket.ConnectAsync(context.DnsEndPoint, cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            socket.Dispose();
            throw;
        }

        return await ConnectAsync(socket, context.DnsEndPoint.Host, ApplicationProtocols, cancellationToken).ConfigureAwait(false);
    }

    private bool CheckMeshPeer(CheckState state, X509Certificate? certificate, X509Chain? chain)
    {
        var identity = state.Identity!;
        var check = PeerValidator.Check(certificate, chain, identity.TrustBundle, identity.Id.TrustDomain, _identity.Time.GetUtcNow(), peerIsClient: false);
        if (!check.Accepted)
        {
            state.Refusal = Refuse(check.Reason!, $"the endpoint of service '{Service}' was refused: {check.Detail}", ExpectedId!.Value, check.Id?.Value);
            return false;
        }

        if (!check.Id!.Matches(ExpectedId!))
        {
            state.Refusal = Refuse(RefusalReasons.WrongIdentity, $"the endpoint of service '{Service}' presented {check.Id} but {ExpectedId} was expected", ExpectedId!.Value, check.Id.Value);
            return false;
        }

        return true;
    }

    private bool CheckTlsServer(CheckState state, string name, X509Certificate? certificate, X509Chain? chain, SslPolicyErrors errors)
    {
        if (certificate is null)
        {
            state.Refusal = Refuse(RefusalReasons.NoCertificate, $"the endpoint of service '{Service}' presented no certificate");
            return false;
        }

        var leaf = certificate as X509Certificate2 ?? X509CertificateLoader.LoadCertificate(certificate.GetRawCertData());
        bool trusted;
        if (_roots is null)
        {
            trusted = (errors & SslPolicyErrors.RemoteCertificateChainErrors) == 0;
        }
        else
        {
            using var custom = new X509Chain();
            custom.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
            custom.ChainPolicy.CustomTrustStore.AddRange(_roots);
            custom.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
            custom.ChainPolicy.DisableCertificateDownloads = true;
            custom.ChainPolicy.VerificationTime = _identity.Time.GetUtcNow().UtcDateTime;
            if (chain is not null)
            {
                custom.ChainPolicy.ExtraStore.AddRange(chain.ChainPolicy.ExtraStore);
            }

            trusted = custom.Build(leaf);
        }

        if (!trusted)
        {
            state.Refusal = Refuse(RefusalReasons.UnknownCa, $"the certificate '{leaf.Subject}' of service '{Service}' is not trusted ({(_roots is null ? "system store" : "tls.caFile")})");
            return false;
        }

        if (!leaf.MatchesHostname(name))
        {
            state.Refusal = Refuse(RefusalReasons.NameMismatch, $"the certificate '{leaf.Subject}' of service '{Service}' is not valid for '{name}'");
            return false;
        }

        return true;
    }

    private UpstreamTlsException Refuse(string reason, string message, string? expected = null, string? presented = null, Exception? inner = null)
    {
        _metrics.UpstreamRefused(Service, reason);
        Log.Refused(_logger, Service, reason, message);
        return new UpstreamTlsException(Service, reason, message, expected ?? ExpectedId?.Value, presented, inner);
    }

    public void Dispose() => Invoker.Dispose();

    private sealed class CheckState
    {
        public IdentitySnapshot? Identity { get; set; }

        public UpstreamTlsException? Refusal { get; set; }
    }

    private static partial class Log
    {
        [LoggerMessage(6101, LogLevel.Warning, "Upstream TLS to service {Service} refused ({Reason}): {Message}")]
        public static partial void Refused(ILogger logger, string service, string reason, string message);
    }
}
