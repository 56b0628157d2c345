// One request through the resilience stage: limits, deadline, tries on other endpoints, the response gate, body replay and the mirror.
using System.Globalization;
using System.Runtime.CompilerServices;
using System.Net.Sockets;
using System.Threading.RateLimiting;
using Mesh.Sidecar.Endpoints;
using Mesh.Sidecar.Routing;
using Mesh.Sidecar.Translation;
using Mesh.Sidecar.Upstream.Http1;
using Microsoft.AspNetCore.Http.Features;
using Polly;
using Polly.CircuitBreaker;
using Yarp.ReverseProxy.Forwarder;

namespace Mesh.Sidecar.Resilience;

/// <summary>What one try came to.</summary>
internal enum AttemptKind : byte
{
    /// <summary>The upstream answered (any status).</summary>
    Response,

    /// <summary>The exchange failed (<see cref="AttemptOutcome.Error"/>).</summary>
    Error,

    /// <summary>The balancer had no endpoint left.</summary>
    NoEndpoint,

    /// <summary>The endpoint's breaker refused the try; nothing was sent.</summary>
    BreakerOpen,
}

/// <summary>The outcome of one try, as the retry and breaker strategies see it.</summary>
internal readonly record struct AttemptOutcome(AttemptKind Kind, ForwarderError Error, int Status, bool CountsAsFailure, bool Retry, string? Reason);

/// <summary>
/// Per-request state of the resilience stage. It is the request's <see cref="IHttpRequestLifetimeFeature"/>
/// during a try when a timeout applies (its token fires on the client leaving, the route deadline or the
/// per-try deadline; both upstream paths cancel on it), and owns the try's <see cref="ResponseGate"/>.
/// Allocated only for routes and services that have a policy on the request path.
/// </summary>
internal sealed class ResilientExchange : IHttpRequestLifetimeFeature, IDisposable
{
    private static readonly string[] StatusReasons = BuildStatusReasons();
    private static readonly string[] GrpcReasons = BuildGrpcReasons();

    private readonly ResilientForwarder _owner;
    private readonly HttpContext _context;
    private readonly MeshState _state;
    private readonly CompiledRoute _route;
    private readonly Cluster _cluster;
    private readonly string? _subset;
    private readonly ServiceResilience? _service;
    private readonly RetryRules? _retry;
    private readonly RoutePolicy? _policy;
    private readonly CancellationToken _clientToken;
    private IHttpRequestLifetimeFeature? _lifetime;
    private IHttpResponseBodyFeature? _body;
    private readonly bool _isGrpc;
    private readonly EndpointState _first;
    private EndpointState _endpoint;
    private EndpointState[]? _tried;
    private int _attempt = -1;
    private ReplayableBody? _replay;
    private bool _bodyReplayable = true;
    private bool _mirror;
    private bool _bodyNotKept;
    private ResponseGate? _gate;
    private string? _heldReason;
    private CancellationTokenSource? _deadline;
    private CancellationTokenRegistration _deadlineLink;
    private CancellationTokenSource? _tryDeadline;
    private CancellationTokenRegistration _tryLink;
    private bool _timeoutInstalled;
    private bool _retrying;
    private EndpointState? _entered;
    private Outcome<AttemptOutcome>? _firstOutcome;
    private int _timeoutMs;

    public ResilientExchange(ResilientForwarder owner, HttpContext context, MeshState state, CompiledRoute route, Cluster cluster, string? subset, EndpointState first)
    {
        _owner = owner;
        _context = context;
        _state = state;
        _route = route;
        _cluster = cluster;
        _subset = subset;
        _service = cluster.Resilience;
        _retry = _service?.Retry;
        _policy = route.Policy;
        _endpoint = first;
        _first = first;
        _clientToken = context.RequestAborted;
        _isGrpc = context.Request.ContentType is { } type && type.StartsWith("application/grpc", StringComparison.OrdinalIgnoreCase);
    }

    /// <summary>The endpoint of the last try.</summary>
    public EndpointState Endpoint => _endpoint;

    /// <summary>The token the current try cancels on (IHttpRequestLifetimeFeature while a timeout applies).</summary>
    public CancellationToken RequestAborted
    {
        get => _tryDeadline?.Token ?? _deadline?.Token ?? _clientToken;
        set => throw new NotSupportedException();
    }

    private CancellationToken RequestToken => _deadline?.Token ?? _clientToken;

    private bool RouteTimedOut => _deadline is { IsCancellationRequested: true } && !_clientToken.IsCancellationRequested;

    /// <summary>Aborting the try's request means aborting the client's connection, as without the stage.</summary>
    public void Abort() => Lifetime.Abort();

    // Kestrel's features, read only when a timeout or the response gate replaces them (most requests never do).
    private IHttpRequestLifetimeFeature Lifetime => _lifetime ??= _context.Features.Get<IHttpRequestLifetimeFeature>()!;

    private IHttpResponseBodyFeature Body => _body ??= _context.Features.Get<IHttpResponseBodyFeature>()!;

    /// <summary>
    /// Readies the first try for the data path to send itself, as it sends a request without policies (one
    /// async method per request instead of three): true when nothing on the way needs an await (no
    /// concurrency limit, no breaker, the client still there). Then the data path sends to
    /// <see cref="Endpoint"/> and passes the result to <see cref="EndFirstTryAsync"/>. False: nothing was
    /// done, and <see cref="RunAsync"/> takes the whole request.
    /// </summary>
    public bool TryBeginFirstTry()
    {
        if (_service is { Limiter: not null } or { Breaker: not null } || _clientToken.IsCancellationRequested)
        {
            return false;
        }

        StartDeadline();
        Prepare();
        _attempt = 0;
        BeginSend();
        return true;
    }

    /// <summary>
    /// The first try's result, sent by the data path after <see cref="TryBeginFirstTry"/>: classified as
    /// <c>RunAsync</c> classifies it, then retried through the retry strategy when a retry is wanted.
    /// Completes synchronously when the try was the answer (almost always).
    /// </summary>
    public ValueTask<ForwarderError> EndFirstTryAsync(ForwarderError error)
    {
        var result = EndSend(error);
        if (!result.Retry && result.Kind == AttemptKind.Response)
        {
            return new ValueTask<ForwarderError>(result.Error);
        }

        return RetryAndFinishAsync(Outcome.FromResult(result));
    }

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    public async ValueTask<ForwarderError> RunAsync()
    {
        StartDeadline();
        RateLimitLease? slot = null;
        try
        {
            // Concurrency limit of the service: a free slot, a place in the queue, or 503 naming the limit.
            if (_service?.Limiter is { } limiter)
            {
                slot = limiter.AttemptAcquire();
                if (!slot.IsAcquired && _service.MaxPending > 0)
                {
                    slot.Dispose();
                    try
                    {
                        slot = await limiter.AcquireAsync(1, RequestToken).ConfigureAwait(false);
                    }
                    catch (OperationCanceledException)
                    {
                        slot = null;
                        return await TimedOutOrGoneAsync().ConfigureAwait(false);
                    }
                }

                if (!slot.IsAcquired)
                {
                    var pending = _service.MaxPending > 0;
                    _owner.Metrics.Overflow(_cluster.Name, pending ? "max-pending-requests" : "max-concurrent-requests");
                    await RespondAsync(StatusCodes.Status503ServiceUnavailable, pending
                        ? $"service '{_cluster.Name}' is at its limit of {_service.MaxConcurrent} concurrent requests and {_service.MaxPending} pending (circuitBreaker.maxPendingRequests)\n"
                        : $"service '{_cluster.Name}' is at its limit of {_service.MaxConcurrent} concurrent requests (circuitBreaker.maxConcurrentRequests)\n").ConfigureAwait(false);
                    return ForwarderError.None;
                }
            }

            Prepare();
            if (_retrying && RequestToken.IsCancellationRequested)
            {
                // What Polly answers before a first try whose token is already cancelled.
                return await TimedOutOrGoneAsync().ConfigureAwait(false);
            }

            // Without a breaker the first try is the send itself (no endpoint to pick again, none tried before).
            var outcome = _service?.Breaker is null
                ? Outcome.FromResult(await FirstSendAsync().ConfigureAwait(false))
                : await TryOnceAsync(null).ConfigureAwait(false);
            return await RetryAndFinishAsync(outcome).ConfigureAwait(false);
        }
        finally
        {
            slot?.Dispose();
        }
    }

    /// <summary>The mirror's coin, whether this request may be retried, its body kept, and the response gate.</summary>
    private void Prepare()
    {
        _mirror = _policy?.Mirror is { } mirror && _policy.Random.Chance(mirror.Percent);
        _retrying = _retry is { Pipeline: not null } && (_retry.Options.NonIdempotent || IsIdempotent(_context.Request.Method) || _isGrpc);
        PrepareBody(_retrying);
        if (_retrying)
        {
            _retry!.Budget.RecordRequest();
            if (_retry.HoldsStatuses)
            {
                _gate = new ResponseGate(this);
            }
        }
    }

    /// <summary>
    /// After the first try: the first try runs outside Polly, since most never need a retry and Polly's
    /// strategy costs a context, an outcome and two state machines per request. Only a try that wants a
    /// retry enters the retry strategy, which sees that outcome first (replayed, not sent again), so its
    /// backoff, attempt count and OnRetry metrics are what they were with every try inside it.
    /// </summary>
    private async ValueTask<ForwarderError> RetryAndFinishAsync(Outcome<AttemptOutcome> outcome)
    {
        if (_retrying && outcome.Exception is null && outcome.Result.Retry)
        {
            _firstOutcome = outcome;
            var resilience = ResilienceContextPool.Shared.Get(RequestToken);
            try
            {
                outcome = await _retry!.Pipeline!.ExecuteOutcomeAsync(static (ctx, exchange) => exchange.ReplayOrTryAsync(ctx), resilience, this).ConfigureAwait(false);
            }
            finally
            {
                ResilienceContextPool.Shared.Return(resilience);
            }
        }

        return await FinishAsync(outcome.Result, outcome.Exception).ConfigureAwait(false);
    }

    private async ValueTask<ForwarderError> FinishAsync(AttemptOutcome result, Exception? failure)
    {
        if (failure is not null || result.Retry)
        {
            // Cancelled (client gone, route deadline) or a retry committed but never made (the deadline hit the backoff).
            return await TimedOutOrGoneAsync().ConfigureAwait(false);
        }

        switch (result.Kind)
        {
            case AttemptKind.NoEndpoint:
                await RespondAsync(StatusCodes.Status503ServiceUnavailable, _subset is null
                    ? $"service '{_cluster.Name}' has no healthy endpoint\n"
                    : $"service '{_cluster.Name}' has no healthy endpoint in subset '{_subset}'\n").ConfigureAwait(false);
                return ForwarderError.None;
            case AttemptKind.BreakerOpen:
                _owner.Metrics.Overflow(_cluster.Name, "breaker-open");
                await RespondAsync(StatusCodes.Status503ServiceUnavailable, $"service '{_cluster.Name}': the circuit breaker of endpoint {_endpoint.Authority} is open\n").ConfigureAwait(false);
                return ForwarderError.None;
            case AttemptKind.Error when RouteTimedOut:
                return await TimedOutOrGoneAsync().ConfigureAwait(false);
            case AttemptKind.Error when result.Reason == RetryConditions.PerTryTimeout && !_context.Response.HasStarted:
                await RespondAsync(StatusCodes.Status504GatewayTimeout, $"service '{_cluster.Name}': endpoint {_endpoint.Authority} did not answer within perTryTimeoutMs ({_retry!.Options.PerTryTimeoutMs} ms)\n").ConfigureAwait(false);
                return ForwarderError.None;
            default:
                return result.Error;
        }
    }

    private async ValueTask<ForwarderError> TimedOutOrGoneAsync()
    {
        if (!RouteTimedOut)
        {
            // The client left; nobody to answer.
            return ForwarderError.RequestCanceled;
        }

        _owner.Metrics.Timeout(_route.Name);
        var response = _context.Response;
        if (response.HasStarted)
        {
            // Part of the response went out: cut it so the client cannot take it for whole.
            Lifetime.Abort();
            return ForwarderError.None;
        }

        if (_isGrpc)
        {
            // gRPC clients read the deadline from a trailers-only answer.
            response.Clear();
            response.StatusCode = StatusCodes.Status200OK;
            response.ContentType = "application/grpc";
            response.Headers["grpc-status"] = "4";
            response.Headers["grpc-message"] = $"route '{_route.Name}' deadline of {_timeoutMs} ms exceeded";
            return ForwarderError.None;
        }

        await RespondAsync(StatusCodes.Status504GatewayTimeout, $"route '{_route.Name}' timed out after {_timeoutMs} ms (timeoutMs)\n").ConfigureAwait(false);
        return ForwarderError.None;
    }

    private Task RespondAsync(int status, string body)
    {
        var response = _context.Response;
        if (response.HasStarted)
        {
            return Task.CompletedTask;
        }

        response.Clear();
        response.StatusCode = status;
        response.ContentType = "text/plain; charset=utf-8";
        return response.WriteAsync(body);
    }

    /// <summary>The first try's send, as <see cref="TryOnceAsync"/> makes it when no breaker applies.</summary>
    private ValueTask<AttemptOutcome> FirstSendAsync()
    {
        _attempt = 0;
        return SendAsync();
    }

    /// <summary>Inside the retry strategy: the first try's outcome once (it was made outside), then new tries.</summary>
    private ValueTask<Outcome<AttemptOutcome>> ReplayOrTryAsync(ResilienceContext resilience)
    {
        if (_firstOutcome is { } first)
        {
            _firstOutcome = null;
            return new ValueTask<Outcome<AttemptOutcome>>(first);
        }

        return TryOnceAsync(resilience);
    }

    /// <summary>One try: pick (another) endpoint, pass its breaker, forward.</summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    private async ValueTask<Outcome<AttemptOutcome>> TryOnceAsync(ResilienceContext? resilience)
    {
        _attempt++;
        if (_attempt > 0)
        {
            var next = PickNext();
            if (next is null)
            {
                return Outcome.FromResult(new AttemptOutcome(AttemptKind.NoEndpoint, ForwarderError.NoAvailableDestinations, 503, false, false, null));
            }

            _endpoint = next;
        }

        Remember(_endpoint);
        if (_service?.Breaker is null)
        {
            return Outcome.FromResult(await SendAsync().ConfigureAwait(false));
        }

        var breaker = _service.BreakerFor(_endpoint);
        var context = resilience ?? ResilienceContextPool.Shared.Get(RequestToken);
        try
        {
            var outcome = await breaker.Pipeline.ExecuteOutcomeAsync(static async (_, exchange) => Outcome.FromResult(await exchange.SendAsync().ConfigureAwait(false)), context, this).ConfigureAwait(false);
            if (outcome.Exception is BrokenCircuitException)
            {
                // Nothing was sent, so any method may go to another endpoint.
                var retry = CanRetry(safe: true);
                return Outcome.FromResult(new AttemptOutcome(AttemptKind.BreakerOpen, ForwarderError.NoAvailableDestinations, 503, false, retry, retry ? "breaker-open" : null));
            }

            return outcome;
        }
        finally
        {
            if (resilience is null)
            {
                ResilienceContextPool.Shared.Return(context);
            }
        }
    }

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    private async ValueTask<AttemptOutcome> SendAsync()
    {
        BeginSend();
        var error = ForwarderError.None;
        try
        {
            error = await _cluster.SendAsync(_context, _endpoint, _route.Transformer, _owner.Http1, _owner.Forwarder).ConfigureAwait(false);
        }
        finally
        {
            LeaveEndpoint(error != ForwarderError.None);
        }

        return EndSend(error);
    }

    /// <summary>Before a try's send: a fresh response, the kept body, the gate in front of Kestrel's body, the per-try deadline.</summary>
    private void BeginSend()
    {
        var context = _context;
        if (_attempt > 0)
        {
            ResetResponse();
        }

        if (_replay is not null)
        {
            context.Request.Body = _replay.NewReader();
        }

        if (_gate is not null)
        {
            _gate.Arm(Body);
            context.Features.Set<IHttpResponseBodyFeature>(_gate);
        }

        StartTryDeadline();
        _entered = _endpoint;
        _endpoint.Enter();
    }

    /// <summary>The endpoint's in-flight count down and Kestrel's body back; also from Dispose when a send threw.</summary>
    private void LeaveEndpoint(bool failed)
    {
        if (_entered is { } endpoint)
        {
            _entered = null;
            endpoint.Leave(failed);
            if (_gate is not null)
            {
                _context.Features.Set(Body);
            }
        }
    }

    /// <summary>After a try's send: what it came to, and the endpoint's outlier record.</summary>
    private AttemptOutcome EndSend(ForwarderError error)
    {
        LeaveEndpoint(error != ForwarderError.None);
        var tryTimedOut = _tryDeadline is { IsCancellationRequested: true } && !RequestToken.IsCancellationRequested;
        StopTryDeadline();
        var outcome = Classify(error, tryTimedOut);
        if (_service?.Outlier is { } outlier)
        {
            if (outcome.CountsAsFailure)
            {
                outlier.Failure(_cluster, _endpoint);
            }
            else if (outcome.Kind == AttemptKind.Response)
            {
                outlier.Success(_endpoint);
            }
        }

        return outcome;
    }

    private AttemptOutcome Classify(ForwarderError error, bool tryTimedOut)
    {
        var response = _context.Response;
        var status = response.StatusCode;
        if (_gate is { Held: true })
        {
            return new AttemptOutcome(AttemptKind.Response, ForwarderError.None, status, status >= 500, true, _heldReason);
        }

        if (error == ForwarderError.None)
        {
            // A response without a body never touched the gate: decide on its status now.
            var retry = _gate is { Passed: false } && !response.HasStarted && HoldResponse();
            return new AttemptOutcome(AttemptKind.Response, error, status, status >= 500, retry, retry ? _heldReason : null);
        }

        if (_clientToken.IsCancellationRequested || error is ForwarderError.RequestBodyClient or ForwarderError.ResponseBodyClient
            or ForwarderError.UpgradeRequestClient or ForwarderError.UpgradeResponseClient)
        {
            // The client's doing: neither the endpoint's fault nor worth another try.
            return new AttemptOutcome(AttemptKind.Error, error, status, false, false, null);
        }

        if (RouteTimedOut)
        {
            return new AttemptOutcome(AttemptKind.Error, error, status, true, false, null);
        }

        string? reason;
        bool wanted;
        if (tryTimedOut)
        {
            reason = RetryConditions.PerTryTimeout;
            wanted = _retry is not null && (_retry.Reset || _retry.RetriesStatus(504));
        }
        else if (error == ForwarderError.Request)
        {
            // Both clients put the cause on IForwarderErrorFeature: a failed connect is an HttpRequestException
            // with ConnectionError, anything else after connecting is a reset.
            var connect = IsConnectFailure(_context);
            if (connect is { } known)
            {
                reason = known ? RetryConditions.ConnectFailure : RetryConditions.Reset;
                wanted = _retry is not null && (known ? _retry.ConnectFailure : _retry.Reset);
            }
            else
            {
                reason = _retry?.ConnectFailure == true ? RetryConditions.ConnectFailure : RetryConditions.Reset;
                wanted = _retry is not null && (_retry.ConnectFailure || _retry.Reset);
            }
        }
        else if (error == ForwarderError.RequestTimedOut)
        {
            reason = "504";
            wanted = _retry is not null && (_retry.Reset || _retry.RetriesStatus(504));
        }
        else if (error == ForwarderError.RequestBodyDestination)
        {
            reason = RetryConditions.Reset;
            wanted = _retry?.Reset == true;
        }
        else
        {
            // Failures after the response began (or of upgrades) cannot be retried.
            return new AttemptOutcome(AttemptKind.Error, error, status, true, false, null);
        }

        var again = wanted && !response.HasStarted && CanRetry(safe: IsConnectFailure(_context) == true);
        return new AttemptOutcome(AttemptKind.Error, error, status, true, again, reason);
    }

    /// <summary>
    /// Asked by the gate when the response is about to start, and after a try that answered without a
    /// body: true holds the response back for a retry (the budget is taken now).
    /// </summary>
    public bool HoldResponse()
    {
        var retry = _retry;
        if (retry is null)
        {
            return false;
        }

        var response = _context.Response;
        string? reason = null;
        var grpc = false;
        if (retry.RetriesStatus(response.StatusCode))
        {
            reason = StatusReasons[response.StatusCode];
        }
        else if (_isGrpc && response.Headers["grpc-status"] is { Count: 1 } value
            && int.TryParse(value[0], NumberStyles.None, CultureInfo.InvariantCulture, out var code) && retry.RetriesGrpc(code))
        {
            reason = GrpcReason(code);
            grpc = true;
        }

        if (reason is null || !CanRetry(safe: grpc))
        {
            return false;
        }

        _heldReason = reason;
        return true;
    }

    /// <summary>Whether one more try may go: attempts left, method, body, deadline, then the budget (taken here).</summary>
    private bool CanRetry(bool safe)
    {
        var retry = _retry;
        if (retry is null || _attempt >= retry.Options.Attempts || RequestToken.IsCancellationRequested)
        {
            return false;
        }

        // gRPC calls are POSTs; as in gRPC's own retry policy, a listed status (or a refused connect) is safe to retry.
        if (!retry.Options.NonIdempotent && !IsIdempotent(_context.Request.Method) && !(_isGrpc && safe))
        {
            return false;
        }

        if (!_bodyReplayable || _replay is { Replayable: false })
        {
            return false;
        }

        if (!retry.Budget.TryRetry())
        {
            _owner.Metrics.BudgetExhausted(_cluster.Name);
            return false;
        }

        return true;
    }

    private EndpointState? PickNext()
    {
        var balancer = _subset is null ? _cluster.Balancer : _cluster.SubsetBalancer(_subset);
        var endpoints = balancer.Endpoints;
        var picked = balancer.Pick(_cluster.HashKey?.Compute(_context));
        if (picked is null || !Tried(picked))
        {
            return picked;
        }

        // Each retry goes to an endpoint not tried yet, while there is one.
        var start = Array.IndexOf(endpoints, picked);
        for (var i = 1; i < endpoints.Length; i++)
        {
            var other = endpoints[(start + i) % endpoints.Length];
            if (!Tried(other))
            {
                return other;
            }
        }

        return picked;
    }

    private bool Tried(EndpointState endpoint) => ReferenceEquals(endpoint, _first) || (_tried is not null && Array.IndexOf(_tried, endpoint) >= 0);

    // The first try's endpoint is a field; the array is made only when a retry happens.
    private void Remember(EndpointState endpoint)
    {
        if (_attempt == 0 || _retry is null)
        {
            return;
        }

        _tried ??= new EndpointState[_retry.Options.Attempts];
        if (_attempt - 1 < _tried.Length)
        {
            _tried[_attempt - 1] = endpoint;
        }
    }

    private void ResetResponse()
    {
        var context = _context;
        context.Response.Clear();
        if (context.Features.Get<IHttpResponseTrailersFeature>() is { Trailers: { IsReadOnly: false, Count: > 0 } trailers })
        {
            trailers.Clear();
        }

        context.Features.Set<IForwarderErrorFeature>(null);
    }

    private void PrepareBody(bool retrying)
    {
        var request = _context.Request;
        if (_context.Features.Get<IHttpRequestBodyDetectionFeature>() is { CanHaveBody: false } || request.ContentLength == 0)
        {
            return;
        }

        var limit = Math.Max(retrying ? _retry!.Options.MaxBodyBytes : 0, _mirror ? MirrorSender.MaxBodyBytes : 0);
        if (limit == 0 || request.ContentLength > limit)
        {
            // Not kept (too large, or no policy needs it): it streams as usual and no try is repeated.
            _bodyReplayable = false;
            _bodyNotKept = true;
            return;
        }

        _replay = new ReplayableBody(request.Body, limit, request.ContentLength);
        if (retrying && _retry!.Options.MaxBodyBytes < limit && request.ContentLength > _retry.Options.MaxBodyBytes)
        {
            _bodyReplayable = false;
        }
    }

    private void StartDeadline()
    {
        var timeout = _policy?.TimeoutMs ?? 0;
        if (timeout > 0 && _isGrpc && GrpcTimeout.Parse(_context.Request.Headers["grpc-timeout"]) is { } grpc && grpc < timeout)
        {
            timeout = grpc;
        }

        _timeoutMs = timeout;
        if (timeout > 0)
        {
            _deadline = new CancellationTokenSource(TimeSpan.FromMilliseconds(timeout), _owner.Clock.Time);
            _deadlineLink = _clientToken.UnsafeRegister(static s => ((CancellationTokenSource)s!).Cancel(), _deadline);
            InstallLifetime();
        }
    }

    private void StartTryDeadline()
    {
        if (_retry is not { Options.PerTryTimeoutMs: > 0 } retry)
        {
            return;
        }

        _tryDeadline = new CancellationTokenSource(TimeSpan.FromMilliseconds(retry.Options.PerTryTimeoutMs), _owner.Clock.Time);
        _tryLink = RequestToken.UnsafeRegister(static s => ((CancellationTokenSource)s!).Cancel(), _tryDeadline);
        InstallLifetime();
    }

    private void StopTryDeadline()
    {
        if (_tryDeadline is not null)
        {
            _tryLink.Dispose();
            _tryDeadline.Dispose();
            _tryDeadline = null;
        }
    }

    private void InstallLifetime()
    {
        if (!_timeoutInstalled)
        {
            _ = Lifetime;
            _timeoutInstalled = true;
            _context.Features.Set<IHttpRequestLifetimeFeature>(this);
        }
    }

    public void Dispose()
    {
        // A send that threw never reached EndSend.
        LeaveEndpoint(failed: true);
        if (_mirror)
        {
            // The copy goes once the client's exchange is over (the body is whole by then, or was not kept).
            _mirror = false;
            _owner.Mirror(_context, _state, _route, _replay, _bodyNotKept);
        }

        if (_timeoutInstalled)
        {
            _context.Features.Set(Lifetime);
        }

        StopTryDeadline();
        if (_deadline is not null)
        {
            _deadlineLink.Dispose();
            _deadline.Dispose();
        }

        _gate?.Dispose();
        _replay?.Dispose();
    }

    private static bool IsIdempotent(string method) =>
        HttpMethods.IsGet(method) || HttpMethods.IsHead(method) || HttpMethods.IsOptions(method) || HttpMethods.IsPut(method)
        || HttpMethods.IsDelete(method) || HttpMethods.IsTrace(method);

    /// <summary>True for a refused or timed-out connect, false for another failure, null when the path cannot tell.</summary>
    private static bool? IsConnectFailure(HttpContext context)
    {
        if (context.Features.Get<IForwarderErrorFeature>()?.Exception is not { } exception)
        {
            return null;
        }

        for (var ex = exception; ex is not null; ex = ex.InnerException)
        {
            if (ex is HttpRequestException { HttpRequestError: HttpRequestError.ConnectionError or HttpRequestError.NameResolutionError }
                || ex is SocketException { SocketErrorCode: SocketError.ConnectionRefused or SocketError.HostUnreachable or SocketError.NetworkUnreachable or SocketError.TimedOut })
            {
                return true;
            }
        }

        return false;
    }

    private static string GrpcReason(int code) => code < GrpcReasons.Length ? GrpcReasons[code] : "grpc-" + code.ToString(CultureInfo.InvariantCulture);

    private static string[] BuildGrpcReasons()
    {
        var reasons = new string[17];
        foreach (var (name, value) in RetryConditions.GrpcStatuses)
        {
            reasons[value] = "grpc-" + name;
        }

        reasons[0] = "grpc-ok";
        return reasons;
    }

    private static string[] BuildStatusReasons()
    {
        var reasons = new string[600];
        for (var i = 100; i < reasons.Length; i++)
        {
            reasons[i] = i.ToString(CultureInfo.InvariantCulture);
        }

        return reasons;
    }
}
