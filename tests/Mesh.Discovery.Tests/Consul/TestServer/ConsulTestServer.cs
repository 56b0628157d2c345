// A Consul-compatible agent for tests: the documented HTTP API on Kestrel (127.0.0.1, port 0) with real blocking queries.
using System.Buffers;
using System.Collections.Concurrent;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography.X509Certificates;
using System.Text.Json;
using Mesh.Discovery.Consul;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Server.Kestrel.Https;
using Microsoft.Extensions.Logging;

// Consul's JSON keys are written by hand; that some equal a C# member name is a coincidence.
#pragma warning disable CA1507

namespace Mesh.Tests.Consul;

/// <summary>How the test agent listens.</summary>
public sealed record ConsulTestServerOptions
{
    /// <summary>Serve HTTPS with this certificate (with its key); plain HTTP when null.</summary>
    public X509Certificate2? ServerCertificate { get; init; }

    /// <summary>With HTTPS: clients must present a certificate signed by <see cref="ClientCertificateAuthority"/>.</summary>
    public X509Certificate2? ClientCertificateAuthority { get; init; }

    /// <summary>The agent's datacenter.</summary>
    public string Datacenter { get; init; } = "dc1";

    /// <summary>The first index of a fresh (or forgetful restarted) agent.</summary>
    public ulong FirstIndex { get; init; } = 1;
}

/// <summary>One request the test agent answered.</summary>
public sealed record RecordedRequest(string Method, string Path, IQueryCollection Query, string? Token, int Status, ulong? Index, DateTimeOffset Received, DateTimeOffset Answered)
{
    public ulong QueryIndex => ulong.TryParse(Query["index"], NumberStyles.None, CultureInfo.InvariantCulture, out var index) ? index : 0;
}

/// <summary>
/// A Consul agent for tests, to the documented API in tests/fixtures/consul-api/README.md: agent
/// service and check registration, TTL and HTTP/TCP checks, <c>DeregisterCriticalServiceAfter</c>,
/// health and catalog reads with real blocking queries (held until the index moves past the one
/// sent or <c>wait</c> passes, plus up to wait/16, answered with <c>X-Consul-Index</c>), the
/// <c>passing</c> and <c>tag</c> filters, the ACL token, the datacenter, the Connect CA and authorize.
/// It can be stopped (the port refuses, held queries are cut) and restarted on the same port, empty
/// or with its state. Deviation: durations are honoured as given (Consul's 1-minute minimum for
/// DeregisterCriticalServiceAfter and 30 s reaper are not), so tests need not wait minutes.
/// </summary>
public sealed class ConsulTestServer : IAsyncDisposable
{
    private readonly ConsulTestServerOptions _options;
    private readonly ConcurrentQueue<RecordedRequest> _requests = new();
    private readonly ConcurrentDictionary<string, DateTimeOffset> _probeDue = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, byte> _probing = new(StringComparer.Ordinal);
    private readonly HttpClient _probeClient = new(new SocketsHttpHandler { UseProxy = false }) { Timeout = System.Threading.Timeout.InfiniteTimeSpan };
    private WebApplication? _app;
    private CancellationTokenSource _stopping = new();
    private Task _background = Task.CompletedTask;
    private TaskCompletionSource _requested = NewSignal();
    private TaskCompletionSource _held = NewSignal();
    private readonly ConcurrentQueue<(int Status, string Body)> _faults = new();
    private int _heldQueries;
    private int _port;

    private ConsulTestServer(ConsulTestServerOptions options)
    {
        _options = options;
        State = new ConsulTestState(firstIndex: options.FirstIndex);
        Ca = new ConsulTestCa(options.Datacenter);
    }

    /// <summary>The catalog (replaced by a restart that forgets).</summary>
    public ConsulTestState State { get; private set; }

    /// <summary>The Connect CA and intentions (replaced by a restart that forgets).</summary>
    public ConsulTestCa Ca { get; private set; }

    public string Datacenter => _options.Datacenter;

    public int Port => _port;

    /// <summary><c>http://127.0.0.1:port</c> (https with a server certificate).</summary>
    public Uri Address => new($"{(_options.ServerCertificate is null ? "http" : "https")}://127.0.0.1:{_port}");

    public bool IsRunning => _app is not null;

    /// <summary>The longest a blocking query is held, whatever <c>wait</c> asks (Consul caps it at 10 minutes).</summary>
    public TimeSpan MaxWait { get; set; } = TimeSpan.FromMinutes(10);

    /// <summary>When set, every call must carry this token (<c>X-Consul-Token</c> or <c>Authorization: Bearer</c>); others get 403.</summary>
    public string? RequiredToken { get; set; }

    /// <summary>Blocking queries being held right now.</summary>
    public int HeldQueries => Volatile.Read(ref _heldQueries);

    /// <summary>The next <paramref name="count"/> requests get this status and body instead of an answer.</summary>
    public void InjectFaults(int count, int status, string body = "injected fault")
    {
        for (var i = 0; i < count; i++)
        {
            _faults.Enqueue((status, body));
        }
    }

    /// <summary>Waits until at least <paramref name="count"/> blocking queries are held.</summary>
    public async Task WaitForHeldQueriesAsync(int count, TimeSpan timeout)
    {
        using var deadline = new CancellationTokenSource(timeout);
        while (true)
        {
            var signal = Volatile.Read(ref _held).Task;
            if (HeldQueries >= count)
            {
                return;
            }

            try
            {
                await signal.WaitAsync(deadline.Token);
            }
            catch (OperationCanceledException)
            {
                throw new TimeoutException($"{HeldQueries} blocking queries held, not {count}, within {timeout}");
            }
        }
    }

    /// <summary>Every request answered so far, oldest first.</summary>
    public IReadOnlyList<RecordedRequest> Requests => [.. _requests];

    public static async Task<ConsulTestServer> StartAsync(ConsulTestServerOptions? options = null)
    {
        var server = new ConsulTestServer(options ?? new ConsulTestServerOptions());
        await server.StartListeningAsync(0);
        return server;
    }

    /// <summary>Stops like a crashed agent: the port closes and held blocking queries are cut.</summary>
    public async Task StopAsync()
    {
        var app = Interlocked.Exchange(ref _app, null);
        if (app is null)
        {
            return;
        }

        await _stopping.CancelAsync();
        using (var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(5)))
        {
            await app.StopAsync(deadline.Token);
        }

        await app.DisposeAsync();
        await _background;
    }

    /// <summary>Starts again on the same port, with the same catalog or (an agent that lost its data) an empty one.</summary>
    public async Task RestartAsync(bool keepState)
    {
        await StopAsync();
        if (!keepState)
        {
            State = new ConsulTestState(firstIndex: _options.FirstIndex);
            Ca = new ConsulTestCa(_options.Datacenter);
            _probeDue.Clear();
        }

        await StartListeningAsync(_port);
    }

    /// <summary>Registers an instance with one TTL-less check in <paramref name="status"/>; returns its check ID.</summary>
    public string AddInstance(string name, int port, string? id = null, IReadOnlyList<string>? tags = null, string status = "passing", int passingWeight = 1, int warningWeight = 1, string address = "127.0.0.1", string node = ConsulTestState.AgentNode, IReadOnlyDictionary<string, string>? meta = null)
    {
        id ??= $"{name}-{port}";
        var checkId = "service:" + id;
        State.Register(
            new TestServiceInstance { Id = id, Name = name, Port = port, Address = address, Node = node, Tags = tags ?? [], PassingWeight = passingWeight, WarningWeight = warningWeight, Meta = meta ?? new Dictionary<string, string>() },
            [new TestCheck { Id = checkId, Name = $"Service '{name}' check", ServiceId = id, Node = node, Status = status, Type = "script" }]);
        return checkId;
    }

    /// <summary>Sets the status of an instance's check (<c>service:&lt;id&gt;</c>).</summary>
    public void SetHealth(string serviceId, string status) =>
        Assert.True(State.SetStatus("service:" + serviceId, status), $"no check service:{serviceId}");

    /// <summary>Waits until the catalog satisfies <paramref name="condition"/>.</summary>
    public async Task WaitUntilAsync(Func<ConsulTestState, bool> condition, TimeSpan timeout, string? what = null)
    {
        using var deadline = new CancellationTokenSource(timeout);
        while (true)
        {
            var state = State;
            var changed = state.Changed;
            if (condition(state))
            {
                return;
            }

            try
            {
                await Task.WhenAny(changed, Task.Delay(250, deadline.Token)).WaitAsync(deadline.Token);
            }
            catch (OperationCanceledException)
            {
                throw new TimeoutException($"the Consul test server did not reach: {what ?? "the expected state"} within {timeout}");
            }
        }
    }

    /// <summary>Waits for a request matching <paramref name="match"/> (already answered ones count).</summary>
    public async Task<RecordedRequest> WaitForRequestAsync(Func<RecordedRequest, bool> match, TimeSpan timeout, string? what = null)
    {
        using var deadline = new CancellationTokenSource(timeout);
        while (true)
        {
            var signal = Volatile.Read(ref _requested).Task;
            var found = _requests.FirstOrDefault(match);
            if (found is not null)
            {
                return found;
            }

            try
            {
                await signal.WaitAsync(deadline.Token);
            }
            catch (OperationCanceledException)
            {
                throw new TimeoutException($"the Consul test server saw no request: {what ?? "matching"} within {timeout}");
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        await StopAsync();
        _probeClient.Dispose();
        _stopping.Dispose();
    }

    private async Task StartListeningAsync(int port)
    {
        _stopping = new CancellationTokenSource();
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { ApplicationName = "consul-test-server" });
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(kestrel =>
        {
            kestrel.Limits.MinRequestBodyDataRate = null;
            kestrel.Listen(IPAddress.Loopback, port, listen =>
            {
                if (_options.ServerCertificate is { } certificate)
                {
                    listen.UseHttps(https =>
                    {
                        https.ServerCertificate = certificate;
                        if (_options.ClientCertificateAuthority is { } authority)
                        {
                            https.ClientCertificateMode = ClientCertificateMode.RequireCertificate;
                            https.ClientCertificateValidation = (client, _, _) => SignedBy(client, authority);
                        }
                    });
                }
            });
        });
        var app = builder.Build();
        app.Run(HandleAsync);
        await app.StartAsync();
        var address = app.Urls.First();
        _port = new Uri(address).Port;
        _app = app;
        _background = RunBackgroundAsync(_stopping.Token);
    }

    private static bool SignedBy(X509Certificate2 client, X509Certificate2 authority)
    {
        using var chain = new X509Chain();
        chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        chain.ChainPolicy.CustomTrustStore.Add(authority);
        chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        return chain.Build(client);
    }

    // TTL expiry, the critical-service reaper and HTTP/TCP checks, every 50 ms.
    private async Task RunBackgroundAsync(CancellationToken cancellationToken)
    {
        using var timer = new PeriodicTimer(TimeSpan.FromMilliseconds(50));
        try
        {
            while (await timer.WaitForNextTickAsync(cancellationToken))
            {
                var state = State;
                state.Sweep();
                var now = DateTimeOffset.UtcNow;
                foreach (var check in state.Checks())
                {
                    if (check.Type is not ("http" or "tcp"))
                    {
                        continue;
                    }

                    var due = _probeDue.GetOrAdd(check.Id, now);
                    if (due <= now && _probing.TryAdd(check.Id, 0))
                    {
                        _ = ProbeAsync(state, check, cancellationToken);
                    }
                }
            }
        }
        catch (OperationCanceledException)
        {
        }
    }

    private async Task ProbeAsync(ConsulTestState state, TestCheck check, CancellationToken cancellationToken)
    {
        string status;
        string output;
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(check.Timeout);
        try
        {
            if (check.Type == "http")
            {
                using var response = await _probeClient.GetAsync(check.Http, timeout.Token);
                var code = (int)response.StatusCode;
                status = code is >= 200 and < 300 ? "passing" : code == 429 ? "warning" : "critical";
                output = $"HTTP GET {check.Http}: {code} {response.ReasonPhrase} Output: {await response.Content.ReadAsStringAsync(timeout.Token)}";
            }
            else
            {
                using var socket = new Socket(SocketType.Stream, ProtocolType.Tcp);
                var separator = check.Tcp!.LastIndexOf(':');
                await socket.ConnectAsync(check.Tcp[..separator].Trim('[', ']'), int.Parse(check.Tcp[(separator + 1)..], CultureInfo.InvariantCulture), timeout.Token);
                status = "passing";
                output = $"TCP connect {check.Tcp}: Success";
            }
        }
        catch (Exception ex) when (!cancellationToken.IsCancellationRequested)
        {
            status = "critical";
            output = $"{check.Type.ToUpperInvariant()} check {check.Http ?? check.Tcp}: {ex.Message}";
        }
        catch (OperationCanceledException)
        {
            _probing.TryRemove(check.Id, out _);
            return;
        }

        state.SetStatus(check.Id, status, output);
        _probeDue[check.Id] = DateTimeOffset.UtcNow + check.Interval;
        _probing.TryRemove(check.Id, out _);
    }

    private async Task HandleAsync(HttpContext context)
    {
        var received = DateTimeOffset.UtcNow;
        var token = context.Request.Headers["X-Consul-Token"].ToString();
        if (token.Length == 0 && context.Request.Headers.Authorization.ToString() is { } auth && auth.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase))
        {
            token = auth[7..];
        }

        using var aborted = CancellationTokenSource.CreateLinkedTokenSource(context.RequestAborted, _stopping.Token);
        try
        {
            if (_faults.TryDequeue(out var fault))
            {
                context.Response.StatusCode = fault.Status;
                context.Response.ContentType = "application/json";
                await context.Response.WriteAsync(fault.Body, aborted.Token);
            }
            else if (RequiredToken is { } required && token != required)
            {
                await Text(context, 403, "ACL not found");
            }
            else if (context.Request.Query["dc"] is { Count: > 0 } dc && dc.ToString() != _options.Datacenter)
            {
                await Text(context, 500, $"No path to datacenter");
            }
            else
            {
                await RouteAsync(context, aborted.Token);
            }
        }
        catch (OperationCanceledException) when (_stopping.IsCancellationRequested)
        {
            // An agent that goes away answers nothing: cut the connection.
            context.Abort();
        }
        catch (OperationCanceledException) when (context.RequestAborted.IsCancellationRequested)
        {
        }

        ulong? index = context.Response.Headers.TryGetValue("X-Consul-Index", out var header) ? ulong.Parse(header.ToString(), CultureInfo.InvariantCulture) : null;
        _requests.Enqueue(new RecordedRequest(context.Request.Method, context.Request.Path.Value ?? "", context.Request.Query, token.Length == 0 ? null : token, context.Response.StatusCode, index, received, DateTimeOffset.UtcNow));
        Interlocked.Exchange(ref _requested, NewSignal()).TrySetResult();
    }

    private Task RouteAsync(HttpContext context, CancellationToken cancellationToken)
    {
        var path = context.Request.Path.Value ?? "";
        var method = context.Request.Method;
        var state = State;
        return (method, path) switch
        {
            ("PUT", "/v1/agent/service/register") => RegisterServiceAsync(context, state),
            ("PUT", _) when Tail(path, "/v1/agent/service/deregister/") is { } id => state.Deregister(id) ? Text(context, 200, "") : Text(context, 404, $"Unknown service ID \"{id}\""),
            ("GET", "/v1/agent/services") => Json(context, 200, w => WriteAgentServices(w, state)),
            ("GET", _) when Tail(path, "/v1/agent/service/") is { } id => state.Service(id) is { } s ? Json(context, 200, w => WriteAgentService(w, state, s, hash: true)) : Text(context, 404, $"unknown service ID: {id}"),
            ("PUT", "/v1/agent/check/register") => RegisterCheckAsync(context, state),
            ("PUT", _) when Tail(path, "/v1/agent/check/deregister/") is { } id => state.RemoveCheck(id) ? Text(context, 200, "") : Text(context, 404, $"Unknown check ID \"{id}\""),
            ("PUT", _) when Tail(path, "/v1/agent/check/pass/") is { } id => Ttl(context, state, id, "passing", context.Request.Query["note"]),
            ("PUT", _) when Tail(path, "/v1/agent/check/warn/") is { } id => Ttl(context, state, id, "warning", context.Request.Query["note"]),
            ("PUT", _) when Tail(path, "/v1/agent/check/fail/") is { } id => Ttl(context, state, id, "critical", context.Request.Query["note"]),
            ("PUT", _) when Tail(path, "/v1/agent/check/update/") is { } id => UpdateCheckAsync(context, state, id),
            ("GET", "/v1/agent/checks") => Json(context, 200, w => WriteAgentChecks(w, state)),
            ("GET", _) when Tail(path, "/v1/health/service/") is { } name => HealthServiceAsync(context, state, name, cancellationToken),
            ("GET", "/v1/catalog/services") => CatalogServicesAsync(context, state, cancellationToken),
            ("GET", _) when Tail(path, "/v1/catalog/service/") is { } name => CatalogServiceAsync(context, state, name, cancellationToken),
            ("GET", "/v1/agent/connect/ca/roots" or "/v1/connect/ca/roots") => RootsAsync(context, cancellationToken),
            ("GET", _) when Tail(path, "/v1/agent/connect/ca/leaf/") is { } service => LeafAsync(context, service, cancellationToken),
            ("POST", "/v1/agent/connect/authorize") => AuthorizeAsync(context),
            ("GET", "/v1/status/leader") => Json(context, 200, w => w.WriteStringValue("127.0.0.1:8300")),
            _ => Text(context, 405, $"method {method} not allowed on {path}"),
        };
    }

    private static string? Tail(string path, string prefix) =>
        path.StartsWith(prefix, StringComparison.Ordinal) && path.Length > prefix.Length ? Uri.UnescapeDataString(path[prefix.Length..]) : null;

    private static Task Ttl(HttpContext context, ConsulTestState state, string checkId, string status, string? note)
    {
        if (state.Check(checkId) is not { Ttl: not null })
        {
            return Text(context, 404, $"Unknown check ID \"{checkId}\". Ensure that the check ID is passed, not the check name.");
        }

        state.SetStatus(checkId, status, note ?? "");
        return Text(context, 200, "");
    }

    private static async Task UpdateCheckAsync(HttpContext context, ConsulTestState state, string checkId)
    {
        var body = await ReadBodyAsync(context);
        if (body is null)
        {
            await Text(context, 400, "Request decode failed");
            return;
        }

        var status = Str(body.Value, "Status");
        if (status is not ("passing" or "warning" or "critical"))
        {
            await Text(context, 400, "Invalid check status: '" + status + "'");
            return;
        }

        await Ttl(context, state, checkId, status, Str(body.Value, "Output"));
    }

    private async Task RegisterServiceAsync(HttpContext context, ConsulTestState state)
    {
        var body = await ReadBodyAsync(context);
        if (body is not { } root || root.ValueKind != JsonValueKind.Object)
        {
            await Text(context, 400, "Request decode failed: body is not a JSON object");
            return;
        }

        var name = Str(root, "Name");
        if (string.IsNullOrEmpty(name))
        {
            await Text(context, 400, "Missing service name");
            return;
        }

        var id = Str(root, "ID") is { Length: > 0 } given ? given : name;
        var weights = Prop(root, "Weights");
        var instance = new TestServiceInstance
        {
            Id = id,
            Name = name,
            Address = Str(root, "Address") ?? "",
            Port = Int(root, "Port"),
            Tags = Strings(root, "Tags"),
            Meta = Map(root, "Meta"),
            Kind = Str(root, "Kind") ?? "",
            EnableTagOverride = Prop(root, "EnableTagOverride") is { ValueKind: JsonValueKind.True },
            PassingWeight = weights is { } pw && Prop(pw, "Passing") is { ValueKind: JsonValueKind.Number } p ? p.GetInt32() : 1,
            WarningWeight = weights is { } ww && Prop(ww, "Warning") is { ValueKind: JsonValueKind.Number } w ? w.GetInt32() : 1,
        };
        if (instance.PassingWeight < 1 || instance.WarningWeight < 0)
        {
            await Text(context, 400, "Invalid Weights: Passing must be greater than 0 and Warning 0 or more");
            return;
        }

        var definitions = new List<JsonElement>();
        if (Prop(root, "Check") is { ValueKind: JsonValueKind.Object } single)
        {
            definitions.Add(single);
        }

        if (Prop(root, "Checks") is { ValueKind: JsonValueKind.Array } many)
        {
            definitions.AddRange(many.EnumerateArray());
        }

        var checks = new List<TestCheck>();
        for (var i = 0; i < definitions.Count; i++)
        {
            var defaultId = definitions.Count == 1 ? "service:" + id : $"service:{id}:{i + 1}";
            var (check, error) = ParseCheck(state, definitions[i], defaultId, $"Service '{name}' check", id);
            if (error is not null)
            {
                await Text(context, 400, error);
                return;
            }

            checks.Add(check!);
        }

        // Checks the request leaves out stay (unless ?replace-existing-checks), as in Consul.
        if (context.Request.Query.ContainsKey("replace-existing-checks"))
        {
            foreach (var old in state.Checks().Where(c => c.ServiceId == id && checks.All(n => n.Id != c.Id)))
            {
                state.RemoveCheck(old.Id);
            }
        }

        state.Register(instance, checks);
        if (Prop(root, "Connect") is { ValueKind: JsonValueKind.Object } connect && Prop(connect, "SidecarService") is { ValueKind: JsonValueKind.Object } sidecar)
        {
            var sidecarId = id + "-sidecar-proxy";
            state.Register(
                new TestServiceInstance { Id = sidecarId, Name = name + "-sidecar-proxy", Kind = "connect-proxy", Port = Int(sidecar, "Port") is > 0 and var sp ? sp : 21000, Address = instance.Address },
                [new TestCheck { Id = $"service:{sidecarId}", Name = "Connect Sidecar Listening", ServiceId = sidecarId, Status = "passing" }]);
        }

        await Text(context, 200, "");
    }

    private static async Task RegisterCheckAsync(HttpContext context, ConsulTestState state)
    {
        var body = await ReadBodyAsync(context);
        if (body is not { } root || root.ValueKind != JsonValueKind.Object)
        {
            await Text(context, 400, "Request decode failed");
            return;
        }

        var name = Str(root, "Name");
        if (string.IsNullOrEmpty(name))
        {
            await Text(context, 400, "Missing check name");
            return;
        }

        var serviceId = Str(root, "ServiceID") ?? "";
        if (serviceId.Length > 0 && state.Service(serviceId) is null)
        {
            await Text(context, 400, $"ServiceID \"{serviceId}\" does not exist");
            return;
        }

        var (check, error) = ParseCheck(state, root, Str(root, "ID") ?? Str(root, "CheckID") ?? name, name, serviceId);
        if (error is not null)
        {
            await Text(context, 400, error);
            return;
        }

        state.AddCheck(check!);
        await Text(context, 200, "");
    }

    private static (TestCheck? Check, string? Error) ParseCheck(ConsulTestState state, JsonElement definition, string defaultId, string defaultName, string serviceId)
    {
        // Service definitions in agent config files (consul services register) write the check ID as "id".
        var id = (Str(definition, "CheckID") ?? Str(definition, "ID")) is { Length: > 0 } given ? given : defaultId;
        var check = new TestCheck
        {
            Id = id,
            Name = Str(definition, "Name") is { Length: > 0 } name ? name : defaultName,
            ServiceId = serviceId,
            Notes = Str(definition, "Notes") ?? "",
            Status = Str(definition, "Status") is { Length: > 0 } status ? status : "critical",
        };
        if (!Duration(definition, "Interval", out var interval) || !Duration(definition, "Timeout", out var timeout) || !Duration(definition, "TTL", out var ttl) || !Duration(definition, "DeregisterCriticalServiceAfter", out var reap))
        {
            return (null, "Invalid duration in check definition");
        }

        check = check with { DeregisterCriticalServiceAfter = reap, Timeout = timeout ?? TimeSpan.FromSeconds(10), Interval = interval ?? TimeSpan.Zero };
        if (ttl is { } t)
        {
            if (t <= TimeSpan.Zero)
            {
                return (null, "TTL must be > 0 for TTL checks");
            }

            return (check with { Type = "ttl", Ttl = t, TtlDeadline = state.Time.GetUtcNow() + t }, null);
        }

        (string Type, string? Http, string? Tcp) kind = ("script", null, null);
        if (Str(definition, "HTTP") is { Length: > 0 } http)
        {
            kind = ("http", http, null);
        }
        else if (Str(definition, "TCP") is { Length: > 0 } tcp)
        {
            kind = ("tcp", null, tcp);
        }

        if (interval is not { } every || every <= TimeSpan.Zero)
        {
            return (null, "Interval must be > 0 for Script, HTTP, H2PING, or TCP checks");
        }

        return (check with { Type = kind.Type, Http = kind.Http, Tcp = kind.Tcp }, null);
    }

    private async Task HealthServiceAsync(HttpContext context, ConsulTestState state, string name, CancellationToken cancellationToken)
    {
        if (!await BlockAsync(context, () => state.ServiceIndex(name), () => state.Changed, cancellationToken))
        {
            return;
        }

        var passing = context.Request.Query.TryGetValue("passing", out var p) && p.ToString() is "" or "true" or "1";
        var tags = context.Request.Query["tag"].Where(t => !string.IsNullOrEmpty(t)).Select(t => t!).ToArray();
        var index = state.ServiceIndex(name);
        var entries = new List<(TestServiceInstance Instance, IReadOnlyList<TestCheck> Checks)>();
        foreach (var instance in state.Services().Where(s => s.Name == name).OrderBy(s => s.Id, StringComparer.Ordinal))
        {
            var checks = state.ChecksOf(instance);
            if (!HasTags(instance, tags) || (passing && checks.Any(c => c.Status != "passing")))
            {
                continue;
            }

            entries.Add((instance, checks));
        }

        context.Response.Headers["X-Consul-Index"] = index.ToString(CultureInfo.InvariantCulture);
        context.Response.Headers["X-Consul-KnownLeader"] = "true";
        await Json(context, 200, w =>
        {
            w.WriteStartArray();
            foreach (var (instance, checks) in entries)
            {
                w.WriteStartObject();
                w.WritePropertyName("Node");
                WriteNode(w, state, instance.Node);
                w.WritePropertyName("Service");
                WriteAgentService(w, state, instance, hash: false);
                w.WriteStartArray("Checks");
                foreach (var check in checks)
                {
                    WriteCheck(w, state, check);
                }

                w.WriteEndArray();
                w.WriteEndObject();
            }

            w.WriteEndArray();
        });
    }

    private async Task CatalogServicesAsync(HttpContext context, ConsulTestState state, CancellationToken cancellationToken)
    {
        if (!await BlockAsync(context, () => state.Index, () => state.Changed, cancellationToken))
        {
            return;
        }

        context.Response.Headers["X-Consul-Index"] = state.Index.ToString(CultureInfo.InvariantCulture);
        var services = state.Services().GroupBy(s => s.Name).OrderBy(g => g.Key, StringComparer.Ordinal);
        await Json(context, 200, w =>
        {
            w.WriteStartObject();
            w.WriteStartArray("consul");
            w.WriteEndArray();
            foreach (var group in services)
            {
                w.WriteStartArray(group.Key);
                foreach (var tag in group.SelectMany(s => s.Tags).Distinct(StringComparer.Ordinal))
                {
                    w.WriteStringValue(tag);
                }

                w.WriteEndArray();
            }

            w.WriteEndObject();
        });
    }

    private async Task CatalogServiceAsync(HttpContext context, ConsulTestState state, string name, CancellationToken cancellationToken)
    {
        if (!await BlockAsync(context, () => state.ServiceIndex(name), () => state.Changed, cancellationToken))
        {
            return;
        }

        var tags = context.Request.Query["tag"].Where(t => !string.IsNullOrEmpty(t)).Select(t => t!).ToArray();
        context.Response.Headers["X-Consul-Index"] = state.ServiceIndex(name).ToString(CultureInfo.InvariantCulture);
        var instances = state.Services().Where(s => s.Name == name && HasTags(s, tags)).OrderBy(s => s.Id, StringComparer.Ordinal).ToList();
        await Json(context, 200, w =>
        {
            w.WriteStartArray();
            foreach (var s in instances)
            {
                var nodeAddress = state.NodeAddress(s.Node);
                w.WriteStartObject();
                w.WriteString("ID", NodeId(s.Node));
                w.WriteString("Node", s.Node);
                w.WriteString("Address", nodeAddress);
                w.WriteString("Datacenter", _options.Datacenter);
                w.WriteStartObject("TaggedAddresses");
                w.WriteString("lan", nodeAddress);
                w.WriteString("wan", nodeAddress);
                w.WriteEndObject();
                w.WriteStartObject("NodeMeta");
                w.WriteEndObject();
                w.WriteNumber("CreateIndex", s.CreateIndex);
                w.WriteNumber("ModifyIndex", s.ModifyIndex);
                w.WriteString("ServiceAddress", s.Address);
                w.WriteBoolean("ServiceEnableTagOverride", s.EnableTagOverride);
                w.WriteString("ServiceID", s.Id);
                w.WriteString("ServiceName", s.Name);
                w.WriteNumber("ServicePort", s.Port);
                WriteMap(w, "ServiceMeta", s.Meta);
                WriteStrings(w, "ServiceTags", s.Tags);
                w.WriteStartObject("ServiceWeights");
                w.WriteNumber("Passing", s.PassingWeight);
                w.WriteNumber("Warning", s.WarningWeight);
                w.WriteEndObject();
                w.WriteEndObject();
            }

            w.WriteEndArray();
        });
    }

    private async Task RootsAsync(HttpContext context, CancellationToken cancellationToken)
    {
        var ca = Ca;
        if (!await BlockAsync(context, () => ca.ActiveRoot.CreateIndex, () => ca.Changed, cancellationToken))
        {
            return;
        }

        var roots = ca.Roots;
        var active = roots[^1];
        context.Response.Headers["X-Consul-Index"] = active.CreateIndex.ToString(CultureInfo.InvariantCulture);
        await Json(context, 200, w =>
        {
            w.WriteStartObject();
            w.WriteString("ActiveRootID", active.Id);
            w.WriteString("TrustDomain", ca.TrustDomain);
            w.WriteStartArray("Roots");
            foreach (var root in roots)
            {
                w.WriteStartObject();
                w.WriteString("ID", root.Id);
                w.WriteString("Name", root.Name);
                w.WriteNumber("SerialNumber", root.Serial);
                w.WriteString("SigningKeyID", root.SigningKeyId);
                w.WriteString("ExternalTrustDomain", ca.TrustDomain.Replace(".consul", "", StringComparison.Ordinal));
                w.WriteString("NotBefore", root.Certificate.NotBefore.ToUniversalTime().ToString("yyyy-MM-ddTHH:mm:ssZ", CultureInfo.InvariantCulture));
                w.WriteString("NotAfter", root.Certificate.NotAfter.ToUniversalTime().ToString("yyyy-MM-ddTHH:mm:ssZ", CultureInfo.InvariantCulture));
                w.WriteString("RootCert", root.Pem);
                w.WriteNull("IntermediateCerts");
                w.WriteBoolean("Active", ReferenceEquals(root, active));
                w.WriteString("PrivateKeyType", "ec");
                w.WriteNumber("PrivateKeyBits", 256);
                w.WriteNumber("CreateIndex", root.CreateIndex);
                w.WriteNumber("ModifyIndex", root.CreateIndex);
                w.WriteEndObject();
            }

            w.WriteEndArray();
            w.WriteEndObject();
        });
    }

    private async Task LeafAsync(HttpContext context, string service, CancellationToken cancellationToken)
    {
        var ca = Ca;
        if (!await BlockAsync(context, () => ca.Leaf(service).Index, () => ca.Changed, cancellationToken))
        {
            return;
        }

        var leaf = ca.Leaf(service);
        context.Response.Headers["X-Consul-Index"] = leaf.Index.ToString(CultureInfo.InvariantCulture);
        await Json(context, 200, w =>
        {
            w.WriteStartObject();
            w.WriteString("SerialNumber", leaf.Serial);
            w.WriteString("CertPEM", leaf.CertPem);
            w.WriteString("PrivateKeyPEM", leaf.KeyPem);
            w.WriteString("Service", leaf.Service);
            w.WriteString("ServiceURI", leaf.Uri);
            w.WriteString("ValidAfter", leaf.ValidAfter.ToString("yyyy-MM-ddTHH:mm:ssZ", CultureInfo.InvariantCulture));
            w.WriteString("ValidBefore", leaf.ValidBefore.ToString("yyyy-MM-ddTHH:mm:ssZ", CultureInfo.InvariantCulture));
            w.WriteNumber("CreateIndex", leaf.Index);
            w.WriteNumber("ModifyIndex", leaf.Index);
            w.WriteEndObject();
        });
    }

    private async Task AuthorizeAsync(HttpContext context)
    {
        var body = await ReadBodyAsync(context);
        if (body is not { ValueKind: JsonValueKind.Object } root)
        {
            await Text(context, 400, "Request decode failed");
            return;
        }

        var target = Str(root, "Target");
        var uri = Str(root, "ClientCertURI");
        if (string.IsNullOrEmpty(target))
        {
            await Text(context, 400, "Target service must be specified");
            return;
        }

        if (string.IsNullOrEmpty(uri))
        {
            await Text(context, 400, "ClientCertURI must be specified");
            return;
        }

        var (authorized, reason) = Ca.Authorize(target, uri);
        await Json(context, 200, w =>
        {
            w.WriteStartObject();
            w.WriteBoolean("Authorized", authorized);
            w.WriteString("Reason", reason);
            w.WriteEndObject();
        });
    }

    // Holds the request while the index is not past the one sent, up to wait (+ wait/16 jitter), as Consul does.
    private async Task<bool> BlockAsync(HttpContext context, Func<ulong> current, Func<Task> changed, CancellationToken cancellationToken)
    {
        var query = context.Request.Query;
        ulong index = 0;
        if (query.TryGetValue("index", out var text) && !ulong.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out index))
        {
            await Text(context, 400, "Invalid index");
            return false;
        }

        var wait = TimeSpan.FromMinutes(5);
        if (query.TryGetValue("wait", out var waitText) && !ConsulDuration.TryParse(waitText, out wait))
        {
            await Text(context, 400, "Invalid wait time");
            return false;
        }

        if (index == 0)
        {
            return true;
        }

        wait = TimeSpan.FromTicks(Math.Min(Math.Min(wait.Ticks, TimeSpan.FromMinutes(10).Ticks), MaxWait.Ticks));
        wait += TimeSpan.FromTicks((long)(Random.Shared.NextDouble() * (wait.Ticks / 16)));
        var deadline = DateTimeOffset.UtcNow + wait;
        Interlocked.Increment(ref _heldQueries);
        Interlocked.Exchange(ref _held, NewSignal()).TrySetResult();
        try
        {
            while (true)
            {
                var signal = changed();
                if (current() > index)
                {
                    return true;
                }

                var remaining = deadline - DateTimeOffset.UtcNow;
                if (remaining <= TimeSpan.Zero)
                {
                    return true;
                }

                await Task.WhenAny(signal, Task.Delay(remaining, cancellationToken));
                cancellationToken.ThrowIfCancellationRequested();
            }
        }
        finally
        {
            Interlocked.Decrement(ref _heldQueries);
        }
    }

    private static bool HasTags(TestServiceInstance instance, string[] tags) =>
        tags.All(t => instance.Tags.Contains(t, StringComparer.OrdinalIgnoreCase));

    private void WriteAgentServices(Utf8JsonWriter w, ConsulTestState state)
    {
        w.WriteStartObject();
        foreach (var service in state.Services().Where(s => s.Node == ConsulTestState.AgentNode).OrderBy(s => s.Id, StringComparer.Ordinal))
        {
            w.WritePropertyName(service.Id);
            WriteAgentService(w, state, service, hash: false);
        }

        w.WriteEndObject();
    }

    private void WriteAgentService(Utf8JsonWriter w, ConsulTestState state, TestServiceInstance s, bool hash)
    {
        w.WriteStartObject();
        if (s.Kind.Length > 0)
        {
            w.WriteString("Kind", s.Kind);
        }

        w.WriteString("ID", s.Id);
        w.WriteString("Service", s.Name);
        WriteStrings(w, "Tags", s.Tags);
        WriteMap(w, "Meta", s.Meta);
        w.WriteString("Namespace", "default");
        w.WriteNumber("Port", s.Port);
        w.WriteString("Address", s.Address);
        w.WriteStartObject("TaggedAddresses");
        foreach (var name in new[] { "lan", "wan" })
        {
            w.WriteStartObject(name);
            w.WriteString("address", s.Address.Length > 0 ? s.Address : state.NodeAddress(s.Node));
            w.WriteNumber("port", s.Port);
            w.WriteEndObject();
        }

        w.WriteEndObject();
        w.WriteStartObject("Weights");
        w.WriteNumber("Passing", s.PassingWeight);
        w.WriteNumber("Warning", s.WarningWeight);
        w.WriteEndObject();
        w.WriteBoolean("EnableTagOverride", s.EnableTagOverride);
        w.WriteString("Datacenter", _options.Datacenter);
        if (hash)
        {
            w.WriteString("ContentHash", s.ModifyIndex.ToString("x16", CultureInfo.InvariantCulture));
        }

        w.WriteEndObject();
    }

    private void WriteNode(Utf8JsonWriter w, ConsulTestState state, string node)
    {
        var address = state.NodeAddress(node);
        w.WriteStartObject();
        w.WriteString("ID", NodeId(node));
        w.WriteString("Node", node);
        w.WriteString("Address", address);
        w.WriteString("Datacenter", _options.Datacenter);
        w.WriteStartObject("TaggedAddresses");
        w.WriteString("lan", address);
        w.WriteString("wan", address);
        w.WriteEndObject();
        w.WriteStartObject("Meta");
        w.WriteString("consul-network-segment", "");
        w.WriteEndObject();
        w.WriteEndObject();
    }

    private static void WriteCheck(Utf8JsonWriter w, ConsulTestState state, TestCheck c)
    {
        var service = c.ServiceId.Length > 0 ? state.Service(c.ServiceId) : null;
        w.WriteStartObject();
        w.WriteString("Node", c.Node);
        w.WriteString("CheckID", c.Id);
        w.WriteString("Name", c.Name);
        w.WriteString("Status", c.Status);
        w.WriteString("Notes", c.Notes);
        w.WriteString("Output", c.Output);
        w.WriteString("ServiceID", c.ServiceId);
        w.WriteString("ServiceName", service?.Name ?? "");
        WriteStrings(w, "ServiceTags", service?.Tags ?? []);
        w.WriteString("Type", c.Type == "serf" ? "" : c.Type);
        w.WriteString("Namespace", "default");
        w.WriteEndObject();
    }

    private static void WriteAgentChecks(Utf8JsonWriter w, ConsulTestState state)
    {
        w.WriteStartObject();
        foreach (var check in state.Checks().Where(c => c.Node == ConsulTestState.AgentNode && c.Type != "serf"))
        {
            w.WritePropertyName(check.Id);
            WriteCheck(w, state, check);
        }

        w.WriteEndObject();
    }

    private static string NodeId(string node) => new Guid(System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(node)).AsSpan(0, 16)).ToString();

    private static void WriteStrings(Utf8JsonWriter w, string name, IReadOnlyList<string> values)
    {
        w.WriteStartArray(name);
        foreach (var value in values)
        {
            w.WriteStringValue(value);
        }

        w.WriteEndArray();
    }

    private static void WriteMap(Utf8JsonWriter w, string name, IReadOnlyDictionary<string, string> values)
    {
        w.WriteStartObject(name);
        foreach (var (key, value) in values)
        {
            w.WriteString(key, value);
        }

        w.WriteEndObject();
    }

    private static async Task<JsonElement?> ReadBodyAsync(HttpContext context)
    {
        try
        {
            using var document = await JsonDocument.ParseAsync(context.Request.Body);
            return document.RootElement.Clone();
        }
        catch (JsonException)
        {
            return null;
        }
    }

    // Keys may be CamelCase or snake_case (agent/service.mdx): compare without underscores, ignoring case.
    private static JsonElement? Prop(JsonElement element, string name)
    {
        if (element.ValueKind != JsonValueKind.Object)
        {
            return null;
        }

        foreach (var property in element.EnumerateObject())
        {
            if (string.Equals(property.Name.Replace("_", "", StringComparison.Ordinal), name, StringComparison.OrdinalIgnoreCase))
            {
                return property.Value;
            }
        }

        return null;
    }

    private static string? Str(JsonElement element, string name) => Prop(element, name) is { ValueKind: JsonValueKind.String } value ? value.GetString() : null;

    private static int Int(JsonElement element, string name) => Prop(element, name) is { ValueKind: JsonValueKind.Number } value ? value.GetInt32() : 0;

    private static string[] Strings(JsonElement element, string name) =>
        Prop(element, name) is { ValueKind: JsonValueKind.Array } array ? [.. array.EnumerateArray().Select(e => e.GetString() ?? "")] : [];

    private static Dictionary<string, string> Map(JsonElement element, string name) =>
        Prop(element, name) is { ValueKind: JsonValueKind.Object } obj ? obj.EnumerateObject().ToDictionary(p => p.Name, p => p.Value.GetString() ?? "", StringComparer.Ordinal) : [];

    private static bool Duration(JsonElement element, string name, out TimeSpan? value)
    {
        value = null;
        var text = Str(element, name);
        if (string.IsNullOrEmpty(text))
        {
            return true;
        }

        if (!ConsulDuration.TryParse(text, out var parsed))
        {
            return false;
        }

        value = parsed;
        return true;
    }

    private static Task Text(HttpContext context, int status, string body)
    {
        context.Response.StatusCode = status;
        context.Response.ContentType = "text/plain; charset=utf-8";
        return context.Response.WriteAsync(body);
    }

    private static async Task Json(HttpContext context, int status, Action<Utf8JsonWriter> write)
    {
        var buffer = new ArrayBufferWriter<byte>();
        using (var writer = new Utf8JsonWriter(buffer))
        {
            write(writer);
        }

        context.Response.StatusCode = status;
        context.Response.ContentType = "application/json";
        await context.Response.Body.WriteAsync(buffer.WrittenMemory);
    }

    private static TaskCompletionSource NewSignal() => new(TaskCreationOptions.RunContinuationsAsynchronously);
}
