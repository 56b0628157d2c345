// Every message docs/configuration.md quotes is produced here and compared with what the program prints, so the two cannot drift.
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Mesh.FunctionalTests.Infrastructure;
using Mesh.Sidecar.Cli;
using ConsulTestServer = Mesh.Tests.Consul.ConsulTestServer;

namespace Mesh.FunctionalTests.Configuration;

public sealed partial class DocumentedMessagesTests
{
    // Words that make a quoted span a message rather than a key, a value or a command.
    private static readonly string[] MessageMarkers =
    [
        " is not ", " must ", "needs ", "is required", " already ", "cannot", "expected ", "unknown ", "give ", "no service",
        "no listener", "no route", "has no", "invalid", "duplicate", "at least", "out of range", "did not answer", "failed",
        "not ready", "problem", "is valid", "hashes on", "SNI routes need", "HTTP routes apply", "rejected", "Keeping", "Did you mean",
        "differs", "expired", "is only used", "governs", "applies to", "apply to", "no certificate", "holds no", "does not match",
        "not a CA", "not in trust domain", "takes either", "has no", "denied by",
    ];

    private const string BaseConfig = """
        {
          "service": { "name": "web", "port": 8080 },
          "admin": { "address": "127.0.0.1", "port": 0 },
          "listeners": [ { "name": "out", "address": "127.0.0.1", "port": 0, "direction": "outbound", "protocol": "http" } ],
          "routes": [ { "name": "r", "match": {}, "service": "api" } ],
          "services": { "api": { "endpoints": [ { "address": "127.0.0.1", "port": 9001 } ] } },
          "performance": { "inlineCompletions": false, "gcGen0SizeMb": 0 }
        }
        """;

    [Fact]
    public async Task ConfigurationDoc_EveryQuotedMessage_IsWhatTheProgramPrints()
    {
        var doc = await File.ReadAllTextAsync(Path.Combine(Mesh.Tests.TestFixtures.RepositoryRoot, "docs", "configuration.md"));
        var quotes = Quotes(doc);
        var cases = Cases();
        var problems = new List<string>();
        foreach (var quote in quotes)
        {
            if (!cases.TryGetValue(quote, out var produce))
            {
                problems.Add($"docs/configuration.md quotes `{quote}`, and no case here produces it: add one to {nameof(Cases)}.");
                continue;
            }

            var output = await produce();
            if (!Regex.IsMatch(output, Pattern(quote), RegexOptions.Multiline))
            {
                problems.Add($"docs/configuration.md quotes `{quote}`, but the program printed:\n{output}");
            }
        }

        foreach (var quote in cases.Keys)
        {
            if (!quotes.Contains(quote))
            {
                problems.Add($"The case for `{quote}` is no longer quoted in docs/configuration.md: remove it or fix the docs.");
            }
        }

        Assert.True(problems.Count == 0, string.Join("\n\n", problems));
        Assert.True(quotes.Count > 60, $"only {quotes.Count} messages found in the docs; did the quoting change?");
    }

    /// <summary>
    /// Inline spans that read like messages (anywhere), every span with a space in a "Messages" block
    /// (the paragraph or list after a line that says Message or Messages), and the lines of text
    /// blocks that show program output.
    /// </summary>
    private static HashSet<string> Quotes(string doc)
    {
        var quotes = new HashSet<string>(StringComparer.Ordinal);
        var lines = doc.Split('\n');
        var inText = false;
        var inMessages = false;
        var seenList = false;
        for (var i = 0; i < lines.Length; i++)
        {
            var line = lines[i].Trim();
            if (line.StartsWith("```", StringComparison.Ordinal))
            {
                inText = !inText && line == "```text";
                continue;
            }

            if (inText)
            {
                if (!line.StartsWith("$ ", StringComparison.Ordinal) && (LogPrefix().IsMatch(line) || IsMessage(line)))
                {
                    quotes.Add(line);
                }

                continue;
            }

            if (line.Length == 0)
            {
                // A blank line ends a Messages block, unless its list is still to come.
                var next = Array.FindIndex(lines, i + 1, l => l.Trim().Length > 0);
                inMessages &= !seenList && next >= 0 && lines[next].TrimStart().StartsWith("- ", StringComparison.Ordinal);
                continue;
            }

            if (MessagesHeading().IsMatch(line))
            {
                inMessages = true;
                seenList = false;
            }

            seenList |= inMessages && line.StartsWith("- ", StringComparison.Ordinal);
            foreach (Match span in InlineCode().Matches(line))
            {
                var text = span.Groups[1].Value;
                if (IsMessage(text) || (inMessages && text.Contains(' ', StringComparison.Ordinal)))
                {
                    quotes.Add(text);
                }
            }
        }

        return quotes;
    }

    private static bool IsMessage(string text) => text.Contains(' ', StringComparison.Ordinal) && MessageMarkers.Any(m => text.Contains(m, StringComparison.Ordinal));

    /// <summary>
    /// The quote as a pattern. Docs write placeholders where a value varies: PATH, FILE, NAME,
    /// KEY, CERT, DIR (file names), ID (Consul's cluster ID), REASON, N (a number), L and C (line and column), "..." (the rest), "a, b, c" (a list),
    /// host/path, a /tmp file, any loopback port, and the state version. A log line's timestamp,
    /// level and category are left out, and its numbers vary.
    /// </summary>
    private static string Pattern(string quote)
    {
        var numbers = false;
        if (LogPrefix().Match(quote) is { Success: true } prefix)
        {
            quote = quote[prefix.Length..];
            numbers = true;
        }

        var pattern = new StringBuilder();
        var at = 0;
        foreach (Match placeholder in Placeholder().Matches(quote))
        {
            pattern.Append(Escape(quote[at..placeholder.Index], numbers));
            pattern.Append(placeholder.Value switch
            {
                "PATH" or "FILE" or "host/path" => @"\S+",
                "NAME" => @"[^' :]+",
                "KEY" or "CERT" or "DIR" => "[^']+",
                "ID" => "[^'.]+",
                "REASON" or "..." => ".+",
                "a, b, c" => ".+",
                "N" => @"-?\d+",
                "L" or "C" => @"\d+",
                var v when v.StartsWith("/tmp/", StringComparison.Ordinal) => @"\S+",
                var v when char.IsAsciiDigit(v[0]) && !v.Contains(':', StringComparison.Ordinal) => @"\d+",
                _ => @"127\.0\.0\.1:\d+",
            });
            at = placeholder.Index + placeholder.Length;
        }

        pattern.Append(Escape(quote[at..], numbers));
        return pattern.ToString();

        static string Escape(string literal, bool numbers) =>
            numbers ? Digits().Replace(Regex.Escape(literal), @"\d+") : Regex.Escape(literal);
    }

    private static Dictionary<string, Func<Task<string>>> Cases() => new(StringComparer.Ordinal)
    {
        // ---- the command line ----
        ["mesh-sidecar: unknown command 'valdiate'; the commands are: run, validate, demo, version, ca, help. Did you mean 'validate'?"] = () => Cli("valdiate"),
        ["mesh-sidecar: unknown option '--confg' for 'validate'; its options are: --config, --set, --help. Did you mean '--config'?"] = () => Cli("validate", "--confg", "x.json"),
        ["--set 'admin:port': expected KEY=VALUE with ':' between levels, for example --set admin:port=19001"] = () => Cli("run", "--set", "admin:port"),

        // ---- validation: file ----
        ["FILE: configuration is valid"] = () => Validate(_ => { }),
        ["FILE: cannot read the config file: ..."] = () => Cli("validate", "--config", "/nonexistent/sidecar.json"),
        ["FILE: the config must be a JSON object"] = () => ValidateBytes("[]"u8.ToArray()),
        ["FILE: invalid JSON at line L, column C: ..."] = () => ValidateBytes("{ not json"u8.ToArray()),
        ["FILE: the file is not UTF-8 text: invalid byte 0xFF at line L, column C"] = () => ValidateBytes([.. "{ \"a"u8, 0xFF, .. "\": 1 }"u8]),
        ["/tmp/bad.json: 4 problems in the configuration:"] = () => Validate(FourProblems),
        ["listeners[0].port: 70000 is not a port"] = () => Validate(FourProblems),
        ["listeners[0].direction: 'sideways' is not one of: inbound, outbound"] = () => Validate(FourProblems),
        ["routes[0].match.path.prefix: 'api' must start with '/'"] = () => Validate(FourProblems),
        ["services.api.loadBalancing.hash: consistent-hash needs a hash key (source header, cookie or client-address)"] = () => Validate(FourProblems),

        // ---- validation: shape ----
        ["PATH: unknown key; known keys here: a, b, c"] = () => Validate(c => c["bogus"] = 1),
        ["PATH: 'abc' is not a whole number"] = () => Validate(c => c["admin"]!["port"] = "abc"),
        ["PATH: 'yes' is not true or false"] = () => Validate(c => c["logging"] = new JsonObject { ["accessLog"] = "yes" }),
        ["PATH: expected a string, found null"] = () => Validate(c => Route(c)["match"] = new JsonObject { ["hosts"] = new JsonArray((JsonNode?)null) }),
        ["PATH: expected an object, found null"] = () => Validate(c => c["routes"] = new JsonArray((JsonNode?)null)),
        ["PATH: expected a string, found an object"] = () => Validate(c => c["service"]!["name"] = new JsonObject { ["a"] = 1 }),
        ["PATH: expected a string, found a list"] = () => Validate(c => c["service"]!["name"] = new JsonArray("a")),
        ["PATH: expected a list, found 'x'"] = () => Validate(c => Route(c)["match"] = new JsonObject { ["methods"] = "x" }),
        ["PATH: expected an object, found 'x'"] = () => Validate(c => c["admin"] = "x"),
        ["PATH: expected a list, found an object"] = () => Validate(c => c["listeners"] = new JsonObject { ["a"] = 1 }),
        ["PATH: expected an object, found a list"] = () => Validate(c => c["admin"] = new JsonArray(1)),
        ["PATH: duplicate key (keys are case-insensitive)"] = () => ValidateBytes(Encoding.UTF8.GetBytes(BaseConfig.Replace("\"port\": 8080", "\"port\": 8080, \"Port\": 8081", StringComparison.Ordinal))),
        ["PATH: ':' cannot be part of a key (it separates levels in overrides)"] = () => Validate(c => c["services"]!["a:b"] = new JsonObject { ["endpoints"] = new JsonArray(Endpoint()) }),
        ["PATH: expected a whole number, found an object or list"] = () => Validate(_ => { }, "--set", "admin:port:x=1"),

        // ---- validation: meaning ----
        ["is required"] = () => Validate(c => Route(c)["name"] = ""),
        ["'x y' is not a valid name (letters, digits, '.', '_' and '-')"] = () => Validate(c => c["service"]!["name"] = "x y"),
        ["70000 is not a port"] = () => Validate(c => Listener(c)["port"] = 70000),
        ["N is not a port"] = () => Validate(c => Listener(c)["port"] = 70000),
        ["admin.port: N is not a port"] = () => Validate(c => c["admin"]!["port"] = 70000),
        ["'a b' is not an IP address or host name"] = () => Validate(c => c["service"]!["address"] = "a b"),
        ["an inbound listener needs the local app's port"] = () => Validate(c =>
        {
            c["service"]!["port"] = 0;
            Listener(c)["direction"] = "inbound";
        }),
        ["'h2' is not one of: http1, http2"] = () => Validate(c => c["service"]!["protocol"] = "h2"),
        ["admin.address: 'localhost' is not an IP address"] = () => Validate(c => c["admin"]!["address"] = "localhost"),
        ["'localhost' is not an IP address"] = () => Validate(c => Listener(c)["address"] = "localhost"),
        ["listeners[0].port: 127.0.0.1:19000 is already used by admin"] = () => Validate(c =>
        {
            c["admin"]!["port"] = 19000;
            Listener(c)["port"] = 19000;
        }),
        ["listeners: at least one listener is required"] = () => Validate(c => c["listeners"] = new JsonArray()),
        ["'out' is already the name of listeners[0]"] = () => Validate(c => c["listeners"]!.AsArray().Add(new JsonObject { ["name"] = "out" })),
        ["127.0.0.1:15001 is already used by listeners[0]"] = () => Validate(c =>
        {
            Listener(c)["port"] = 15001;
            c["listeners"]!.AsArray().Add(new JsonObject { ["name"] = "second", ["port"] = 15001 });
        }),
        ["'x' is not one of: inbound, outbound"] = () => Validate(c => Listener(c)["direction"] = "x"),
        ["'quic' is not one of: http, tcp, tls-passthrough, udp, auto"] = () => Validate(c => Listener(c)["protocol"] = "quic"),
        ["a tcp listener needs a service"] = () => Validate(c => Listener(c)["protocol"] = "tcp"),
        ["no service named 'x' in services"] = () => Validate(c => Route(c)["service"] = "x"),
        ["service 'x' hashes on a header, which an L4 listener cannot see; use client-address"] = () => Validate(c =>
        {
            c["services"]!["x"] = new JsonObject
            {
                ["endpoints"] = new JsonArray(Endpoint()),
                ["loadBalancing"] = new JsonObject { ["policy"] = "consistent-hash", ["hash"] = new JsonObject { ["source"] = "header", ["name"] = "x-user" } },
            };
            c["listeners"]!.AsArray().Add(new JsonObject { ["name"] = "db", ["protocol"] = "tcp", ["service"] = "x" });
        }),
        ["give at least one server name ('*' matches any)"] = () => Validate(c => c["listeners"]!.AsArray().Add(TlsListener(new JsonArray()))),
        ["SNI routes need protocol tls-passthrough or auto, not tcp"] = () => Validate(c =>
        {
            var tls = TlsListener(new JsonArray("*"));
            tls["protocol"] = "tcp";
            c["listeners"]!.AsArray().Add(tls);
        }),
        ["N must be above 0"] = () => Validate(c => Listener(c)["tcp"] = new JsonObject { ["connectTimeoutMs"] = 0 }),
        ["listener 'x' is tcp; HTTP routes apply to http and auto listeners (use tls.routes or service for L4)"] = () => Validate(c =>
        {
            c["listeners"]!.AsArray().Add(new JsonObject { ["name"] = "x", ["protocol"] = "tcp", ["service"] = "api" });
            Route(c)["listeners"] = new JsonArray("x");
        }),
        ["'api' is already the name of another route"] = () => Validate(c =>
        {
            Route(c)["name"] = "api";
            c["routes"]!.AsArray().Add(new JsonObject { ["name"] = "api", ["service"] = "api" });
        }),
        ["no listener named 'x'"] = () => Validate(c => Route(c)["listeners"] = new JsonArray("x")),
        ["is required (only routes on inbound listeners may leave it out to mean the local app)"] = () => Validate(c => Route(c).Remove("service")),
        ["'a*b' is not a host name, '*.suffix' or '*'"] = () => Validate(c => Route(c)["match"] = new JsonObject { ["hosts"] = new JsonArray("a*b") }),
        ["give exactly one of prefix, exact or pattern"] = () => Validate(c => Route(c)["match"] = new JsonObject { ["path"] = new JsonObject { ["prefix"] = "/", ["exact"] = "/" } }),
        ["'api' must start with '/'"] = () => Validate(c => Route(c)["match"] = new JsonObject { ["path"] = new JsonObject { ["exact"] = "api" } }),
        ["'/a/x{id}' segment 'x{id}' must be a literal, '{name}' or '{**name}'"] = () => Validate(c => Route(c)["match"] = new JsonObject { ["path"] = new JsonObject { ["pattern"] = "/a/x{id}" } }),
        ["'/a/{**rest}/b' catch-all '{**rest}' must be the last segment"] = () => Validate(c => Route(c)["match"] = new JsonObject { ["path"] = new JsonObject { ["pattern"] = "/a/{**rest}/b" } }),
        ["'GE T' is not an HTTP method"] = () => Validate(c => Route(c)["match"] = new JsonObject { ["methods"] = new JsonArray("GE T") }),
        ["name: is required"] = () => Validate(c => Route(c)["match"] = new JsonObject { ["headers"] = new JsonArray(new JsonObject { ["exact"] = "a" }) }),
        ["give exactly one of exact, prefix, regex or present"] = () => Validate(c => Route(c)["match"] = new JsonObject { ["cookies"] = new JsonArray(new JsonObject { ["name"] = "a" }) }),
        ["regex: invalid regular expression: ..."] = () => Validate(c => Route(c)["match"] = new JsonObject { ["query"] = new JsonArray(new JsonObject { ["name"] = "a", ["regex"] = "(" }) }),
        ["transforms.stripPrefix: 'api' must start with '/'"] = () => Validate(c => Route(c)["transforms"] = new JsonObject { ["stripPrefix"] = "api" }),
        ["transforms.requestHeaders.set.NAME: 'NAME' is not a valid header name"] = () => Validate(c => Route(c)["transforms"] = new JsonObject { ["requestHeaders"] = new JsonObject { ["set"] = new JsonObject { ["a@b"] = "v" } } }),
        ["'a b' is not a valid service name (letters, digits, '.', '_' and '-')"] = () => Validate(c => c["services"]!["a b"] = new JsonObject { ["endpoints"] = new JsonArray(Endpoint()) }),
        ["static discovery needs at least one endpoint"] = () => Validate(c => Api(c)["endpoints"] = new JsonArray()),
        ["0 is not a port"] = () => Validate(c => Api(c)["endpoints"]![0]!["port"] = 0),
        ["0 is not a weight from 1 to 10000"] = () => Validate(c => Api(c)["endpoints"]![0]!["weight"] = 0),
        ["'x' is not one of: round-robin, least-requests, least-connections, power-of-two-choices, random, consistent-hash"] = () => Validate(c => Api(c)["loadBalancing"] = new JsonObject { ["policy"] = "x" }),
        ["consistent-hash needs a hash key (source header, cookie or client-address)"] = () => Validate(c => Api(c)["loadBalancing"] = new JsonObject { ["policy"] = "consistent-hash" }),
        ["'x' is not one of: header, cookie, client-address"] = () => Validate(c => Api(c)["loadBalancing"] = Hash("x")),
        ["a header hash needs the header name"] = () => Validate(c => Api(c)["loadBalancing"] = Hash("header")),
        ["a cookie hash needs the cookie name"] = () => Validate(c => Api(c)["loadBalancing"] = Hash("cookie")),
        ["'h2c' is not one of: http1, http2"] = () => Validate(c => Api(c)["protocol"] = "h2c"),
        ["0 must be above 0"] = () => Validate(c => Api(c)["requestTimeoutMs"] = 0),
        ["logging.level: 'Loud' is not a log level; use one of Trace, Debug, Information, Warning, Error, Critical, None"] = () => Validate(c => c["logging"] = new JsonObject { ["level"] = "Loud" }),
        ["performance.gcGen0SizeMb: 300 is out of range; use 0 (the runtime's choice) to 256"] = () => Validate(c => c["performance"]!["gcGen0SizeMb"] = 300),
        ["shutdown.drainTimeoutMs: -1 must be 0 or more"] = () => Validate(c => c["shutdown"] = new JsonObject { ["drainTimeoutMs"] = -1 }),

        // ---- resilience and traffic policy ----
        ["'cookie:x' is not a rate-limit key; use client-address, header:NAME or peer"] = () => Validate(c => Route(c)["rateLimit"] = new JsonObject { ["key"] = "cookie:x" }),
        ["'bad name' is not a valid header name"] = () => Validate(c => Route(c)["rateLimit"] = new JsonObject { ["key"] = "header:bad name" }),
        ["give service or split, not both"] = () => Validate(c => Route(c)["split"] = new JsonArray(new JsonObject { ["service"] = "api", ["weight"] = 1 })),
        ["give at least one target"] = () => Validate(c =>
        {
            Route(c).Remove("service");
            Route(c)["split"] = new JsonArray();
        }),
        ["the weights add up to 0; give at least one target a weight"] = () => Validate(c =>
        {
            Route(c).Remove("service");
            Route(c)["split"] = new JsonArray(new JsonObject { ["service"] = "api", ["weight"] = 0 });
        }),
        ["is empty; leave it out to mean every endpoint"] = () => Validate(c =>
        {
            Route(c).Remove("service");
            Route(c)["split"] = new JsonArray(new JsonObject { ["service"] = "api", ["subset"] = "", ["weight"] = 1 });
        }),
        ["-1 is out of range; use 0 to 10000"] = () => Validate(c =>
        {
            Route(c).Remove("service");
            Route(c)["split"] = new JsonArray(new JsonObject { ["service"] = "api", ["weight"] = -1 }, new JsonObject { ["service"] = "api", ["weight"] = 1 });
        }),
        ["101 is not a percentage from 0 to 100"] = () => Validate(c => Route(c)["mirror"] = new JsonObject { ["service"] = "api", ["percent"] = 101 }),
        ["delayPercent is set, so give a delay above 0"] = () => Validate(c => Route(c)["fault"] = new JsonObject { ["delayPercent"] = 10 }),
        ["99 is out of range; use 200 to 599"] = () => Validate(c => Route(c)["fault"] = new JsonObject { ["abortStatus"] = 99, ["abortPercent"] = 10 }),
        ["11 is out of range; use 0 to 10"] = () => Validate(c => Api(c)["retries"] = new JsonObject { ["attempts"] = 11 }),
        ["'teapot' is not a retry condition; use connect-failure, reset, 5xx, gateway-error or a status code from 400 to 599"] = () => Validate(c => Api(c)["retries"] = new JsonObject { ["on"] = new JsonArray("teapot") }),
        ["'UNAVAILABLE' is not a gRPC status; use one of cancelled, unknown, ..."] = () => Validate(c => Api(c)["retries"] = new JsonObject { ["grpcStatuses"] = new JsonArray("UNAVAILABLE") }),
        ["50 is below backoffBaseMs (100)"] = () => Validate(c => Api(c)["retries"] = new JsonObject { ["backoffBaseMs"] = 100, ["backoffMaxMs"] = 50 }),
        ["requests wait only for a limit: set maxConcurrentRequests too"] = () => Validate(c => Api(c)["circuitBreaker"] = new JsonObject { ["maxPendingRequests"] = 5 }),
        ["1.5 is not a ratio from 0 (off) to 1"] = () => Validate(c => Api(c)["circuitBreaker"] = new JsonObject { ["failureRatio"] = 1.5 }),
        ["1 must be 2 or more"] = () => Validate(c => Api(c)["circuitBreaker"] = new JsonObject { ["minimumThroughput"] = 1 }),
        ["500 must be above 500"] = () => Validate(c => Api(c)["circuitBreaker"] = new JsonObject { ["samplingMs"] = 500 }),
        ["150 is out of range; use 0 to 100"] = () => Validate(c => Api(c)["outlierDetection"] = new JsonObject { ["maxEjectionPercent"] = 150 }),
        ["health checks are for static services; 'consul' services use their provider's checks"] = () => Validate(c =>
        {
            ConsulService(c)["healthCheck"] = new JsonObject { ["type"] = "tcp" };
            c["consul"] = new JsonObject();
        }),
        ["'grpc' is not one of: http, tcp"] = () => Validate(c => Api(c)["healthCheck"] = new JsonObject { ["type"] = "grpc" }),
        ["'healthz' must start with '/' and hold no spaces"] = () => Validate(c => Api(c)["healthCheck"] = new JsonObject { ["path"] = "healthz" }),

        // ---- run: sockets ----
        ["listeners[0]: cannot bind http 127.0.0.1:15001: Address already in use"] = () => RunWithPortTakenAsync(admin: false),
        ["cannot bind ..."] = () => RunWithPortTakenAsync(admin: false),
        ["admin: cannot bind admin 127.0.0.1:19000: Address already in use"] = () => RunWithPortTakenAsync(admin: true),

        // ---- hot reload ----
        ["Configuration rejected: listeners[0].port: 70000 is not a port"] = RejectedReloadAsync,
        ["Keeping the last good configuration (state version 3)"] = RejectedReloadAsync,
        ["Configuration rejected: ..."] = RejectedReloadAsync,

        // ---- answers and logs while serving ----
        ["no route matched GET host/path on listener 'NAME'"] = NoRouteAsync,
        ["service 'NAME': endpoint 127.0.0.1:9001 failed: REASON"] = () => UpstreamFailureAsync(silent: false),
        ["10:15:02.113 warn: Mesh.Sidecar.L7.UpstreamErrors[3050] Service api answered 502: endpoint 127.0.0.1:9001 failed: Connection refused (41 more failures of this endpoint since its last line; one line per endpoint every 10 s at most)"] = () => UpstreamFailureAsync(silent: false),
        ["service 'NAME': endpoint 127.0.0.1:9001 did not answer within N ms (requestTimeoutMs)"] = () => UpstreamFailureAsync(silent: true),
        ["10:15:02.113 info: Mesh.Sidecar.Hosting.ShutdownDrain[4101] Draining: /ready answers 503 and the proxy listeners stopped accepting; waiting up to 15000 ms (shutdown.drainTimeoutMs) for 2 requests in flight, 3 HTTP connections and 1 L4 connections"] = () => DrainAsync(stuck: false),
        ["10:15:02.525 info: Mesh.Sidecar.Hosting.ShutdownDrain[4102] Drained in 412 ms: every request and connection finished"] = () => DrainAsync(stuck: false),
        ["10:15:17.114 warn: Mesh.Sidecar.Hosting.ShutdownDrain[4103] Drain deadline of 15000 ms (shutdown.drainTimeoutMs) reached: cutting 1 requests in flight, 1 HTTP connections and 1 L4 connections"] = () => DrainAsync(stuck: true),
        ["not ready: draining"] = () => DrainAsync(stuck: true, drainTimeoutMs: 60_000),

        // ---- security: listeners ----
        ["'x' is not one of: off, strict, permissive"] = () => Validate(c => Listener(c)["mtls"] = "x"),
        ["mtls applies to inbound listeners (peers calling the local app); 'out' is outbound"] = () => Validate(c => Listener(c)["mtls"] = "strict"),
        ["mtls applies to http and tcp listeners, not udp"] = () => Validate(c => c["listeners"]!.AsArray().Add(new JsonObject { ["name"] = "u", ["protocol"] = "udp", ["direction"] = "inbound", ["service"] = "api", ["mtls"] = "strict" })),
        ["mtls needs this sidecar's identity; set identity.source"] = () => Validate(c => c["listeners"]!.AsArray().Add(new JsonObject { ["name"] = "in", ["direction"] = "inbound", ["mtls"] = "strict" })),
        ["edge certificates apply to http listeners, not tcp"] = () => Validate(c => c["listeners"]!.AsArray().Add(new JsonObject
        {
            ["name"] = "t",
            ["protocol"] = "tcp",
            ["service"] = "api",
            ["tls"] = new JsonObject { ["certificates"] = new JsonArray(Edge(Pki.Edge)) },
        })),
        ["a listener takes either mtls from peers or edge certificates for ordinary clients, not both"] = () => Validate(c =>
        {
            c["identity"] = CaIdentity(Pki.CaDir);
            c["listeners"]!.AsArray().Add(new JsonObject
            {
                ["name"] = "in",
                ["direction"] = "inbound",
                ["mtls"] = "strict",
                ["tls"] = new JsonObject { ["certificates"] = new JsonArray(Edge(Pki.Edge)) },
            });
        }),
        ["serverNames: give at least one server name (exact or *.suffix)"] = () => Validate(c => Listener(c)["tls"] = new JsonObject { ["certificates"] = new JsonArray(Edge(Pki.Edge, serverNames: [])) }),
        ["cannot read 'PATH': ..."] = () => Validate(c => Listener(c)["tls"] = new JsonObject { ["certificates"] = new JsonArray(Edge(new PemPair("/nonexistent/edge.crt", "/nonexistent/edge.key"))) }),
        ["'PATH' holds no PEM certificate (-----BEGIN CERTIFICATE-----)"] = () => Validate(c => Listener(c)["tls"] = new JsonObject { ["certificates"] = new JsonArray(Edge(new PemPair(Pki.NotPem, Pki.Edge.KeyFile))) }),
        ["the key in 'KEY' does not match the certificate in 'CERT'"] = () => Validate(c => Listener(c)["tls"] = new JsonObject { ["certificates"] = new JsonArray(Edge(new PemPair(Pki.Edge.CertificateFile, Pki.OtherEdge.KeyFile))) }),
        ["the certificate in 'PATH' expired on ..."] = () => Validate(c => Listener(c)["tls"] = new JsonObject { ["certificates"] = new JsonArray(Edge(Pki.ExpiredEdge)) }),
        ["service 'x' uses tls.mode mesh, which auto listeners cannot originate (use a tcp or http listener)"] = () => Validate(c =>
        {
            c["identity"] = CaIdentity(Pki.CaDir);
            c["services"]!["x"] = new JsonObject { ["endpoints"] = new JsonArray(Endpoint()), ["tls"] = new JsonObject { ["mode"] = "mesh" } };
            c["listeners"]!.AsArray().Add(new JsonObject { ["name"] = "a", ["protocol"] = "auto", ["service"] = "x" });
        }),

        // ---- security: services ----
        ["'x' is not one of: off, mesh, tls"] = () => Validate(c => Api(c)["tls"] = new JsonObject { ["mode"] = "x" }),
        ["mesh mode needs this sidecar's identity; set identity.source"] = () => Validate(c => Api(c)["tls"] = new JsonObject { ["mode"] = "mesh" }),
        ["'x' is not a SPIFFE ID: ..."] = () => Validate(c =>
        {
            c["identity"] = CaIdentity(Pki.CaDir);
            Api(c)["tls"] = new JsonObject { ["mode"] = "mesh", ["serverIdentity"] = "x" };
        }),
        ["is only used when the mode or source is 'mesh' (it is 'off')"] = () => Validate(c => Api(c)["tls"] = new JsonObject { ["serverIdentity"] = "spiffe://mesh.local/ns/default/svc/api" }),
        ["a client certificate needs both certificateFile and keyFile"] = () => Validate(c => Api(c)["tls"] = new JsonObject { ["mode"] = "tls", ["certificateFile"] = Pki.Edge.CertificateFile }),

        // ---- security: identity ----
        ["'vault' is not one of: ca, files, consul"] = () => Validate(c => c["identity"] = new JsonObject { ["source"] = "vault" }),
        ["'x/y' is not a trust domain name: ..."] = () => Validate(c => c["identity"] = CaIdentity(Pki.CaDir, "x/y")),
        ["'other' differs from the trust domain 'mesh.local' of the CA in 'DIR'"] = () => Validate(c => c["identity"] = CaIdentity(Pki.CaDir, "other")),
        ["cannot read 'DIR/ca.crt': ..."] = () => Validate(c => c["identity"] = CaIdentity("/nonexistent/ca")),
        ["'DIR/ca.crt' is not a CA certificate (basic constraints CA:TRUE)"] = () => Validate(c => c["identity"] = CaIdentity(Pki.NotCaDir)),
        ["the CA certificate in 'DIR' expired on ..."] = () => Validate(c => c["identity"] = CaIdentity(Pki.ExpiredCaDir)),
        ["the certificate has no SPIFFE URI SAN"] = () => Validate(c => c["identity"] = FilesIdentity(Pki.NoSpiffeLeaf)),
        ["the certificate's SPIFFE ID spiffe://x/... is not in trust domain 'mesh.local'"] = () => Validate(c => c["identity"] = FilesIdentity(Pki.ForeignLeaf)),
        ["identity.caDir: is only used when the mode or source is 'ca' (it is 'files')"] = () => Validate(c =>
        {
            var identity = FilesIdentity(Pki.WebLeaf);
            identity["caDir"] = Pki.CaDir;
            c["identity"] = identity;
        }),
        ["0 is out of range; use 1 to 8760 hours"] = () => Validate(c =>
        {
            var identity = CaIdentity(Pki.CaDir);
            identity["leafTtlHours"] = 0;
            c["identity"] = identity;
        }),

        // ---- security: authorization ----
        ["'r' is already the name of another rule"] = () => Validate(c => c["authorization"] = Rules(new JsonObject { ["name"] = "r" }, new JsonObject { ["name"] = "r" })),
        ["'permit' is not one of: allow, deny"] = () => Validate(c => c["authorization"] = Rules(new JsonObject { ["name"] = "r", ["action"] = "permit" })),
        ["authorization governs inbound listeners; 'out' is outbound"] = () => Validate(c => c["authorization"] = Rules(new JsonObject { ["name"] = "r", ["listeners"] = new JsonArray("out") })),
        ["'web' is not a SPIFFE ID (spiffe://trust-domain/ns/NAMESPACE/svc/NAME), '*' or 'unauthenticated': ..."] = () => Validate(c => c["authorization"] = Rules(new JsonObject { ["name"] = "r", ["from"] = new JsonArray("web") })),
        ["match applies to HTTP requests, and every listener of this rule is tcp (only from applies there)"] = () => Validate(c =>
        {
            c["listeners"]!.AsArray().Add(new JsonObject { ["name"] = "db", ["protocol"] = "tcp", ["direction"] = "inbound", ["service"] = "api" });
            c["authorization"] = Rules(new JsonObject { ["name"] = "r", ["listeners"] = new JsonArray("db"), ["match"] = new JsonObject { ["methods"] = new JsonArray("GET") } });
        }),

        // ---- consul ----
        ["'kubernetes' is not one of: static, consul"] = () => Validate(c => Api(c)["discovery"] = "kubernetes"),
        ["consul discovery needs a top-level \"consul\" block (the agent's address)"] = () => Validate(c => ConsulService(c)),
        ["endpoints are for static discovery; with consul they come from Consul"] = () => Validate(c =>
        {
            c["consul"] = new JsonObject { ["register"] = false };
            Api(c)["discovery"] = "consul";
        }),
        ["applies only with \"discovery\": \"consul\" (this service uses static)"] = () => Validate(c => Api(c)["consul"] = new JsonObject { ["service"] = "api" }),
        ["'api v2' is not a Consul service name (letters, digits, '.', '_' and '-')"] = () => Validate(c =>
        {
            c["consul"] = new JsonObject { ["register"] = false };
            ConsulService(c)["consul"] = new JsonObject { ["service"] = "api v2" };
        }),
        ["'v 2' contains white space"] = () => Validate(c =>
        {
            c["consul"] = new JsonObject { ["register"] = false };
            ConsulService(c)["consul"] = new JsonObject { ["tag"] = "v 2" };
        }),
        ["the consul source needs the top-level \"consul\" block (the agent's address)"] = () => Validate(c => c["identity"] = new JsonObject { ["source"] = "consul" }),
        ["cannot get the Connect leaf of 'web' from the Consul agent: ..."] = () => RunAsync(c =>
        {
            c["identity"] = new JsonObject { ["source"] = "consul" };
            c["consul"] = new JsonObject { ["address"] = $"http://127.0.0.1:{DeadPort()}", ["register"] = false };
        }),
        ["'mesh.local' differs from the trust domain 'ID.consul' of Consul's Connect CA; set identity.trustDomain to it"] = ConsulTrustDomainAsync,
        ["needs the top-level \"consul\" block (the agent that answers)"] = () => Validate(c => c["authorization"] = new JsonObject { ["consulIntentions"] = true }),
        ["intentions decide on verified callers; set identity.source and mtls on inbound listeners"] = () => Validate(c =>
        {
            c["consul"] = new JsonObject { ["register"] = false };
            c["authorization"] = new JsonObject { ["consulIntentions"] = true };
        }),
        ["'127.0.0.1:8500' is not an http:// or https:// URL"] = () => Validate(c => c["consul"] = new JsonObject { ["address"] = "127.0.0.1:8500", ["register"] = false }),
        ["'http://127.0.0.1:8500' is plain HTTP; caFile and certificateFile need an https:// address"] = () => Validate(c => c["consul"] = new JsonObject { ["address"] = "http://127.0.0.1:8500", ["caFile"] = Pki.TrustBundle, ["register"] = false }),
        ["give token or tokenFile, not both"] = () => Validate(c => c["consul"] = new JsonObject { ["token"] = "t", ["tokenFile"] = Pki.NotPem, ["register"] = false }),
        ["file '/etc/consul/ca.pem' does not exist"] = () => Validate(c => c["consul"] = new JsonObject { ["address"] = "https://127.0.0.1:8500", ["caFile"] = "/etc/consul/ca.pem", ["register"] = false }),
        ["is required with certificateFile"] = () => Validate(c => c["consul"] = new JsonObject { ["address"] = "https://127.0.0.1:8500", ["certificateFile"] = Pki.Edge.CertificateFile, ["register"] = false }),
        ["is required with keyFile"] = () => Validate(c => c["consul"] = new JsonObject { ["address"] = "https://127.0.0.1:8500", ["keyFile"] = Pki.Edge.KeyFile, ["register"] = false }),
        ["'dc 1' is not a datacenter name (letters, digits, '.', '_' and '-')"] = () => Validate(c => c["consul"] = new JsonObject { ["datacenter"] = "dc 1", ["register"] = false }),
        ["'web/1' must not contain '/' or white space"] = () => Validate(c => c["consul"] = new JsonObject { ["serviceId"] = "web/1" }),
        ["'not an address!' is not an IP address or host name"] = () => Validate(c => c["consul"] = new JsonObject { ["advertiseAddress"] = "not an address!" }),
        ["is empty"] = () => Validate(c => c["consul"] = new JsonObject { ["tags"] = new JsonArray("") }),
        ["is not a Consul metadata key (up to 128 letters, digits, '_' and '-', not starting with consul-)"] = () => Validate(c => c["consul"] = new JsonObject { ["meta"] = new JsonObject { ["consul-x"] = "v" } }),
        ["is set by Mesh"] = () => Validate(c => c["consul"] = new JsonObject { ["meta"] = new JsonObject { ["mesh-version"] = "1" } }),
        ["is longer than 512 characters"] = () => Validate(c => c["consul"] = new JsonObject { ["meta"] = new JsonObject { ["team"] = new string('a', 600) } }),
        ["'tcp' is not one of: http, ttl"] = () => Validate(c => c["consul"] = new JsonObject { ["check"] = new JsonObject { ["type"] = "tcp" } }),
        ["-1 must be 0 or more"] = () => Validate(c => c["consul"] = new JsonObject { ["deregisterGraceMs"] = -1, ["register"] = false }),
        ["registration advertises the first inbound listener, and there is none; add one or set register to false"] = () => Validate(c => c["consul"] = new JsonObject()),
        ["consul: cannot load the TLS files for the Consul agent: ..."] = () => RunAsync(c => c["consul"] = new JsonObject { ["address"] = $"https://127.0.0.1:{DeadPort()}", ["caFile"] = Pki.NotPem, ["register"] = false }),
        ["by admin"] = () => Validate(c =>
        {
            c["admin"]!["port"] = 19000;
            Listener(c)["port"] = 19000;
        }),
        ["0 or more"] = () => Validate(c => Listener(c)["tcp"] = new JsonObject { ["idleTimeoutMs"] = -1 }),

        // ---- filters and plugins ----
        ["routes[0].filters[0].config.keys[1]: expected a string, found a number"] = () => ValidateWithPlugins(c => Route(c)["filters"] = Filters(new JsonObject { ["name"] = "keys", ["config"] = new JsonObject { ["keys"] = new JsonArray("a", 1) } })),
        ["config.keys[1]: expected a string, found a number"] = () => ValidateWithPlugins(c => Route(c)["filters"] = Filters(new JsonObject { ["name"] = "keys", ["config"] = new JsonObject { ["keys"] = new JsonArray("a", 1) } })),
        ["config.tenants: give at least one tenant"] = () => ValidateWithPlugins(c => Route(c)["filters"] = Filters(new JsonObject { ["name"] = "tenants", ["config"] = new JsonObject { ["tenants"] = new JsonArray() } })),
        ["routes[0].filters[0]: filter factory 'x' threw InvalidOperationException in Create: ..."] = () => ValidateWithPlugins(c => Route(c)["filters"] = Filters(new JsonObject { ["name"] = "x" })),
        ["expected an object, found array"] = () => ValidateWithPlugins(c => Route(c)["filters"] = Filters(new JsonObject { ["name"] = "keys", ["config"] = new JsonArray() })),
        ["'ignore' is not one of: reject, continue"] = () => ValidateWithPlugins(c => Route(c)["filters"] = Filters(new JsonObject { ["name"] = "keys", ["onError"] = "ignore" })),
        ["0 is out of range; use 1 to 300000"] = () => ValidateWithPlugins(c => Route(c)["filters"] = Filters(new JsonObject { ["name"] = "keys", ["timeoutMs"] = 0 })),
        ["routes[0].filters[0].onErorr: unknown key; known keys here: name, config, onError, timeoutMs"] = () => ValidateWithPlugins(c => Route(c)["filters"] = Filters(new JsonObject { ["name"] = "keys", ["onErorr"] = "continue" })),
        ["routes[0].filters[1].name: no filter named 'api-key' in the plugins directory DIR (it has: ...)"] = () => ValidateWithPlugins(c => Route(c)["filters"] = Filters(new JsonObject { ["name"] = "keys" }, new JsonObject { ["name"] = "api-key" })),
        ["listeners[0].connectionFilters[0].name: ..."] = () => ValidateWithPlugins(c => Listener(c)["connectionFilters"] = Filters(new JsonObject { ["name"] = "tag" })),
        ["'tag' is a request filter (use it in routes[].filters)"] = () => ValidateWithPlugins(c => Listener(c)["connectionFilters"] = Filters(new JsonObject { ["name"] = "tag" })),
        ["udp listeners have no connections to filter; use a tcp, tls-passthrough, http or auto listener"] = () => ValidateWithPlugins(c => c["listeners"]!.AsArray().Add(new JsonObject { ["name"] = "u", ["protocol"] = "udp", ["service"] = "api", ["connectionFilters"] = Filters(new JsonObject { ["name"] = "keys" }) })),
        ["plugins.directory: is required (a folder, relative to the config file)"] = () => Validate(c => c["plugins"] = new JsonObject { ["directory"] = "" }),
        ["refused there: DIR/auth.js (auth.js:3:1: Unexpected token '}')"] = () => ValidateWithJs("function onRequest(req, ctx) {\n}\n}\n", c => Route(c)["filters"] = Filters(new JsonObject { ["name"] = "auth.js" })),
        ["service.tls.mode: mesh is for peer sidecars; the local app takes off or tls"] = () => Validate(c => c["service"]!["tls"] = new JsonObject { ["mode"] = "mesh" }),
        ["jsFilters.directory: is required (a folder of .js files, relative to the config file)"] = () => Validate(c => c["jsFilters"] = new JsonObject { ["directory"] = "" }),
        ["jsFilters.timeoutMs: 0 is out of range; use 1 to 300000"] = () => Validate(c => c["jsFilters"] = new JsonObject { ["timeoutMs"] = 0 }),
        ["jsFilters.maxStatements: -1 is out of range; use 1 or more"] = () => Validate(c => c["jsFilters"] = new JsonObject { ["maxStatements"] = -1 }),
        ["jsFilters.memoryLimitMb: 5000 is out of range; use 1 to 4096"] = () => Validate(c => c["jsFilters"] = new JsonObject { ["memoryLimitMb"] = 5000 }),
        ["jsFilters.recursionLimit: 0 is out of range; use 1 to 10000"] = () => Validate(c => c["jsFilters"] = new JsonObject { ["recursionLimit"] = 0 }),
        ["500 filter 'NAME' failed"] = () => FilteredRequestAsync(Filters(new JsonObject { ["name"] = "fault", ["config"] = new JsonObject { ["mode"] = "throw" } })),
        ["503 filter 'api-key' (routes[0].filters[1]) is not loaded; see /admin/plugins"] = () => FilteredRequestAsync(Filters(new JsonObject { ["name"] = "tag", ["config"] = new JsonObject { ["tag"] = "a" } }, new JsonObject { ["name"] = "api-key" })),

        // Not reachable from today's config (static services always have endpoints; /ready is polled
        // only after start): compared with the program's own text.
        ["service 'NAME' has no healthy endpoint"] = () => SourceAsync("L7/HttpDataPath.cs"),
        ["not ready: config not applied or listeners not bound"] = () => SourceAsync("Admin/AdminEndpoints.cs"),
    };

    private static void FourProblems(JsonObject c)
    {
        Listener(c)["port"] = 70000;
        Listener(c)["direction"] = "sideways";
        Route(c)["match"] = new JsonObject { ["path"] = new JsonObject { ["prefix"] = "api" } };
        Api(c)["loadBalancing"] = new JsonObject { ["policy"] = "consistent-hash" };
    }

    private static JsonObject Base() => JsonNode.Parse(BaseConfig)!.AsObject();

    private static JsonObject Listener(JsonObject c) => c["listeners"]![0]!.AsObject();

    private static JsonObject Route(JsonObject c) => c["routes"]![0]!.AsObject();

    private static JsonObject Api(JsonObject c) => c["services"]!["api"]!.AsObject();

    private static JsonObject Endpoint() => new() { ["address"] = "127.0.0.1", ["port"] = 9001 };

    private static JsonObject Hash(string source) => new() { ["policy"] = "consistent-hash", ["hash"] = new JsonObject { ["source"] = source } };

    private static JsonObject TlsListener(JsonArray serverNames) => new()
    {
        ["name"] = "tls",
        ["protocol"] = "tls-passthrough",
        ["service"] = "api",
        ["tls"] = new JsonObject { ["routes"] = new JsonArray(new JsonObject { ["name"] = "t", ["serverNames"] = serverNames, ["service"] = "api" }) },
    };

    // Filters for the docs' examples: "keys" reads a list of strings, "tenants" wants at least one, "x" throws in Create.
    private const string DocsPlugin = """
        namespace DocsFilters;
        public sealed class KeysFactory : IRequestFilterFactory
        {
            public string Name => "keys";
            public IRequestFilter Create(FilterSettings settings) { _ = settings.GetStrings("keys"); return new Pass(); }
        }
        public sealed class TenantsFactory : IRequestFilterFactory
        {
            public string Name => "tenants";
            public IRequestFilter Create(FilterSettings settings) =>
                settings.GetStrings("tenants").Count == 0 ? throw new FilterConfigException("tenants", "give at least one tenant") : new Pass();
        }
        public sealed class ThrowingFactory : IRequestFilterFactory
        {
            public string Name => "x";
            public IRequestFilter Create(FilterSettings settings) => throw new InvalidOperationException("not today");
        }
        public sealed class Pass : IRequestFilter
        {
            public ValueTask<FilterResult> OnRequestAsync(IRequestContext context, CancellationToken cancellationToken) => ValueTask.FromResult(FilterResult.Continue);
        }
        """;

    private static JsonArray Filters(params JsonObject[] entries) => new([.. entries.Cast<JsonNode?>()]);

    /// <summary>A config directory whose plugins folder holds the docs' filters and the functional tests' toolkit.</summary>
    private static string PluginConfigDirectory()
    {
        var directory = Directory.CreateTempSubdirectory("mesh-doc-plugins-").FullName;
        var plugins = Directory.CreateDirectory(Path.Combine(directory, "plugins")).FullName;
        File.WriteAllBytes(Path.Combine(plugins, "DocsFilters.dll"), CompiledDocsPlugin.Value);
        File.WriteAllBytes(Path.Combine(plugins, "Toolkit.dll"), CompiledToolkit.Value);
        return directory;
    }

    // Compiled once (Roslyn takes a moment), copied into each case's plugins folder.
    private static readonly Lazy<byte[]> CompiledDocsPlugin = new(() => Mesh.Tests.PluginCompiler.Compile("DocsFilters", DocsPlugin));

    private static readonly Lazy<byte[]> CompiledToolkit = new(() => Mesh.Tests.PluginCompiler.Compile("Toolkit", Plugins.TestPluginSources.Toolkit));

    private static async Task<string> ValidateWithPlugins(Action<JsonObject> change)
    {
        var config = Base();
        change(config);
        var path = Path.Combine(PluginConfigDirectory(), "sidecar.json");
        await File.WriteAllTextAsync(path, config.ToJsonString());
        return await Cli("validate", "--config", path);
    }

    // validate with a JavaScript filters directory holding auth.js with this source.
    private static async Task<string> ValidateWithJs(string authJs, Action<JsonObject> change)
    {
        var directory = Directory.CreateTempSubdirectory("mesh-docs-js-").FullName;
        try
        {
            Directory.CreateDirectory(Path.Combine(directory, "filters"));
            await File.WriteAllTextAsync(Path.Combine(directory, "filters", "auth.js"), authJs);
            var config = Base();
            change(config);
            var path = Path.Combine(directory, "sidecar.json");
            await File.WriteAllTextAsync(path, config.ToJsonString());
            return await Cli("validate", "--config", path);
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    // A sidecar whose route runs these filters, and the answer to one request.
    private static async Task<string> FilteredRequestAsync(JsonArray filters)
    {
        await using var backend = await TestBackend.StartAsync("b");
        var config = Base();
        Api(config)["endpoints"]![0]!["port"] = backend.Port;
        Route(config)["filters"] = filters;
        config["plugins"] = new JsonObject { ["directory"] = Path.Combine(PluginConfigDirectory(), "plugins") };
        await using var sidecar = await TestSidecar.StartFromJsonAsync(config.ToJsonString());
        using var client = Clients.Http1();
        using var response = await client.SendAsync(Clients.Get(sidecar.Listener("out"), "/"));
        return $"{(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}";
    }

    private static JsonObject ConsulService(JsonObject c)
    {
        Api(c)["discovery"] = "consul";
        Api(c).Remove("endpoints");
        return Api(c);
    }

    // A loopback port nothing listens on: bound, never listening, for as long as the test process lives.
    private static int DeadPort() => ((IPEndPoint)DeadSocket.LocalEndPoint!).Port;

    private static readonly Socket DeadSocket = BindOnly();

    private static Socket BindOnly()
    {
        var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        socket.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        return socket;
    }

    private static async Task<string> ConsulTrustDomainAsync()
    {
        await using var consul = await ConsulTestServer.StartAsync();
        return await RunAsync(c =>
        {
            c["identity"] = new JsonObject { ["source"] = "consul", ["trustDomain"] = "mesh.local" };
            c["consul"] = new JsonObject { ["address"] = consul.Address.ToString(), ["register"] = false };
        });
    }

    private static JsonObject Edge(PemPair pair, string[]? serverNames = null) => new()
    {
        ["serverNames"] = new JsonArray([.. (serverNames ?? ["edge.example.com"]).Select(n => (JsonNode?)JsonValue.Create(n))]),
        ["certificateFile"] = pair.CertificateFile,
        ["keyFile"] = pair.KeyFile,
    };

    private static JsonObject CaIdentity(string caDir, string trustDomain = TestPki.TrustDomain) =>
        new() { ["source"] = "ca", ["caDir"] = caDir, ["trustDomain"] = trustDomain };

    private static JsonObject FilesIdentity(PemPair leaf) => new()
    {
        ["source"] = "files",
        ["certificateFile"] = leaf.CertificateFile,
        ["keyFile"] = leaf.KeyFile,
        ["trustBundleFile"] = Pki.TrustBundle,
    };

    private static JsonObject Rules(params JsonObject[] rules) => new() { ["rules"] = new JsonArray([.. rules.Cast<JsonNode?>()]) };

    // A run that should refuse to start; stopped after the deadline if it starts anyway, so the test fails instead of hanging.
    private static async Task<string> RunAsync(Action<JsonObject> change)
    {
        var config = Base();
        change(config);
        var path = Path.Combine(Directory.CreateTempSubdirectory("mesh-doc-").FullName, "sidecar.json");
        await File.WriteAllTextAsync(path, config.ToJsonString());
        using var output = new StringWriter();
        using var error = new StringWriter();
        using var deadline = new CancellationTokenSource(TestSidecar.Deadline);
        var exit = await Program.InvokeAsync(["run", "--config", path], output, error, deadline.Token);
        return $"{output}{error}(exit {exit})";
    }

    /// <summary>The certificates and files the security messages are about, made once with <see cref="TestPki"/>.</summary>
    private static class Pki
    {
        private static readonly string Directory = System.IO.Directory.CreateTempSubdirectory("mesh-doc-pki-").FullName;
        private static readonly X509Certificate2 Ca = TestPki.CreateCa();

        public static readonly string CaDir = Folder("ca", dir => TestPki.Write(dir, "ca", Ca));

        public static readonly string NotCaDir = Folder("not-ca", dir => TestPki.Write(dir, "ca", TestPki.IssueLeaf(Ca, TestPki.Spiffe("web"))));

        public static readonly string ExpiredCaDir = Folder("expired-ca", dir => TestPki.Write(dir, "ca", ExpiredCa()));

        public static readonly string TrustBundle = TestPki.WriteCertificate(Directory, "bundle", Ca);

        public static readonly PemPair Edge = TestPki.Write(Directory, "edge", TestPki.IssueLeaf(Ca, null, dnsNames: ["edge.example.com"]));

        public static readonly PemPair OtherEdge = TestPki.Write(Directory, "other-edge", TestPki.IssueLeaf(Ca, null, dnsNames: ["edge.example.com"]));

        public static readonly PemPair ExpiredEdge = TestPki.Write(Directory, "expired-edge", TestPki.IssueLeaf(Ca, null, DateTimeOffset.UtcNow.AddDays(-10), DateTimeOffset.UtcNow.AddDays(-1), ["edge.example.com"]));

        public static readonly PemPair WebLeaf = TestPki.Write(Directory, "web", TestPki.IssueLeaf(Ca, TestPki.Spiffe("web")));

        public static readonly PemPair NoSpiffeLeaf = TestPki.Write(Directory, "no-spiffe", TestPki.IssueLeaf(Ca, null));

        public static readonly PemPair ForeignLeaf = TestPki.Write(Directory, "foreign", TestPki.IssueLeaf(Ca, TestPki.Spiffe("web", "x")));

        public static readonly string NotPem = WriteText("not-pem.crt", "this is not a certificate");

        private static string Folder(string name, Action<string> fill)
        {
            var folder = Path.Combine(Directory, name);
            System.IO.Directory.CreateDirectory(folder);
            fill(folder);
            return folder;
        }

        private static string WriteText(string name, string text)
        {
            var path = Path.Combine(Directory, name);
            File.WriteAllText(path, text);
            return path;
        }

        // A CA whose validity ended yesterday.
        private static X509Certificate2 ExpiredCa()
        {
            using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
            var request = new CertificateRequest("CN=Expired CA", key, HashAlgorithmName.SHA256);
            request.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
            request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, true));
            return request.CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-30), DateTimeOffset.UtcNow.AddDays(-1));
        }
    }

    private static Task<string> Validate(Action<JsonObject> change, params string[] extra)
    {
        var config = Base();
        change(config);
        return ValidateBytes(Encoding.UTF8.GetBytes(config.ToJsonString()), extra);
    }

    private static async Task<string> ValidateBytes(byte[] bytes, params string[] extra)
    {
        var path = Path.Combine(Directory.CreateTempSubdirectory("mesh-doc-").FullName, "sidecar.json");
        await File.WriteAllBytesAsync(path, bytes);
        return await Cli(["validate", "--config", path, .. extra]);
    }

    private static async Task<string> Cli(params string[] args)
    {
        using var output = new StringWriter();
        using var error = new StringWriter();
        var exit = await Program.InvokeAsync(args, output, error);
        return $"{output}{error}(exit {exit})";
    }

    private static async Task<string> RunWithPortTakenAsync(bool admin)
    {
        using var taken = new TcpListener(IPAddress.Loopback, 0);
        taken.Start();
        var config = Base();
        if (admin)
        {
            config["admin"]!["port"] = ((IPEndPoint)taken.LocalEndpoint).Port;
        }
        else
        {
            Listener(config)["port"] = ((IPEndPoint)taken.LocalEndpoint).Port;
        }

        var path = Path.Combine(Directory.CreateTempSubdirectory("mesh-doc-").FullName, "sidecar.json");
        await File.WriteAllTextAsync(path, config.ToJsonString());
        return await Cli("run", "--config", path);
    }

    private static async Task<string> RejectedReloadAsync()
    {
        var logs = new LogCapture();
        await using var sidecar = await TestSidecar.StartFromJsonAsync(BaseConfig, logs: logs);
        var bad = Base();
        Listener(bad)["port"] = 70000;
        await sidecar.WriteConfigAsync(bad.ToJsonString());
        await WaitForAsync(() => logs.WithEvent(2003).Count > 0);
        return string.Join('\n', logs.Entries.Select(e => e.Message));
    }

    private static async Task<string> NoRouteAsync()
    {
        var config = Base();
        Route(config)["match"] = new JsonObject { ["hosts"] = new JsonArray("api.example.com") };
        await using var sidecar = await TestSidecar.StartFromJsonAsync(config.ToJsonString());
        using var client = Clients.Http1();
        using var response = await client.SendAsync(Clients.Get(sidecar.Listener("out"), "/users/42", host: "www.example.com"));
        return $"{(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}";
    }

    private static async Task<string> UpstreamFailureAsync(bool silent)
    {
        using var endpoint = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        endpoint.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        if (silent)
        {
            endpoint.Listen(8);
        }

        var config = Base();
        Api(config)["endpoints"]![0]!["port"] = ((IPEndPoint)endpoint.LocalEndPoint!).Port;
        Api(config)["requestTimeoutMs"] = 300;
        // YARP's client, which reports the system's reason for the 502.
        config["performance"]!["meshHttp1Client"] = false;
        var logs = new LogCapture();
        await using var sidecar = await TestSidecar.StartFromJsonAsync(config.ToJsonString(), logs: logs);
        using var client = Clients.Http1();
        using var response = await client.SendAsync(Clients.Get(sidecar.Listener("out"), "/"));
        return $"{(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}\n{string.Join('\n', logs.WithEvent(3050).Select(e => e.Message))}";
    }

    private static async Task<string> DrainAsync(bool stuck, int drainTimeoutMs = 300)
    {
        using var giveUp = new CancellationTokenSource();
        var started = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var backend = await TestBackend.StartAsync("b", configure: app => app.Run(async context =>
        {
            started.TrySetResult();
            await Task.Delay(Timeout.Infinite, context.RequestAborted);
        }));
        var config = Base();
        Api(config)["endpoints"]![0]!["port"] = backend.Port;
        config["shutdown"] = new JsonObject { ["drainTimeoutMs"] = stuck ? drainTimeoutMs : 60_000 };
        var logs = new LogCapture();
        var sidecar = await TestSidecar.StartFromJsonAsync(config.ToJsonString(), logs: logs);
        using var client = Clients.Http1();
        Task<HttpResponseMessage>? request = null;
        if (stuck)
        {
            request = client.SendAsync(Clients.Get(sidecar.Listener("out"), "/"), giveUp.Token);
            await started.Task.WaitAsync(TestSidecar.Deadline);
        }

        var disposing = sidecar.DisposeAsync().AsTask();
        var ready = "";
        if (stuck && drainTimeoutMs > 1_000)
        {
            // Asked while the drain runs: the stuck request holds it open until the client gives up.
            using var admin = Clients.Http1();
            using var deadline = new CancellationTokenSource(TestSidecar.Deadline);
            while (!ready.StartsWith("503", StringComparison.Ordinal))
            {
                using var response = await admin.GetAsync(new Uri(sidecar.Admin, "/ready"), deadline.Token);
                ready = $"{(int)response.StatusCode} {await response.Content.ReadAsStringAsync(deadline.Token)}";
                if (!ready.StartsWith("503", StringComparison.Ordinal))
                {
                    await Task.Delay(20, deadline.Token);
                }
            }

            await giveUp.CancelAsync();
        }

        await disposing.WaitAsync(TestSidecar.Deadline);
        if (request is not null)
        {
            // Cut at the deadline, or given up by the client; never left hanging.
            var ended = await Assert.ThrowsAnyAsync<Exception>(() => request.WaitAsync(TestSidecar.Deadline));
            Assert.True(ended is HttpRequestException or OperationCanceledException, ended.ToString());
        }

        return $"{ready}\n{string.Join('\n', logs.Entries.Select(e => e.Message))}";
    }

    private static Task<string> SourceAsync(string file) =>
        File.ReadAllTextAsync(Path.Combine(Mesh.Tests.TestFixtures.RepositoryRoot, "src", "Sidecar", file));

    private static async Task WaitForAsync(Func<bool> condition)
    {
        using var deadline = new CancellationTokenSource(TestSidecar.Deadline);
        while (!condition())
        {
            await Task.Delay(20, deadline.Token);
        }
    }

    [GeneratedRegex(@"`([^`]+)`")]
    private static partial Regex InlineCode();

    [GeneratedRegex(@"\bMessages?\b|Rules and messages")]
    private static partial Regex MessagesHeading();

    [GeneratedRegex(@"^\d\d:\d\d:\d\d\.\d{3} \w+: [\w.]+\[\d+\] ")]
    private static partial Regex LogPrefix();

    [GeneratedRegex(@"PATH|FILE|NAME|REASON|\bKEY\b|\bCERT\b|\bDIR\b|\bID\b|\.\.\.|a, b, c|host/path|/tmp/\S+|\bN\b|\bL\b|\bC\b|127\.0\.0\.1:\d+|(?<=state version )\d+")]
    private static partial Regex Placeholder();

    [GeneratedRegex(@"\d+")]
    private static partial Regex Digits();
}
