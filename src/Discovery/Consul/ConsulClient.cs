// A small typed Consul HTTP API client on HttpClient and source-generated System.Text.Json, with Polly retries.
using System.Globalization;
using System.Net;
using System.Net.Http.Json;
using System.Net.Security;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization.Metadata;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Polly;
using Polly.Retry;

namespace Mesh.Discovery.Consul;

/// <summary>
/// The Consul calls Mesh needs: agent service and check registration, TTL updates, health and
/// catalog reads with blocking queries, Connect CA roots and leaf certificates, and authorize.
/// Transient failures (no connection, timeouts, 429, 5xx) are retried with jittered exponential
/// backoff; other failures throw <see cref="ConsulException"/> at once. Thread-safe.
/// </summary>
public sealed partial class ConsulClient : IDisposable
{
    private const string IndexHeader = "X-Consul-Index";
    private readonly ConsulClientOptions _options;
    private readonly HttpClient _http;
    private readonly ConsulToken _token;
    private readonly ResiliencePipeline _pipeline;
    private readonly ILogger _logger;

    /// <summary>Creates a client; loads the TLS files named in <paramref name="options"/> at once.</summary>
    /// <exception cref="ConsulException">A CA, certificate or key file cannot be loaded.</exception>
    public ConsulClient(ConsulClientOptions options, ILogger? logger = null, TimeProvider? timeProvider = null)
        : this(options, CreateHandler(options), logger, timeProvider)
    {
    }

    internal ConsulClient(ConsulClientOptions options, HttpMessageHandler handler, ILogger? logger, TimeProvider? timeProvider)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(handler);
        _options = options;
        _logger = logger ?? NullLogger.Instance;
        _http = new HttpClient(handler) { Timeout = Timeout.InfiniteTimeSpan };
        _token = new ConsulToken(options.Token, options.TokenFile);
        _pipeline = CreatePipeline(this, options, timeProvider ?? TimeProvider.System, _logger);
    }

    /// <summary>Raised before each retry with the attempt number and the backoff delay (tests watch it).</summary>
    internal event Action<int, TimeSpan>? Retrying;

    /// <summary>The options this client was made with.</summary>
    public ConsulClientOptions Options => _options;

    /// <summary><c>PUT /v1/agent/service/register</c>.</summary>
    public Task RegisterServiceAsync(AgentServiceRegistration registration, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(registration);
        return SendAsync(HttpMethod.Put, "/v1/agent/service/register", () => JsonContent.Create(registration, ConsulJsonContext.Default.AgentServiceRegistration), cancellationToken);
    }

    /// <summary>
    /// <c>PUT /v1/agent/service/deregister/:service_id</c>. An ID the agent does not know (404) counts as
    /// done: the point is that the service is gone.
    /// </summary>
    public async Task DeregisterServiceAsync(string serviceId, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(serviceId);
        var path = "/v1/agent/service/deregister/" + Uri.EscapeDataString(serviceId);
        await CallAsync(HttpMethod.Put, path, null, _options.RequestTimeout, async (response, ct) =>
        {
            if (response.StatusCode != HttpStatusCode.NotFound)
            {
                await EnsureSuccessAsync(response, "PUT " + path, ct).ConfigureAwait(false);
            }

            return true;
        }, cancellationToken).ConfigureAwait(false);
    }

    /// <summary><c>GET /v1/agent/service/:service_id</c>; null when the agent does not know the ID (404).</summary>
    public async Task<AgentService?> GetAgentServiceAsync(string serviceId, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(serviceId);
        var path = "/v1/agent/service/" + Uri.EscapeDataString(serviceId);
        return await CallAsync(HttpMethod.Get, path, null, _options.RequestTimeout, (response, ct) =>
            response.StatusCode == HttpStatusCode.NotFound
                ? ValueTask.FromResult<AgentService?>(null)
                : ReadAsync<AgentService?>(response, ConsulJsonContext.Default.AgentService!, "GET " + path, ct), cancellationToken).ConfigureAwait(false);
    }

    /// <summary><c>GET /v1/agent/services</c>: the agent's services by ID.</summary>
    public async Task<IReadOnlyDictionary<string, AgentService>> GetAgentServicesAsync(CancellationToken cancellationToken = default)
    {
        const string path = "/v1/agent/services";
        return await CallAsync(HttpMethod.Get, path, null, _options.RequestTimeout, (response, ct) =>
            ReadAsync(response, ConsulJsonContext.Default.DictionaryStringAgentService, "GET " + path, ct), cancellationToken).ConfigureAwait(false);
    }

    /// <summary><c>PUT /v1/agent/check/register</c>.</summary>
    public Task RegisterCheckAsync(AgentCheckRegistration check, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(check);
        return SendAsync(HttpMethod.Put, "/v1/agent/check/register", () => JsonContent.Create(check, ConsulJsonContext.Default.AgentCheckRegistration), cancellationToken);
    }

    /// <summary><c>PUT /v1/agent/check/deregister/:check_id</c>.</summary>
    public Task DeregisterCheckAsync(string checkId, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(checkId);
        return SendAsync(HttpMethod.Put, "/v1/agent/check/deregister/" + Uri.EscapeDataString(checkId), null, cancellationToken);
    }

    /// <summary>
    /// Sets a TTL check's status and resets its TTL clock: <c>PUT /v1/agent/check/update/:check_id</c>
    /// with <c>{"Status","Output"}</c>.
    /// </summary>
    public Task UpdateTtlAsync(string checkId, string status, string? output = null, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(checkId);
        ArgumentException.ThrowIfNullOrEmpty(status);
        var update = new CheckUpdate { Status = status, Output = output };
        return SendAsync(HttpMethod.Put, "/v1/agent/check/update/" + Uri.EscapeDataString(checkId), () => JsonContent.Create(update, ConsulJsonContext.Default.CheckUpdate), cancellationToken);
    }

    /// <summary><c>PUT /v1/agent/check/pass/:check_id</c> with an optional note.</summary>
    public Task PassTtlAsync(string checkId, string? note = null, CancellationToken cancellationToken = default) =>
        TtlAsync("pass", checkId, note, cancellationToken);

    /// <summary><c>PUT /v1/agent/check/warn/:check_id</c> with an optional note.</summary>
    public Task WarnTtlAsync(string checkId, string? note = null, CancellationToken cancellationToken = default) =>
        TtlAsync("warn", checkId, note, cancellationToken);

    /// <summary><c>PUT /v1/agent/check/fail/:check_id</c> with an optional note.</summary>
    public Task FailTtlAsync(string checkId, string? note = null, CancellationToken cancellationToken = default) =>
        TtlAsync("fail", checkId, note, cancellationToken);

    /// <summary>
    /// <c>GET /v1/health/service/:service</c>: the instances of <paramref name="service"/> with their
    /// checks; only instances whose every check passes when <paramref name="passingOnly"/>.
    /// Blocks when <paramref name="query"/> carries an index.
    /// </summary>
    public Task<QueryResult<List<ServiceEntry>>> HealthServiceAsync(string service, bool passingOnly, string? tag, QueryOptions query, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(service);
        var path = new StringBuilder("/v1/health/service/").Append(Uri.EscapeDataString(service));
        var separator = '?';
        if (passingOnly)
        {
            path.Append(separator).Append("passing=true");
            separator = '&';
        }

        if (!string.IsNullOrEmpty(tag))
        {
            path.Append(separator).Append("tag=").Append(Uri.EscapeDataString(tag));
        }

        return QueryAsync(path.ToString(), ConsulJsonContext.Default.ListServiceEntry, query, cancellationToken);
    }

    /// <summary><c>GET /v1/catalog/services</c>: every service name with its tags.</summary>
    public Task<QueryResult<Dictionary<string, List<string>>>> CatalogServicesAsync(QueryOptions query, CancellationToken cancellationToken = default) =>
        QueryAsync("/v1/catalog/services", ConsulJsonContext.Default.DictionaryStringListString, query, cancellationToken);

    /// <summary><c>GET /v1/catalog/service/:service</c>: the instances of a service, health not considered.</summary>
    public Task<QueryResult<List<CatalogService>>> CatalogServiceAsync(string service, QueryOptions query, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(service);
        return QueryAsync("/v1/catalog/service/" + Uri.EscapeDataString(service), ConsulJsonContext.Default.ListCatalogService, query, cancellationToken);
    }

    /// <summary><c>GET /v1/agent/connect/ca/roots</c>: the Connect CA roots to trust (blocking).</summary>
    public Task<QueryResult<CaRootList>> ConnectCaRootsAsync(QueryOptions query, CancellationToken cancellationToken = default) =>
        QueryAsync("/v1/agent/connect/ca/roots", ConsulJsonContext.Default.CaRootList, query, cancellationToken, datacenter: false);

    /// <summary>
    /// <c>GET /v1/agent/connect/ca/leaf/:service</c>: a certificate and key for <paramref name="service"/>;
    /// with an index, blocks until the agent rotates it.
    /// </summary>
    public Task<QueryResult<LeafCert>> ConnectLeafAsync(string service, QueryOptions query, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(service);
        return QueryAsync("/v1/agent/connect/ca/leaf/" + Uri.EscapeDataString(service), ConsulJsonContext.Default.LeafCert, query, cancellationToken, datacenter: false);
    }

    /// <summary><c>POST /v1/agent/connect/authorize</c>: may the caller with this certificate connect to <c>Target</c>?</summary>
    public async Task<AuthorizeResponse> AuthorizeAsync(AuthorizeRequest request, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        const string path = "/v1/agent/connect/authorize";
        return await CallAsync(HttpMethod.Post, path, () => JsonContent.Create(request, ConsulJsonContext.Default.AuthorizeRequest), _options.RequestTimeout, (response, ct) =>
            ReadAsync(response, ConsulJsonContext.Default.AuthorizeResponse, "POST " + path, ct), cancellationToken).ConfigureAwait(false);
    }

    /// <inheritdoc />
    public void Dispose() => _http.Dispose();

    private Task TtlAsync(string verb, string checkId, string? note, CancellationToken cancellationToken)
    {
        ArgumentException.ThrowIfNullOrEmpty(checkId);
        var path = $"/v1/agent/check/{verb}/{Uri.EscapeDataString(checkId)}";
        if (!string.IsNullOrEmpty(note))
        {
            path += "?note=" + Uri.EscapeDataString(note);
        }

        return SendAsync(HttpMethod.Put, path, null, cancellationToken);
    }

    private async Task SendAsync(HttpMethod method, string path, Func<HttpContent>? body, CancellationToken cancellationToken) =>
        await CallAsync(method, path, body, _options.RequestTimeout, static async (response, ct) =>
        {
            await EnsureSuccessAsync(response, $"{response.RequestMessage?.Method} {response.RequestMessage?.RequestUri?.PathAndQuery}", ct).ConfigureAwait(false);
            return true;
        }, cancellationToken).ConfigureAwait(false);

    private async Task<QueryResult<T>> QueryAsync<T>(string path, JsonTypeInfo<T> type, QueryOptions query, CancellationToken cancellationToken, bool datacenter = true)
    {
        var url = new StringBuilder(path);
        var separator = path.Contains('?', StringComparison.Ordinal) ? '&' : '?';
        if (datacenter && _options.Datacenter.Length > 0)
        {
            url.Append(separator).Append("dc=").Append(Uri.EscapeDataString(_options.Datacenter));
            separator = '&';
        }

        var timeout = _options.RequestTimeout;
        if (query.Index > 0)
        {
            var wait = query.Wait ?? _options.Wait;
            url.Append(separator).Append("index=").Append(query.Index.ToString(CultureInfo.InvariantCulture))
                .Append("&wait=").Append(ConsulDuration.Format(wait));
            // The agent may hold the request for wait plus up to wait/16 of jitter.
            timeout += wait + (wait / 16);
        }

        var pathAndQuery = url.ToString();
        return await CallAsync(HttpMethod.Get, pathAndQuery, null, timeout, async (response, ct) =>
        {
            var value = await ReadAsync(response, type, "GET " + pathAndQuery, ct).ConfigureAwait(false);
            var index = response.Headers.TryGetValues(IndexHeader, out var values)
                && ulong.TryParse(values.FirstOrDefault(), NumberStyles.None, CultureInfo.InvariantCulture, out var parsed) ? parsed : 0;
            var knownLeader = !response.Headers.TryGetValues("X-Consul-KnownLeader", out var leader) || !string.Equals(leader.FirstOrDefault(), "false", StringComparison.OrdinalIgnoreCase);
            return new QueryResult<T>(value, index, knownLeader);
        }, cancellationToken).ConfigureAwait(false);
    }

    private async Task<T> CallAsync<T>(HttpMethod method, string pathAndQuery, Func<HttpContent>? body, TimeSpan timeout, Func<HttpResponseMessage, CancellationToken, ValueTask<T>> read, CancellationToken cancellationToken)
    {
        var state = (Client: this, Method: method, Path: pathAndQuery, Body: body, Timeout: timeout, Read: read);
        return await _pipeline.ExecuteAsync(static async (s, token) =>
        {
            using var attempt = CancellationTokenSource.CreateLinkedTokenSource(token);
            attempt.CancelAfter(s.Timeout);
            var what = $"{s.Method} {s.Client._options.Address.GetLeftPart(UriPartial.Authority)}{s.Path}";
            using var request = new HttpRequestMessage(s.Method, new Uri(s.Client._options.Address, s.Path)) { Content = s.Body?.Invoke() };
            var aclToken = s.Client._token.Current();
            if (aclToken.Length > 0)
            {
                request.Headers.TryAddWithoutValidation("X-Consul-Token", aclToken);
            }

            try
            {
                using var response = await s.Client._http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, attempt.Token).ConfigureAwait(false);
                return await s.Read(response, attempt.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException ex) when (!token.IsCancellationRequested)
            {
                throw new ConsulException($"{what}: no answer within {s.Timeout.TotalSeconds:0.###} s", null, isTransient: true, ex);
            }
            catch (HttpRequestException ex)
            {
                throw new ConsulException($"{what}: {ex.Message}", null, isTransient: true, ex);
            }
            catch (IOException ex)
            {
                throw new ConsulException($"{what}: {ex.Message}", null, isTransient: true, ex);
            }
        }, state, cancellationToken).ConfigureAwait(false);
    }

    private static async ValueTask<T> ReadAsync<T>(HttpResponseMessage response, JsonTypeInfo<T> type, string path, CancellationToken cancellationToken)
    {
        await EnsureSuccessAsync(response, path, cancellationToken).ConfigureAwait(false);
        try
        {
            var stream = await response.Content.ReadAsStreamAsync(cancellationToken).ConfigureAwait(false);
            await using (stream.ConfigureAwait(false))
            {
                var value = await JsonSerializer.DeserializeAsync(stream, type, cancellationToken).ConfigureAwait(false);
                return value ?? throw new ConsulException($"{path}: the agent answered null", response.StatusCode);
            }
        }
        catch (JsonException ex)
        {
            throw new ConsulException($"{path}: malformed answer from the agent: {ex.Message}", response.StatusCode, isTransient: false, ex);
        }
    }

    private static async Task EnsureSuccessAsync(HttpResponseMessage response, string path, CancellationToken cancellationToken)
    {
        if (response.IsSuccessStatusCode)
        {
            return;
        }

        var body = await response.Content.ReadAsStringAsync(cancellationToken).ConfigureAwait(false);
        if (body.Length > 200)
        {
            body = body[..200];
        }

        var status = (int)response.StatusCode;
        // 429: another server could answer; 5xx: none can now (rate limits, no leader); both retry later.
        var transient = status == 429 || status >= 500;
        throw new ConsulException($"{path}: the agent answered {status} {response.ReasonPhrase}: {body.Trim()}", response.StatusCode, transient);
    }

    private static ResiliencePipeline CreatePipeline(ConsulClient client, ConsulClientOptions options, TimeProvider timeProvider, ILogger logger)
    {
        var builder = new ResiliencePipelineBuilder { TimeProvider = timeProvider };
        if (options.MaxRetryAttempts > 0)
        {
            builder.AddRetry(new RetryStrategyOptions
            {
                ShouldHandle = new PredicateBuilder().Handle<ConsulException>(e => e.IsTransient),
                MaxRetryAttempts = options.MaxRetryAttempts,
                BackoffType = DelayBackoffType.Exponential,
                UseJitter = true,
                Delay = options.RetryDelay,
                MaxDelay = options.MaxRetryDelay,
                OnRetry = args =>
                {
                    Log.Retrying(logger, args.AttemptNumber + 1, args.RetryDelay.TotalMilliseconds, args.Outcome.Exception?.Message ?? "");
                    client.Retrying?.Invoke(args.AttemptNumber + 1, args.RetryDelay);
                    return default;
                },
            });
        }

        return builder.Build();
    }

    private static SocketsHttpHandler CreateHandler(ConsulClientOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var handler = new SocketsHttpHandler
        {
            UseProxy = false,
            ConnectTimeout = options.ConnectTimeout,
            PooledConnectionIdleTimeout = TimeSpan.FromSeconds(90),
            // Each blocking query holds a connection; watches must not queue behind each other.
            MaxConnectionsPerServer = int.MaxValue,
        };
        try
        {
            if (options.CaFile.Length > 0)
            {
                var roots = new X509Certificate2Collection();
                roots.ImportFromPemFile(options.CaFile);
                if (roots.Count == 0)
                {
                    throw new ConsulException($"the Consul CA file {options.CaFile} holds no PEM certificate");
                }

                handler.SslOptions.RemoteCertificateValidationCallback = (_, certificate, _, errors) => TrustedByRoots(certificate, errors, roots);
            }

            if (options.CertificateFile.Length > 0)
            {
                var certificate = X509Certificate2.CreateFromPemFile(options.CertificateFile, options.KeyFile.Length > 0 ? options.KeyFile : null);
                handler.SslOptions.ClientCertificates = [certificate];
            }
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or System.Security.Cryptography.CryptographicException or ArgumentException or ConsulException)
        {
            handler.Dispose();
            throw new ConsulException($"cannot load the TLS files for the Consul agent: {ex.Message}", ex);
        }

        return handler;
    }

    // The agent's certificate must chain to the configured CA bundle (not the system store) and match the host name.
    private static bool TrustedByRoots(X509Certificate? certificate, SslPolicyErrors errors, X509Certificate2Collection roots)
    {
        if (certificate is null || (errors & ~SslPolicyErrors.RemoteCertificateChainErrors) != SslPolicyErrors.None)
        {
            return false;
        }

        using var chain = new X509Chain();
        chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        chain.ChainPolicy.CustomTrustStore.AddRange(roots);
        chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        using var leaf = X509CertificateLoader.LoadCertificate(certificate.GetRawCertData());
        return chain.Build(leaf);
    }

    private static partial class Log
    {
        [LoggerMessage(5001, LogLevel.Debug, "Consul call failed, attempt {Attempt} in {DelayMs:0} ms: {Reason}")]
        public static partial void Retrying(ILogger logger, int attempt, double delayMs, string reason);
    }
}
