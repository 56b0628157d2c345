// Registers the local service in Consul on start, keeps it registered (agent restarts, TTL), deregisters first on shutdown.
using System.Net;
using System.Text;
using System.Text.Json;
using Mesh.Discovery.Consul;
using Mesh.Sidecar.Cli;
using Mesh.Sidecar.Configuration;
using Mesh.Sidecar.Listeners;

namespace Mesh.Sidecar.Hosting;

/// <summary>
/// Keeps this sidecar's service registered in the local Consul agent while it runs: a stable ID
/// (the same across restarts), the first inbound listener's address and port, tags, metadata, and
/// an <c>http</c> check on <c>/ready</c> or a <c>ttl</c> check the sidecar passes while <c>/ready</c>
/// says yes. It notices an agent that forgot the registration (restart) and registers again within
/// <see cref="ResyncInterval"/> plus backoff. On shutdown it deregisters first, then waits the grace
/// period so peers stop sending before the drain.
/// </summary>
internal sealed partial class ConsulRegistration(ListenerManager listeners, ILogger<ConsulRegistration> logger) : IAsyncDisposable
{
    private readonly Lock _lock = new();
    private readonly CancellationTokenSource _stop = new();
    private readonly HttpClient _probe = new(new SocketsHttpHandler { UseProxy = false, PooledConnectionLifetime = TimeSpan.FromMinutes(1) });
    private TaskCompletionSource _wake = NewSignal();
    private Desired? _desired;
    private Registered? _registered;
    private Registered? _attempted;
    private Task? _loop;
    private bool _stopped;

    /// <summary>How often an http-checked registration is confirmed with the agent.</summary>
    public static TimeSpan ResyncInterval { get; } = TimeSpan.FromSeconds(5);

    /// <summary>The ID the agent holds now; null when not registered.</summary>
    public string? RegisteredId => Volatile.Read(ref _registered)?.Id;

    /// <summary>Takes the applied config: what to register, through which client (null: nothing).</summary>
    public void Update(MeshOptions options, ConsulClient? client)
    {
        var desired = client is not null && options.Consul is { Register: true } consul ? Build(options, consul, client) : null;
        lock (_lock)
        {
            if (_stopped)
            {
                return;
            }

            _desired = desired;
            if (_loop is null && desired is not null)
            {
                _loop = Task.Run(() => RunAsync(_stop.Token));
            }

            Interlocked.Exchange(ref _wake, NewSignal()).TrySetResult();
        }
    }

    /// <summary>
    /// Graceful shutdown, step one: stop keeping the registration, deregister it, and wait the grace
    /// period so peers' blocking queries see it leave before the listeners drain.
    /// </summary>
    public async Task DeregisterAsync()
    {
        Task? loop;
        Desired? desired;
        lock (_lock)
        {
            if (_stopped)
            {
                return;
            }

            _stopped = true;
            loop = _loop;
            desired = _desired;
        }

        await _stop.CancelAsync().ConfigureAwait(false);
        if (loop is not null)
        {
            await loop.ConfigureAwait(false);
        }

        // Whatever was last sent to the agent goes, even a registration cut short by the stop.
        var last = Volatile.Read(ref _registered) ?? Volatile.Read(ref _attempted);
        if (last is null)
        {
            return;
        }

        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(5));
        try
        {
            await last.Client.DeregisterServiceAsync(last.Id, deadline.Token).ConfigureAwait(false);
            Log.Deregistered(logger, last.Id);
        }
        catch (Exception ex) when (ex is ConsulException or OperationCanceledException)
        {
            Log.DeregisterFailed(logger, last.Id, ex.Message);
        }

        Volatile.Write(ref _registered, null);
        if (desired is { Grace: var grace } && grace > TimeSpan.Zero)
        {
            Log.Grace(logger, grace.TotalMilliseconds);
            await Task.Delay(grace).ConfigureAwait(false);
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync().ConfigureAwait(false);
        if (_loop is { } loop)
        {
            await loop.ConfigureAwait(false);
        }

        _probe.Dispose();
    }

    private async Task RunAsync(CancellationToken cancellationToken)
    {
        var failures = 0;
        var lastResync = DateTimeOffset.MinValue;
        while (!cancellationToken.IsCancellationRequested)
        {
            var wake = Volatile.Read(ref _wake).Task;
            var desired = Volatile.Read(ref _desired);
            var delay = ResyncInterval;
            try
            {
                var registered = Volatile.Read(ref _registered);
                if (registered is not null && (desired is null || registered.Id != desired.Registration.Id || !ReferenceEquals(registered.Client, desired.Client)))
                {
                    // The ID or the agent changed: the old registration goes first.
                    await registered.Client.DeregisterServiceAsync(registered.Id, cancellationToken).ConfigureAwait(false);
                    Log.Deregistered(logger, registered.Id);
                    Volatile.Write(ref _registered, null);
                    registered = null;
                }

                if (desired is not null)
                {
                    if (registered is null || registered.Json != desired.Json)
                    {
                        await RegisterAsync(desired, registered is null ? "start" : "config change", cancellationToken).ConfigureAwait(false);
                        lastResync = DateTimeOffset.UtcNow;
                    }
                    else if (!desired.Ttl && DateTimeOffset.UtcNow - lastResync >= ResyncInterval)
                    {
                        lastResync = DateTimeOffset.UtcNow;
                        if (await desired.Client.GetAgentServiceAsync(desired.Registration.Id!, cancellationToken).ConfigureAwait(false) is null)
                        {
                            await RegisterAsync(desired, "the agent lost it", cancellationToken).ConfigureAwait(false);
                        }
                    }

                    if (desired.Ttl)
                    {
                        await ReportTtlAsync(desired, cancellationToken).ConfigureAwait(false);
                        delay = desired.TtlInterval;
                    }
                }

                if (failures > 0)
                {
                    Log.Recovered(logger);
                }

                failures = 0;
            }
            catch (ConsulException ex)
            {
                if (failures++ == 0)
                {
                    Log.Failed(logger, ex.Message);
                }

                // Jittered exponential backoff between rounds; the client retried each call already.
                delay = TimeSpan.FromMilliseconds(Math.Min(5000, 250 * Math.Pow(2, Math.Min(failures, 10))) * (0.5 + (Random.Shared.NextDouble() / 2)));
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                return;
            }

            try
            {
                await Task.WhenAny(wake, Task.Delay(delay, cancellationToken)).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }

    private async Task RegisterAsync(Desired desired, string why, CancellationToken cancellationToken)
    {
        var id = desired.Registration.Id!;
        Volatile.Write(ref _attempted, new Registered(desired.Client, id, desired.Json));
        Volatile.Write(ref _registered, null);
        await desired.Client.RegisterServiceAsync(desired.Registration, cancellationToken).ConfigureAwait(false);
        Volatile.Write(ref _registered, new Registered(desired.Client, id, desired.Json));
        Log.Registered(logger, id, desired.Registration.Name, desired.Registration.Address ?? "", desired.Registration.Port, why);
        if (desired.Ttl)
        {
            await ReportTtlAsync(desired, cancellationToken).ConfigureAwait(false);
        }
    }

    // The TTL check reports what /ready says (the sidecar is ready and the local app is up).
    private async Task ReportTtlAsync(Desired desired, CancellationToken cancellationToken)
    {
        var checkId = desired.Registration.Check!.CheckId!;
        var (ready, reason) = await ProbeReadyAsync(desired, cancellationToken).ConfigureAwait(false);
        try
        {
            if (ready)
            {
                await desired.Client.PassTtlAsync(checkId, "ready", cancellationToken).ConfigureAwait(false);
            }
            else
            {
                await desired.Client.FailTtlAsync(checkId, reason, cancellationToken).ConfigureAwait(false);
            }
        }
        catch (ConsulException ex) when (ex.StatusCode == HttpStatusCode.NotFound)
        {
            // The agent forgot the check (restart): register again at once.
            await RegisterAsync(desired, "the agent lost it", cancellationToken).ConfigureAwait(false);
        }
    }

    private async Task<(bool Ready, string Reason)> ProbeReadyAsync(Desired desired, CancellationToken cancellationToken)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(desired.ProbeTimeout);
        try
        {
            using var response = await _probe.GetAsync(desired.ReadyUri, timeout.Token).ConfigureAwait(false);
            var body = (await response.Content.ReadAsStringAsync(timeout.Token).ConfigureAwait(false)).Trim();
            return (response.IsSuccessStatusCode, body);
        }
        catch (Exception ex) when (ex is HttpRequestException or OperationCanceledException && !cancellationToken.IsCancellationRequested)
        {
            return (false, $"{desired.ReadyUri}: {ex.Message}");
        }
    }

    private Desired Build(MeshOptions options, ConsulOptions consul, ConsulClient client)
    {
        var inbound = options.Listeners.First(l => l.Direction == Directions.Inbound);
        var bound = listeners.BoundEndpoints[inbound.Name];
        var wildcard = bound.Address.Equals(IPAddress.Any) || bound.Address.Equals(IPAddress.IPv6Any);
        var address = consul.AdvertiseAddress.Length > 0 ? consul.AdvertiseAddress : wildcard ? "" : bound.Address.ToString();
        var id = consul.ServiceId.Length > 0 ? consul.ServiceId : StableId(options.Service.Name, address.Length > 0 ? address : Environment.MachineName, bound.Port);
        var admin = listeners.BoundEndpoints[ListenerManager.AdminKey];
        var adminHost = !(admin.Address.Equals(IPAddress.Any) || admin.Address.Equals(IPAddress.IPv6Any)) ? admin.Address.ToString()
            : consul.AdvertiseAddress.Length > 0 ? consul.AdvertiseAddress : "127.0.0.1";
        var ready = new Uri($"http://{(adminHost.Contains(':', StringComparison.Ordinal) ? $"[{adminHost}]" : adminHost)}:{admin.Port}/ready");
        var meta = new Dictionary<string, string>(consul.Meta, StringComparer.Ordinal)
        {
            ["mesh-protocol"] = inbound.Protocol,
            ["mesh-version"] = Program.Version,
        };
        var check = consul.Check;
        var ttl = check.Type == ConsulCheckTypes.Ttl;
        var reap = check.DeregisterCriticalAfterMs > 0 ? ConsulDuration.Format(TimeSpan.FromMilliseconds(check.DeregisterCriticalAfterMs)) : null;
        var registration = new AgentServiceRegistration
        {
            Id = id,
            Name = options.Service.Name,
            Address = address,
            Port = bound.Port,
            Tags = [.. consul.Tags],
            Meta = meta,
            Check = ttl
                ? new AgentServiceCheck { CheckId = "service:" + id, Name = "Mesh sidecar (ttl)", Ttl = ConsulDuration.Format(TimeSpan.FromMilliseconds(check.TtlMs)), DeregisterCriticalServiceAfter = reap }
                : new AgentServiceCheck
                {
                    CheckId = "service:" + id,
                    Name = "Mesh sidecar /ready",
                    Http = ready.ToString(),
                    Interval = ConsulDuration.Format(TimeSpan.FromMilliseconds(check.IntervalMs)),
                    Timeout = ConsulDuration.Format(TimeSpan.FromMilliseconds(check.TimeoutMs)),
                    DeregisterCriticalServiceAfter = reap,
                },
        };
        var json = JsonSerializer.Serialize(registration, ConsulJsonContext.Default.AgentServiceRegistration);
        // Report well inside the TTL: three times per TTL, at least every resync interval.
        var ttlInterval = TimeSpan.FromMilliseconds(Math.Max(100, Math.Min(check.TtlMs / 3.0, ResyncInterval.TotalMilliseconds)));
        return new Desired(client, registration, json, ttl, ttlInterval, ready, TimeSpan.FromMilliseconds(Math.Min(check.TimeoutMs, Math.Max(100, check.TtlMs / 3))), TimeSpan.FromMilliseconds(consul.DeregisterGraceMs));
    }

    /// <summary><c>name-address-port</c> with anything but letters, digits, '.', '_' and '-' replaced: the same on every restart.</summary>
    internal static string StableId(string service, string address, int port)
    {
        var id = new StringBuilder(service.Length + address.Length + 8);
        foreach (var c in $"{service}-{address}-{port}")
        {
            id.Append(char.IsAsciiLetterOrDigit(c) || c is '.' or '_' or '-' ? c : '-');
        }

        return id.ToString();
    }

    private static TaskCompletionSource NewSignal() => new(TaskCreationOptions.RunContinuationsAsynchronously);

    private sealed record Desired(ConsulClient Client, AgentServiceRegistration Registration, string Json, bool Ttl, TimeSpan TtlInterval, Uri ReadyUri, TimeSpan ProbeTimeout, TimeSpan Grace);

    private sealed record Registered(ConsulClient Client, string Id, string Json);

    private static partial class Log
    {
        [LoggerMessage(5201, LogLevel.Information, "Consul: registered {ServiceId} ({Service} at {Address}:{Port}; {Why})")]
        public static partial void Registered(ILogger logger, string serviceId, string service, string address, int port, string why);

        [LoggerMessage(5202, LogLevel.Information, "Consul: deregistered {ServiceId}")]
        public static partial void Deregistered(ILogger logger, string serviceId);

        [LoggerMessage(5203, LogLevel.Warning, "Consul: could not deregister {ServiceId}: {Reason}; Consul removes it once its check has been critical for deregisterCriticalAfterMs")]
        public static partial void DeregisterFailed(ILogger logger, string serviceId, string reason);

        [LoggerMessage(5204, LogLevel.Warning, "Consul: registration not confirmed, retrying: {Reason}")]
        public static partial void Failed(ILogger logger, string reason);

        [LoggerMessage(5205, LogLevel.Information, "Consul: registration confirmed again")]
        public static partial void Recovered(ILogger logger);

        [LoggerMessage(5206, LogLevel.Information, "Consul: waiting {GraceMs:0} ms for peers to see the deregistration before draining")]
        public static partial void Grace(ILogger logger, double graceMs);
    }
}
