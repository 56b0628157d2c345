// The clock of the resilience policies, so tests can drive ejections, breakers, checks and timeouts on a fake one.
namespace Mesh.Sidecar.Resilience;

/// <summary>
/// Wraps the <see cref="TimeProvider"/> that timeouts, backoff, breakers, ejections, health-check
/// intervals and rate-limit refills run on. A test registers one with a fake clock; Kestrel keeps real time.
/// </summary>
internal sealed class ResilienceClock(TimeProvider time)
{
    public TimeProvider Time { get; } = time;

    /// <summary>Milliseconds on this clock's monotonic timestamp.</summary>
    public long NowMs => (long)Time.GetElapsedTime(0).TotalMilliseconds;
}
