// Applies the security parts of a config all-or-nothing: identity, edge certificates, upstream TLS clients, authorization.
using Mesh.Sidecar.Configuration;
using Mesh.Sidecar.Security.Authorization;
using Mesh.Sidecar.Security.Certificates;
using Mesh.Sidecar.Security.Identity;
using Mesh.Sidecar.Security.Tls;

namespace Mesh.Sidecar.Security;

/// <summary>What a listener does with TLS, compiled from its config.</summary>
internal sealed class ListenerSecurity(string mtls, EdgeCertificates? edge)
{
    /// <summary><c>off</c>, <c>strict</c> or <c>permissive</c>.</summary>
    public string Mtls { get; } = mtls;

    /// <summary>Edge certificates (an http listener for ordinary TLS clients), or null.</summary>
    public EdgeCertificates? Edge { get; } = edge;

    public bool TerminatesMtls => Mtls != MtlsModes.Off;
}

/// <summary>The security state of one applied config; replaced whole on reload.</summary>
internal sealed class SecurityState(IReadOnlyDictionary<string, ListenerSecurity> listeners, AuthorizationPolicy? policy)
{
    public static SecurityState Empty { get; } = new(new Dictionary<string, ListenerSecurity>(StringComparer.Ordinal), null);

    /// <summary>Listeners that take TLS (mTLS or edge), by name.</summary>
    public IReadOnlyDictionary<string, ListenerSecurity> Listeners { get; } = listeners;

    /// <summary>The authorization policy, or null when there is nothing to decide.</summary>
    public AuthorizationPolicy? Policy { get; } = policy;

    public ListenerSecurity? Listener(string name) => Listeners.TryGetValue(name, out var listener) ? listener : null;
}

/// <summary>A loaded but not yet applied security config.</summary>
internal sealed class SecurityPlan(SecurityState? state, IdentityPlan identity, Dictionary<(string, string), WatchedCertificate> certificates, IReadOnlyList<ConfigError> errors)
{
    public SecurityState? State { get; } = state;

    public IdentityPlan Identity { get; } = identity;

    public Dictionary<(string, string), WatchedCertificate> Certificates { get; } = certificates;

    public IReadOnlyList<ConfigError> Errors { get; } = errors;
}

/// <summary>
/// Prepares each config's security state (loading every file it names, so any problem rejects the
/// config with its JSON path and the last good one keeps serving) and commits it together with the
/// listeners. It also polls edge certificate files and swaps a changed pair in for new handshakes.
/// </summary>
internal sealed partial class SecurityRuntime : IAsyncDisposable
{
    /// <summary>How often edge certificate files are compared with what was loaded.</summary>
    public static readonly TimeSpan PollInterval = TimeSpan.FromMilliseconds(250);

    private readonly IdentityManager _identity;
    private readonly UpstreamTlsClients _upstream;
    private readonly SecurityMetrics _metrics;
    private readonly ILogger<SecurityRuntime> _logger;
    private readonly CancellationTokenSource _stopping = new();
    private readonly Task _poll;
    private SecurityState _current = SecurityState.Empty;
    private Dictionary<(string, string), WatchedCertificate> _certificates = [];
    private int _disposed;

    public SecurityRuntime(IdentityManager identity, UpstreamTlsClients upstream, SecurityMetrics metrics, ILogger<SecurityRuntime> logger)
    {
        _identity = identity;
        _upstream = upstream;
        _metrics = metrics;
        _logger = logger;
        _poll = PollAsync(_stopping.Token);
    }

    /// <summary>The applied state; one volatile read per connection or request.</summary>
    public SecurityState Current => Volatile.Read(ref _current);

    public IdentityManager Identity => _identity;

    public async Task<SecurityPlan> PrepareAsync(MeshOptions options, CancellationToken cancellationToken)
    {
        var errors = new List<ConfigError>();
        var identity = await _identity.PrepareAsync(options, cancellationToken).ConfigureAwait(false);
        errors.AddRange(identity.Errors);

        var now = _identity.Time.GetUtcNow();
        var certificates = new Dictionary<(string, string), WatchedCertificate>();
        var listeners = new Dictionary<string, ListenerSecurity>(StringComparer.Ordinal);
        for (var i = 0; i < options.Listeners.Count; i++)
        {
            var listener = options.Listeners[i];
            EdgeCertificates? edge = null;
            var edgeCertificates = listener.Tls.Certificates;
            if (edgeCertificates.Count > 0)
            {
                var loaded = new List<(ServerCertificateOptions, WatchedCertificate)>();
                for (var j = 0; j < edgeCertificates.Count; j++)
                {
                    var certificate = edgeCertificates[j];
                    var key = (certificate.CertificateFile, certificate.KeyFile);
                    try
                    {
                        if (!certificates.TryGetValue(key, out var watched) && !_certificates.TryGetValue(key, out watched))
                        {
                            watched = WatchedCertificate.Load(certificate.CertificateFile, certificate.KeyFile, now);
                        }

                        certificates[key] = watched;
                        loaded.Add((certificate, watched));
                    }
                    catch (CertificateFileException ex)
                    {
                        var field = ex.File == certificate.KeyFile ? "keyFile" : "certificateFile";
                        errors.Add(new ConfigError($"listeners[{i}].tls.certificates[{j}].{field}", ex.Message));
                    }
                }

                if (loaded.Count == edgeCertificates.Count)
                {
                    edge = new EdgeCertificates(loaded);
                }
            }

            if (edge is not null || listener.Mtls != MtlsModes.Off)
            {
                listeners[listener.Name] = new ListenerSecurity(listener.Mtls, edge);
            }
        }

        errors.AddRange(_upstream.Prepare(options));
        if (errors.Count > 0)
        {
            await _identity.AbandonAsync(identity).ConfigureAwait(false);
            return new SecurityPlan(null, identity, certificates, errors);
        }

        return new SecurityPlan(new SecurityState(listeners, AuthorizationPolicy.Compile(options.Authorization)), identity, certificates, []);
    }

    /// <summary>Applies a plan that had no errors.</summary>
    public void Commit(SecurityPlan plan)
    {
        _identity.Commit(plan.Identity);
        Volatile.Write(ref _certificates, plan.Certificates);
        Volatile.Write(ref _current, plan.State!);
    }

    /// <summary>Drops a plan whose config was not applied (a listener failed to bind).</summary>
    public ValueTask AbandonAsync(SecurityPlan plan) => _identity.AbandonAsync(plan.Identity);

    // Real time, not the sidecar's clock: file polling goes on when tests drive a fake clock.
    private async Task PollAsync(CancellationToken cancellationToken)
    {
        using var timer = new PeriodicTimer(PollInterval);
        try
        {
            while (await timer.WaitForNextTickAsync(cancellationToken).ConfigureAwait(false))
            {
                foreach (var certificate in Volatile.Read(ref _certificates).Values)
                {
                    try
                    {
                        if (certificate.Refresh(_identity.Time.GetUtcNow()))
                        {
                            _metrics.Rotated("edge");
                            Log.EdgeReloaded(_logger, certificate.CertificateFile);
                        }
                    }
                    catch (CertificateFileException ex)
                    {
                        _metrics.RefreshFailed("edge", "reload-failed");
                        Log.EdgeReloadFailed(_logger, certificate.CertificateFile, ex.Message);
                    }
                }
            }
        }
        catch (OperationCanceledException)
        {
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        await _stopping.CancelAsync().ConfigureAwait(false);
        await _poll.ConfigureAwait(false);
        await _identity.DisposeAsync().ConfigureAwait(false);
        _stopping.Dispose();
    }

    private static partial class Log
    {
        [LoggerMessage(6201, LogLevel.Information, "Edge certificate '{File}' reloaded")]
        public static partial void EdgeReloaded(ILogger logger, string file);

        [LoggerMessage(6202, LogLevel.Warning, "Edge certificate '{File}' changed but cannot be used, keeping the previous one: {Message}")]
        public static partial void EdgeReloadFailed(ILogger logger, string file, string message);
    }
}
