// The resilience and traffic-policy instruments, on the sidecar's one meter.
using System.Diagnostics.Metrics;
using Mesh.Sidecar.Metrics;

namespace Mesh.Sidecar.Resilience;

/// <summary>
/// Retries, budget, breakers, ejections, health checks, rate limits, splits, mirrors, faults and
/// timeouts. The meter is <see cref="MeshMetrics"/>'s, so the Prometheus exporter renders these too.
/// </summary>
internal sealed class ResilienceMetrics
{
    private readonly Counter<long> _retries;
    private readonly Counter<long> _budgetExhausted;
    private readonly Counter<long> _breakerTransitions;
    private readonly Counter<long> _overflows;
    private readonly Counter<long> _ejections;
    private readonly Counter<long> _healthChecks;
    private readonly Counter<long> _healthTransitions;
    private readonly Counter<long> _rateLimited;
    private readonly Counter<long> _splits;
    private readonly Counter<long> _mirrored;
    private readonly Counter<long> _faults;
    private readonly Counter<long> _timeouts;

    public ResilienceMetrics(MeshMetrics metrics)
    {
        var meter = metrics.Meter;
        _retries = meter.CreateCounter<long>("mesh.retries", "{retry}", "Retries by service and reason (connect-failure, reset, per-try-timeout, a status, grpc-NAME).");
        _budgetExhausted = meter.CreateCounter<long>("mesh.retry.budget.exhausted", "{retry}", "Retries not made because the service's retry budget was spent.");
        _breakerTransitions = meter.CreateCounter<long>("mesh.circuit.breaker.transitions", "{transition}", "Endpoint breaker state changes by service, endpoint and state (open, half-open, closed).");
        _overflows = meter.CreateCounter<long>("mesh.circuit.breaker.rejections", "{request}", "Requests answered 503 by a limit, by service and limit (max-concurrent-requests, max-pending-requests, breaker-open).");
        _ejections = meter.CreateCounter<long>("mesh.outlier.ejections", "{ejection}", "Endpoints ejected by outlier detection, by service, endpoint and action (ejected, readmitted, skipped-max-percent).");
        _healthChecks = meter.CreateCounter<long>("mesh.health.checks", "{check}", "Active health checks by service, endpoint and result (passed, failed).");
        _healthTransitions = meter.CreateCounter<long>("mesh.health.transitions", "{transition}", "Endpoints marked down or up by health checks, by service, endpoint and state (unhealthy, healthy).");
        _rateLimited = meter.CreateCounter<long>("mesh.rate.limited", "{request}", "Requests answered 429 by a route's rate limit.");
        _splits = meter.CreateCounter<long>("mesh.split.requests", "{request}", "Requests sent by a traffic split, by route, service and subset.");
        _mirrored = meter.CreateCounter<long>("mesh.mirror.requests", "{request}", "Mirrored copies by route, shadow service and result (answered, failed, dropped, body-too-large).");
        _faults = meter.CreateCounter<long>("mesh.faults.injected", "{request}", "Injected faults by route and kind (delay, abort).");
        _timeouts = meter.CreateCounter<long>("mesh.route.timeouts", "{request}", "Requests cut by their route's timeoutMs or a shorter grpc-timeout, by route.");
    }

    public void Retry(string service, string reason) => _retries.Add(1, Tag("service", service), Tag("reason", reason));

    public void BudgetExhausted(string service) => _budgetExhausted.Add(1, Tag("service", service));

    public void BreakerTransition(string service, string endpoint, string state) =>
        _breakerTransitions.Add(1, Tag("service", service), Tag("endpoint", endpoint), Tag("state", state));

    public void Overflow(string service, string limit) => _overflows.Add(1, Tag("service", service), Tag("limit", limit));

    public void Ejection(string service, string endpoint, string action) => _ejections.Add(1, Tag("service", service), Tag("endpoint", endpoint), Tag("action", action));

    public void HealthCheck(string service, string endpoint, bool passed) =>
        _healthChecks.Add(1, Tag("service", service), Tag("endpoint", endpoint), Tag("result", passed ? "passed" : "failed"));

    public void HealthTransition(string service, string endpoint, bool healthy) =>
        _healthTransitions.Add(1, Tag("service", service), Tag("endpoint", endpoint), Tag("state", healthy ? "healthy" : "unhealthy"));

    public void RateLimited(string route) => _rateLimited.Add(1, Tag("route", route));

    public void Split(string route, string service, string subset) => _splits.Add(1, Tag("route", route), Tag("service", service), Tag("subset", subset));

    public void Mirrored(string route, string service, string result) => _mirrored.Add(1, Tag("route", route), Tag("service", service), Tag("result", result));

    public void Fault(string route, string kind) => _faults.Add(1, Tag("route", route), Tag("kind", kind));

    public void Timeout(string route) => _timeouts.Add(1, Tag("route", route));

    private static KeyValuePair<string, object?> Tag(string name, string value) => new(name, value);
}
