// Endpoint state the resilience policies share between L7 and L4: health-check result, outlier ejection and breaker.
using Mesh.Sidecar.Resilience;

namespace Mesh.Sidecar.Endpoints;

/// <summary>
/// Why an endpoint is out of rotation. The flags live on the endpoint, which outlives snapshots, so an
/// ejection or a failing check survives a reload or a discovery update. Any change tells the service's
/// current <see cref="Cluster"/>, which rebuilds its balancer over the endpoints still available.
/// </summary>
internal sealed partial class EndpointState
{
    private const int FailingCheck = 1;
    private const int Ejected = 2;
    private const int BreakerOpen = 4;

    private int _out;
    private Cluster? _owner;
    private long _ejectedUntilUnixMs;
    private EndpointBreaker? _breaker;

    /// <summary>True while nothing takes the endpoint out of rotation.</summary>
    public bool IsAvailable => Volatile.Read(ref _out) == 0;

    /// <summary>Health as the data path sees it: <c>healthy</c>, <c>ejected</c>, <c>breaker-open</c> or <c>unhealthy</c> (failing its health check).</summary>
    public string Health
    {
        get
        {
            var flags = Volatile.Read(ref _out);
            return (flags & Ejected) != 0 ? "ejected"
                : (flags & BreakerOpen) != 0 ? "breaker-open"
                : (flags & FailingCheck) != 0 ? "unhealthy"
                : "healthy";
        }
    }

    /// <summary>When an ejected endpoint comes back; null when it is not ejected.</summary>
    public DateTimeOffset? EjectedUntil => (Volatile.Read(ref _out) & Ejected) != 0 ? DateTimeOffset.FromUnixTimeMilliseconds(Interlocked.Read(ref _ejectedUntilUnixMs)) : null;

    /// <summary>The endpoint's failure-ratio breaker (services with <c>circuitBreaker</c>), reused across snapshots while its settings hold.</summary>
    internal EndpointBreaker? Breaker => Volatile.Read(ref _breaker);

    /// <summary>Consecutive-failure and ejection bookkeeping of outlier detection; guarded by its own lock.</summary>
    internal OutlierState Outlier { get; } = new();

    /// <summary>Health-check bookkeeping; written by one check round at a time.</summary>
    internal HealthCheckState Check { get; } = new();

    /// <summary>Makes <paramref name="cluster"/> the one told about availability changes (the newest snapshot's).</summary>
    internal void AdoptOwner(Cluster cluster) => Volatile.Write(ref _owner, cluster);

    /// <summary>Installs <paramref name="made"/> unless another request replaced <paramref name="expected"/> first; returns the breaker in place.</summary>
    internal EndpointBreaker InstallBreaker(EndpointBreaker? expected, EndpointBreaker made)
    {
        var found = Interlocked.CompareExchange(ref _breaker, made, expected);
        return ReferenceEquals(found, expected) ? made : found!;
    }

    internal void SetFailingCheck(bool failing) => Set(FailingCheck, failing);

    internal void SetEjected(DateTimeOffset? until)
    {
        if (until is { } time)
        {
            Interlocked.Exchange(ref _ejectedUntilUnixMs, time.ToUnixTimeMilliseconds());
        }

        Set(Ejected, until is not null);
    }

    internal void SetBreakerOpen(bool open) => Set(BreakerOpen, open);

    internal bool IsEjected => (Volatile.Read(ref _out) & Ejected) != 0;

    private void Set(int flag, bool on)
    {
        while (true)
        {
            var current = Volatile.Read(ref _out);
            var next = on ? current | flag : current & ~flag;
            if (next == current)
            {
                return;
            }

            if (Interlocked.CompareExchange(ref _out, next, current) == current)
            {
                break;
            }
        }

        Volatile.Read(ref _owner)?.RefreshAvailability();
    }
}
