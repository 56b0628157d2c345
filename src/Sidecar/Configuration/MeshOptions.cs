// The sidecar's whole configuration as immutable records, bound from sidecar.json, MESH__ variables and the command line.
namespace Mesh.Sidecar.Configuration;

/// <summary>Root of the configuration file.</summary>
public sealed record MeshOptions
{
    /// <summary>The local service this sidecar runs beside.</summary>
    public LocalServiceOptions Service { get; init; } = new();

    /// <summary>Where the admin listener binds.</summary>
    public AdminOptions Admin { get; init; } = new();

    /// <summary>Sockets the sidecar accepts traffic on.</summary>
    public IReadOnlyList<ListenerOptions> Listeners { get; init; } = [];

    /// <summary>Ordered routes; the first match wins.</summary>
    public IReadOnlyList<RouteOptions> Routes { get; init; } = [];

    /// <summary>Upstream services by name.</summary>
    public IReadOnlyDictionary<string, ServiceOptions> Services { get; init; } = new Dictionary<string, ServiceOptions>();

    /// <summary>Log level and access log.</summary>
    public LoggingOptions Logging { get; init; } = new();

    /// <summary>Process-level speed settings (read at start only).</summary>
    public PerformanceOptions Performance { get; init; } = new();

    /// <summary>How SIGTERM and Ctrl-C drain before the process exits.</summary>
    public ShutdownOptions Shutdown { get; init; } = new();

    /// <summary>C# plugin loading.</summary>
    public PluginsOptions Plugins { get; init; } = new();

    /// <summary>JavaScript filters: their directory and per-call limits.</summary>
    public JsFiltersOptions JsFilters { get; init; } = new();

    /// <summary>This sidecar's SPIFFE identity and certificate source (mTLS).</summary>
    public IdentityOptions Identity { get; init; } = new();

    /// <summary>Who may call the local app through inbound listeners.</summary>
    public AuthorizationOptions Authorization { get; init; } = new();

    /// <summary>The local Consul agent (discovery and registration); null when the file has no <c>consul</c> block.</summary>
    public ConsulOptions? Consul { get; init; }
}

/// <summary>The local application that inbound traffic is delivered to.</summary>
public sealed record LocalServiceOptions
{
    /// <summary>Service name the sidecar represents (for example <c>web</c>).</summary>
    public string Name { get; init; } = "";

    /// <summary>Instance id; defaults to the name.</summary>
    public string? Id { get; init; }

    /// <summary>Address of the local application.</summary>
    public string Address { get; init; } = "127.0.0.1";

    /// <summary>Port of the local application; 0 when it has no inbound traffic.</summary>
    public int Port { get; init; }

    /// <summary>HTTP version spoken to the local app (<c>http1</c> or <c>http2</c>).</summary>
    public string Protocol { get; init; } = UpstreamProtocols.Http1;

    /// <summary>
    /// TLS to the local app: <c>off</c> (default, plaintext on the host) or <c>tls</c> (with <c>caFile</c>,
    /// <c>serverName</c> and an optional client certificate, as for a service). <c>mesh</c> is for peer sidecars.
    /// </summary>
    public UpstreamTlsOptions Tls { get; init; } = new();
}

/// <summary>The admin listener (health, readiness, config, clusters, metrics).</summary>
public sealed record AdminOptions
{
    /// <summary>Bind address; loopback unless set otherwise.</summary>
    public string Address { get; init; } = "127.0.0.1";

    /// <summary>Bind port; 0 picks a free port.</summary>
    public int Port { get; init; } = 19000;
}

/// <summary>One listening socket.</summary>
public sealed record ListenerOptions
{
    /// <summary>Unique name; routes refer to it.</summary>
    public string Name { get; init; } = "";

    /// <summary>Bind address.</summary>
    public string Address { get; init; } = "127.0.0.1";

    /// <summary>Bind port; 0 picks a free port.</summary>
    public int Port { get; init; }

    /// <summary><c>inbound</c> (peers to the local app) or <c>outbound</c> (the local app to upstreams).</summary>
    public string Direction { get; init; } = Directions.Outbound;

    /// <summary>Listener protocol: <c>http</c>, <c>tcp</c>, <c>tls-passthrough</c>, <c>udp</c> or <c>auto</c>.</summary>
    public string Protocol { get; init; } = ListenerProtocols.Http;

    /// <summary>
    /// L4 target: the service of a <c>tcp</c> or <c>udp</c> listener, the fall-through of <c>auto</c>
    /// for traffic that is neither TLS nor HTTP, and the default of <c>tls-passthrough</c> when no SNI route matches.
    /// </summary>
    public string? Service { get; init; }

    /// <summary>TCP settings for <c>tcp</c>, <c>tls-passthrough</c> and the L4 side of <c>auto</c>.</summary>
    public TcpListenerOptions Tcp { get; init; } = new();

    /// <summary>SNI routing for <c>tls-passthrough</c> and the TLS side of <c>auto</c>.</summary>
    public TlsPassthroughOptions Tls { get; init; } = new();

    /// <summary>UDP settings for <c>udp</c>.</summary>
    public UdpListenerOptions Udp { get; init; } = new();

    /// <summary>
    /// <c>auto</c> only: how long to wait for the client's first bytes before treating the
    /// connection as a server-first protocol and sending it to <see cref="Service"/>.
    /// </summary>
    public int DetectTimeoutMs { get; init; } = 100;

    /// <summary>Connection filters run at accept, in order; the first deny closes the connection.</summary>
    public IReadOnlyList<FilterOptions> ConnectionFilters { get; init; } = [];

    /// <summary>Inbound <c>http</c> and <c>tcp</c> listeners: <c>off</c>, <c>strict</c> or <c>permissive</c> mTLS from peer sidecars.</summary>
    public string Mtls { get; init; } = MtlsModes.Off;
}

/// <summary>Per-connection TCP proxy settings.</summary>
public sealed record TcpListenerOptions
{
    /// <summary>Time allowed to connect to one endpoint before trying another.</summary>
    public int ConnectTimeoutMs { get; init; } = 5000;

    /// <summary>A connection with no bytes either way for this long is closed; 0 disables.</summary>
    public int IdleTimeoutMs { get; init; } = 3_600_000;

    /// <summary>Open connections allowed on the listener; 0 means no limit. Past it, new connections are refused at once.</summary>
    public int MaxConnections { get; init; }
}

/// <summary>TLS passthrough: route by the ClientHello's server name without terminating TLS.</summary>
public sealed record TlsPassthroughOptions
{
    /// <summary>Ordered SNI routes; the first whose server names (and ALPN, when given) match wins.</summary>
    public IReadOnlyList<SniRouteOptions> Routes { get; init; } = [];

    /// <summary>A ClientHello without SNI: <c>default</c> (the listener's service) or <c>refuse</c>.</summary>
    public string NoSni { get; init; } = NoSniActions.Default;

    /// <summary>How long to wait for a whole ClientHello.</summary>
    public int PeekTimeoutMs { get; init; } = 5000;

    /// <summary><c>http</c> listeners: edge certificates, chosen by SNI, that terminate TLS for ordinary clients.</summary>
    public IReadOnlyList<ServerCertificateOptions> Certificates { get; init; } = [];
}

/// <summary>One SNI route.</summary>
public sealed record SniRouteOptions
{
    /// <summary>Route name, for metrics.</summary>
    public string Name { get; init; } = "";

    /// <summary>Exact names, <c>*.suffix</c> wildcards, or <c>*</c>.</summary>
    public IReadOnlyList<string> ServerNames { get; init; } = [];

    /// <summary>When set, one of these ALPN protocols must be offered.</summary>
    public IReadOnlyList<string> Alpn { get; init; } = [];

    /// <summary>Target service.</summary>
    public string Service { get; init; } = "";
}

/// <summary>UDP proxy settings.</summary>
public sealed record UdpListenerOptions
{
    /// <summary>A flow (client address and port) with no datagrams either way for this long is forgotten.</summary>
    public int FlowIdleTimeoutMs { get; init; } = 60_000;

    /// <summary>Most flows at once; datagrams of new flows past it are dropped and counted.</summary>
    public int MaxFlows { get; init; } = 65_536;
}

/// <summary>What a TLS passthrough listener does with a ClientHello that names no server.</summary>
public static class NoSniActions
{
    /// <summary>Send it to the listener's service.</summary>
    public const string Default = "default";

    /// <summary>Close the connection.</summary>
    public const string Refuse = "refuse";
}

/// <summary>One route: a match and the service it sends to.</summary>
public sealed record RouteOptions
{
    /// <summary>Unique name, used in metrics.</summary>
    public string Name { get; init; } = "";

    /// <summary>Listeners the route applies to; empty means every outbound listener.</summary>
    public IReadOnlyList<string> Listeners { get; init; } = [];

    /// <summary>What a request must look like.</summary>
    public RouteMatchOptions Match { get; init; } = new();

    /// <summary>Target service; on an inbound listener, empty means the local app.</summary>
    public string? Service { get; init; }

    /// <summary>Header and path changes applied when this route is taken.</summary>
    public TransformOptions Transforms { get; init; } = new();

    /// <summary>Time allowed to the whole request, every try included; 0 means none. A shorter gRPC <c>grpc-timeout</c> wins.</summary>
    public int TimeoutMs { get; init; }

    /// <summary>Token-bucket rate limit; excess requests get 429 with <c>Retry-After</c>.</summary>
    public RateLimitOptions? RateLimit { get; init; }

    /// <summary>Weighted targets used instead of <see cref="Service"/> (canary releases).</summary>
    public IReadOnlyList<SplitOptions>? Split { get; init; }

    /// <summary>A shadow service that gets a copy of requests; its answers never reach the client.</summary>
    public MirrorOptions? Mirror { get; init; }

    /// <summary>Fault injection for testing.</summary>
    public FaultOptions? Fault { get; init; }

    /// <summary>Request filters run in order before the request is forwarded.</summary>
    public IReadOnlyList<FilterOptions> Filters { get; init; } = [];
}

/// <summary>Conditions that must all hold for a route to match.</summary>
public sealed record RouteMatchOptions
{
    /// <summary>Host names: exact (<c>api.example.com</c>), suffix wildcard (<c>*.example.com</c>) or <c>*</c>.</summary>
    public IReadOnlyList<string> Hosts { get; init; } = [];

    /// <summary>Path condition.</summary>
    public PathMatchOptions? Path { get; init; }

    /// <summary>Allowed methods; empty allows any.</summary>
    public IReadOnlyList<string> Methods { get; init; } = [];

    /// <summary>Header conditions.</summary>
    public IReadOnlyList<ValueMatchOptions> Headers { get; init; } = [];

    /// <summary>Query-string conditions.</summary>
    public IReadOnlyList<ValueMatchOptions> Query { get; init; } = [];

    /// <summary>Cookie conditions.</summary>
    public IReadOnlyList<ValueMatchOptions> Cookies { get; init; } = [];
}

/// <summary>Exactly one of prefix, exact or pattern.</summary>
public sealed record PathMatchOptions
{
    /// <summary>Path starts with this string.</summary>
    public string? Prefix { get; init; }

    /// <summary>Path equals this string.</summary>
    public string? Exact { get; init; }

    /// <summary>Segment pattern: <c>{name}</c> is one segment, <c>{**name}</c> the rest of the path.</summary>
    public string? Pattern { get; init; }
}

/// <summary>A condition on a named header, query parameter or cookie: exactly one of exact, prefix, regex or present.</summary>
public sealed record ValueMatchOptions
{
    /// <summary>Header, parameter or cookie name.</summary>
    public string Name { get; init; } = "";

    /// <summary>Value equals this (case-sensitive).</summary>
    public string? Exact { get; init; }

    /// <summary>Value starts with this (case-sensitive).</summary>
    public string? Prefix { get; init; }

    /// <summary>Value matches this .NET regular expression.</summary>
    public string? Regex { get; init; }

    /// <summary>True: the name must be present; false: it must be absent.</summary>
    public bool? Present { get; init; }
}

/// <summary>Changes applied to a request and its response.</summary>
public sealed record TransformOptions
{
    /// <summary>Path prefix removed before forwarding (for example <c>/api</c>).</summary>
    public string? StripPrefix { get; init; }

    /// <summary>Request header changes.</summary>
    public HeaderTransformOptions RequestHeaders { get; init; } = new();

    /// <summary>Response header changes.</summary>
    public HeaderTransformOptions ResponseHeaders { get; init; } = new();
}

/// <summary>Header set/add/remove lists.</summary>
public sealed record HeaderTransformOptions
{
    /// <summary>Headers set, replacing any value.</summary>
    public IReadOnlyDictionary<string, string> Set { get; init; } = new Dictionary<string, string>();

    /// <summary>Headers appended to any value.</summary>
    public IReadOnlyDictionary<string, string> Add { get; init; } = new Dictionary<string, string>();

    /// <summary>Headers removed.</summary>
    public IReadOnlyList<string> Remove { get; init; } = [];
}

/// <summary>An upstream service: where its endpoints come from and how to balance over them.</summary>
public sealed record ServiceOptions
{
    /// <summary>Discovery provider; <c>static</c> reads <see cref="Endpoints"/>.</summary>
    public string Discovery { get; init; } = "static";

    /// <summary>Endpoints for static discovery.</summary>
    public IReadOnlyList<EndpointOptions> Endpoints { get; init; } = [];

    /// <summary>Load-balancing policy.</summary>
    public LoadBalancingOptions LoadBalancing { get; init; } = new();

    /// <summary>HTTP version spoken upstream: <c>http1</c> (default) or <c>http2</c> (prior knowledge on plaintext).</summary>
    public string Protocol { get; init; } = UpstreamProtocols.Http1;

    /// <summary>Time allowed to open an upstream connection, in milliseconds.</summary>
    public int ConnectTimeoutMs { get; init; } = 5000;

    /// <summary>Longest wait for upstream activity (headers or body), in milliseconds.</summary>
    public int RequestTimeoutMs { get; init; } = 100_000;

    /// <summary>TLS to the endpoints: off, mesh (mTLS to peer sidecars) or tls.</summary>
    public UpstreamTlsOptions Tls { get; init; } = new();

    /// <summary>Retries of failed tries on other endpoints; null means none.</summary>
    public RetryOptions? Retries { get; init; }

    /// <summary>Concurrency limits and per-endpoint failure-ratio breakers; null means none.</summary>
    public CircuitBreakerOptions? CircuitBreaker { get; init; }

    /// <summary>Ejection of endpoints after consecutive failures; null means none.</summary>
    public OutlierDetectionOptions? OutlierDetection { get; init; }

    /// <summary>Active health checks (static discovery only); null means none.</summary>
    public HealthCheckOptions? HealthCheck { get; init; }

    /// <summary>What to read from Consul when <see cref="Discovery"/> is <c>consul</c>.</summary>
    public ConsulServiceOptions? Consul { get; init; }
}

/// <summary>A static endpoint.</summary>
public sealed record EndpointOptions
{
    /// <summary>IP address or host name.</summary>
    public string Address { get; init; } = "";

    /// <summary>Port.</summary>
    public int Port { get; init; }

    /// <summary>Relative weight, at least 1.</summary>
    public int Weight { get; init; } = 1;

    /// <summary>Free-form tags.</summary>
    public IReadOnlyList<string> Tags { get; init; } = [];

    /// <summary>Free-form metadata.</summary>
    public IReadOnlyDictionary<string, string> Metadata { get; init; } = new Dictionary<string, string>();
}

/// <summary>How requests are spread over a service's endpoints.</summary>
public sealed record LoadBalancingOptions
{
    /// <summary>One of <see cref="LoadBalancingPolicies"/>.</summary>
    public string Policy { get; init; } = LoadBalancingPolicies.RoundRobin;

    /// <summary>What consistent hashing hashes; required for <c>consistent-hash</c>.</summary>
    public HashKeyOptions? Hash { get; init; }
}

/// <summary>The key consistent hashing uses.</summary>
public sealed record HashKeyOptions
{
    /// <summary><c>header</c>, <c>cookie</c> or <c>client-address</c>.</summary>
    public string Source { get; init; } = "";

    /// <summary>Header or cookie name (not used for client-address).</summary>
    public string? Name { get; init; }
}

/// <summary>Logging settings.</summary>
public sealed record LoggingOptions
{
    /// <summary>Minimum level for Mesh's own logs.</summary>
    public string Level { get; init; } = "Information";

    /// <summary>One Information line per request in category <c>Mesh.AccessLog</c>.</summary>
    public bool AccessLog { get; init; }
}

/// <summary>Settings that trade isolation for speed; read at start-up.</summary>
public sealed record PerformanceOptions
{
    /// <summary>
    /// Run request code on the socket thread that read it (inline completions), as Envoy runs a
    /// connection's filters on its worker: the largest single speed-up measured, at the price that a
    /// request that blocks stalls the other connections of that thread. <c>false</c> hands request
    /// code to the thread pool instead.
    /// </summary>
    public bool InlineCompletions { get; init; } = true;

    /// <summary>
    /// The GC's first-generation budget in MiB. The runtime sizes it from the L3 cache (260 MiB
    /// here), which holds well over 100 MB of garbage under load; <c>run</c> sets it before the
    /// runtime starts. <c>0</c> leaves the runtime's choice.
    /// </summary>
    public int GcGen0SizeMb { get; init; } = 4;

    /// <summary>
    /// Send requests to plain HTTP/1.1 services through Mesh's own keep-alive client rather than
    /// HttpClient and YARP's forwarder (measured at 1.4 times the requests per core). Upgrades,
    /// CONNECT, <c>Expect</c>, request bodies of unknown length and HTTP/2 services still take
    /// YARP. <c>false</c> sends everything through YARP.
    /// </summary>
    public bool MeshHttp1Client { get; init; } = true;
}

/// <summary>Graceful shutdown.</summary>
public sealed record ShutdownOptions
{
    /// <summary>
    /// How long SIGTERM or Ctrl-C waits for requests and connections in flight before cutting
    /// them, in milliseconds; <c>0</c> cuts at once. A supervisor's own grace period must be longer.
    /// </summary>
    public int DrainTimeoutMs { get; init; } = 15_000;
}

/// <summary>Listener directions.</summary>
public static class Directions
{
    /// <summary>Peers to the local app.</summary>
    public const string Inbound = "inbound";

    /// <summary>The local app to upstream services.</summary>
    public const string Outbound = "outbound";
}

/// <summary>Listener protocols.</summary>
public static class ListenerProtocols
{
    /// <summary>HTTP/1.1 and HTTP/2 (prior knowledge) on one port, routed per request.</summary>
    public const string Http = "http";

    /// <summary>Opaque TCP, balanced per connection.</summary>
    public const string Tcp = "tcp";

    /// <summary>TLS left untouched, routed by the ClientHello's SNI.</summary>
    public const string TlsPassthrough = "tls-passthrough";

    /// <summary>UDP flows, balanced per client.</summary>
    public const string Udp = "udp";

    /// <summary>Detects TLS, HTTP/1.1 or HTTP/2 by the first bytes; anything else goes to TCP.</summary>
    public const string Auto = "auto";

    /// <summary>Every listener protocol.</summary>
    public static readonly IReadOnlyList<string> All = [Http, Tcp, TlsPassthrough, Udp, Auto];

    /// <summary>True for protocols whose requests go through the L7 route table.</summary>
    public static bool CarriesHttp(string protocol) => protocol is Http or Auto;
}

/// <summary>HTTP versions spoken upstream.</summary>
public static class UpstreamProtocols
{
    /// <summary>HTTP/1.1.</summary>
    public const string Http1 = "http1";

    /// <summary>HTTP/2 (prior knowledge on plaintext).</summary>
    public const string Http2 = "http2";
}

/// <summary>Load-balancing policy names.</summary>
public static class LoadBalancingPolicies
{
    /// <summary>Smooth weighted round robin.</summary>
    public const string RoundRobin = "round-robin";

    /// <summary>Fewest in-flight requests (weighted).</summary>
    public const string LeastRequests = "least-requests";

    /// <summary>Fewest open connections (weighted); the L4 name for least-requests.</summary>
    public const string LeastConnections = "least-connections";

    /// <summary>Two random endpoints, the less loaded wins.</summary>
    public const string PowerOfTwoChoices = "power-of-two-choices";

    /// <summary>Weighted random.</summary>
    public const string Random = "random";

    /// <summary>Ring hash on a header, cookie or client address.</summary>
    public const string ConsistentHash = "consistent-hash";

    /// <summary>Every policy name.</summary>
    public static readonly IReadOnlyList<string> All = [RoundRobin, LeastRequests, LeastConnections, PowerOfTwoChoices, Random, ConsistentHash];
}

/// <summary>Consistent-hash key sources.</summary>
public static class HashSources
{
    /// <summary>A request header.</summary>
    public const string Header = "header";

    /// <summary>A cookie.</summary>
    public const string Cookie = "cookie";

    /// <summary>The client's IP address.</summary>
    public const string ClientAddress = "client-address";
}
