// The mTLS, identity and authorization instruments, on the sidecar's one meter.
using System.Diagnostics.Metrics;
using Mesh.Sidecar.Metrics;

namespace Mesh.Sidecar.Security;

/// <summary>
/// Security metrics. The meter factory returns the same <c>Mesh.Sidecar</c> meter that
/// <see cref="MeshMetrics"/> uses, so the Prometheus exporter renders these with the rest.
/// </summary>
internal sealed class SecurityMetrics
{
    private readonly Counter<long> _refusals;
    private readonly Counter<long> _handshakes;
    private readonly Counter<long> _upstreamHandshakes;
    private readonly Counter<long> _upstreamRefusals;
    private readonly Counter<long> _decisions;
    private readonly Counter<long> _rotations;
    private readonly Counter<long> _failures;

    public SecurityMetrics(MeshMetrics metrics)
    {
        var meter = metrics.Meter;
        _refusals = meter.CreateCounter<long>("mesh.tls.refusals", "{connection}", "Inbound connections refused by TLS or identity checks, by listener and reason.");
        _handshakes = meter.CreateCounter<long>("mesh.tls.handshakes", "{connection}", "Inbound TLS handshakes completed, by listener and mode (mtls, edge).");
        _upstreamHandshakes = meter.CreateCounter<long>("mesh.tls.upstream.handshakes", "{connection}", "TLS connections opened to endpoints, by service and mode (mesh, tls).");
        _upstreamRefusals = meter.CreateCounter<long>("mesh.tls.upstream.refusals", "{connection}", "Endpoints refused by the upstream TLS check, by service and reason.");
        _decisions = meter.CreateCounter<long>("mesh.authz.decisions", "{decision}", "Authorization decisions by listener, rule (or default) and action.");
        _rotations = meter.CreateCounter<long>("mesh.identity.rotations", "{rotation}", "Identities or certificates swapped in, by source (ca, files, consul, edge).");
        _failures = meter.CreateCounter<long>("mesh.identity.failures", "{failure}", "Identity or certificate refreshes that failed (the last good one stays), by source and reason.");
    }

    public void Refused(string listener, string reason) =>
        _refusals.Add(1, new KeyValuePair<string, object?>("listener", listener), new KeyValuePair<string, object?>("reason", reason));

    public void Handshake(string listener, string mode) =>
        _handshakes.Add(1, new KeyValuePair<string, object?>("listener", listener), new KeyValuePair<string, object?>("mode", mode));

    public void UpstreamHandshake(string service, string mode) =>
        _upstreamHandshakes.Add(1, new KeyValuePair<string, object?>("service", service), new KeyValuePair<string, object?>("mode", mode));

    public void UpstreamRefused(string service, string reason) =>
        _upstreamRefusals.Add(1, new KeyValuePair<string, object?>("service", service), new KeyValuePair<string, object?>("reason", reason));

    public void Decision(string listener, string rule, bool allowed) =>
        _decisions.Add(1, new KeyValuePair<string, object?>("listener", listener), new KeyValuePair<string, object?>("rule", rule), new KeyValuePair<string, object?>("action", allowed ? "allow" : "deny"));

    public void Rotated(string source) => _rotations.Add(1, new KeyValuePair<string, object?>("source", source));

    public void RefreshFailed(string source, string reason) =>
        _failures.Add(1, new KeyValuePair<string, object?>("source", source), new KeyValuePair<string, object?>("reason", reason));
}
