// Semantic checks on bound options: ranges, references between sections, names, regexes and patterns.
using System.Net;
using System.Text.RegularExpressions;
using Mesh.Sidecar.Routing;

namespace Mesh.Sidecar.Configuration;

/// <summary>Finds every semantic problem in a bound <see cref="MeshOptions"/>, each with its JSON path.</summary>
internal static partial class ConfigValidator
{
    private static readonly string[] KnownProviders = ["static", "consul"];
    private static readonly string[] KnownLevels = ["Trace", "Debug", "Information", "Warning", "Error", "Critical", "None"];

    public static void Validate(MeshOptions options, List<ConfigError> errors)
    {
        ValidateLocalService(options, errors);
        CheckAddress(options.Admin.Address, "admin.address", errors);
        CheckPort(options.Admin.Port, "admin.port", allowZero: true, errors);

        if (options.Listeners.Count == 0)
        {
            errors.Add(new ConfigError("listeners", "at least one listener is required"));
        }

        var listenerNames = new Dictionary<string, int>(StringComparer.Ordinal);
        var sockets = new Dictionary<string, string>(StringComparer.Ordinal) { [$"tcp/{options.Admin.Address}:{options.Admin.Port}"] = "admin" };
        for (var i = 0; i < options.Listeners.Count; i++)
        {
            ValidateListener(options.Listeners[i], $"listeners[{i}]", listenerNames, sockets, i, errors);
            ValidateL4Listener(options, options.Listeners[i], $"listeners[{i}]", errors);
            ValidateConnectionFilters(options.Listeners[i], $"listeners[{i}]", errors);
        }

        var routeNames = new HashSet<string>(StringComparer.Ordinal);
        for (var i = 0; i < options.Routes.Count; i++)
        {
            ValidateRoute(options, options.Routes[i], $"routes[{i}]", listenerNames, routeNames, errors);
        }

        foreach (var (name, service) in options.Services)
        {
            ValidateService(name, service, $"services.{name}", errors);
            ValidateConsulService(options, service, $"services.{name}", errors);
        }

        ValidateSecurity(options, errors);
        ValidateConsul(options, errors);

        if (options.Performance.GcGen0SizeMb is < 0 or > 256)
        {
            errors.Add(new ConfigError("performance.gcGen0SizeMb", $"{options.Performance.GcGen0SizeMb} is out of range; use 0 (the runtime's choice) to 256"));
        }

        CheckNotNegative(options.Shutdown.DrainTimeoutMs, "shutdown.drainTimeoutMs", errors);
        ValidatePlugins(options, errors);
        ValidateJsFilters(options, errors);

        if (!KnownLevels.Contains(options.Logging.Level, StringComparer.OrdinalIgnoreCase))
        {
            errors.Add(new ConfigError("logging.level", $"'{options.Logging.Level}' is not a log level; use one of {string.Join(", ", KnownLevels)}"));
        }
    }

    private static void ValidateLocalService(MeshOptions options, List<ConfigError> errors)
    {
        var service = options.Service;
        CheckName(service.Name, "service.name", errors);
        CheckHost(service.Address, "service.address", errors);
        CheckPort(service.Port, "service.port", allowZero: true, errors);
        CheckOneOf(service.Protocol, "service.protocol", [UpstreamProtocols.Http1, UpstreamProtocols.Http2], errors);
        if (service.Port == 0 && options.Listeners.Any(l => l.Direction == Directions.Inbound))
        {
            errors.Add(new ConfigError("service.port", "an inbound listener needs the local app's port"));
        }
    }

    private static void ValidateListener(ListenerOptions listener, string path, Dictionary<string, int> names, Dictionary<string, string> sockets, int index, List<ConfigError> errors)
    {
        if (CheckName(listener.Name, path + ".name", errors) && !names.TryAdd(listener.Name, index))
        {
            errors.Add(new ConfigError(path + ".name", $"'{listener.Name}' is already the name of listeners[{names[listener.Name]}]"));
        }

        CheckAddress(listener.Address, path + ".address", errors);
        // UDP and TCP sockets may share a port number.
        var socket = $"{(listener.Protocol == ListenerProtocols.Udp ? "udp" : "tcp")}/{listener.Address}:{listener.Port}";
        if (CheckPort(listener.Port, path + ".port", allowZero: true, errors) && listener.Port != 0 && !sockets.TryAdd(socket, path))
        {
            errors.Add(new ConfigError(path + ".port", $"{listener.Address}:{listener.Port} is already used by {sockets[socket]}"));
        }

        CheckOneOf(listener.Direction, path + ".direction", [Directions.Inbound, Directions.Outbound], errors);
        CheckOneOf(listener.Protocol, path + ".protocol", ListenerProtocols.All, errors);
    }

    private static void ValidateL4Listener(MeshOptions options, ListenerOptions listener, string path, List<ConfigError> errors)
    {
        var protocol = listener.Protocol;
        if (protocol is ListenerProtocols.Tcp or ListenerProtocols.Udp && string.IsNullOrEmpty(listener.Service))
        {
            errors.Add(new ConfigError(path + ".service", $"a {protocol} listener needs a service"));
        }

        if (!string.IsNullOrEmpty(listener.Service))
        {
            CheckL4Service(options, listener.Service, path + ".service", errors);
        }

        var tcp = listener.Tcp;
        CheckPositive(tcp.ConnectTimeoutMs, path + ".tcp.connectTimeoutMs", errors);
        CheckNotNegative(tcp.IdleTimeoutMs, path + ".tcp.idleTimeoutMs", errors);
        CheckNotNegative(tcp.MaxConnections, path + ".tcp.maxConnections", errors);
        CheckPositive(listener.DetectTimeoutMs, path + ".detectTimeoutMs", errors);
        CheckPositive(listener.Udp.FlowIdleTimeoutMs, path + ".udp.flowIdleTimeoutMs", errors);
        CheckPositive(listener.Udp.MaxFlows, path + ".udp.maxFlows", errors);

        var tls = listener.Tls;
        CheckOneOf(tls.NoSni, path + ".tls.noSni", [NoSniActions.Default, NoSniActions.Refuse], errors);
        CheckPositive(tls.PeekTimeoutMs, path + ".tls.peekTimeoutMs", errors);
        if (tls.Routes.Count > 0 && protocol is not (ListenerProtocols.TlsPassthrough or ListenerProtocols.Auto))
        {
            errors.Add(new ConfigError(path + ".tls.routes", $"SNI routes need protocol tls-passthrough or auto, not {protocol}"));
        }

        var names = new HashSet<string>(StringComparer.Ordinal);
        for (var i = 0; i < tls.Routes.Count; i++)
        {
            var route = tls.Routes[i];
            var at = $"{path}.tls.routes[{i}]";
            if (CheckName(route.Name, at + ".name", errors) && !names.Add(route.Name))
            {
                errors.Add(new ConfigError(at + ".name", $"'{route.Name}' is already the name of another SNI route"));
            }

            if (route.ServerNames.Count == 0)
            {
                errors.Add(new ConfigError(at + ".serverNames", "give at least one server name ('*' matches any)"));
            }

            for (var j = 0; j < route.ServerNames.Count; j++)
            {
                CheckHostPattern(route.ServerNames[j], $"{at}.serverNames[{j}]", errors);
            }

            if (string.IsNullOrEmpty(route.Service))
            {
                errors.Add(new ConfigError(at + ".service", "is required"));
            }
            else
            {
                CheckL4Service(options, route.Service, at + ".service", errors);
            }
        }
    }

    private static void CheckL4Service(MeshOptions options, string service, string path, List<ConfigError> errors)
    {
        if (!options.Services.TryGetValue(service, out var target))
        {
            errors.Add(new ConfigError(path, $"no service named '{service}' in services"));
        }
        else if (target.LoadBalancing.Hash is { Source: not HashSources.ClientAddress } hash && target.LoadBalancing.Policy == LoadBalancingPolicies.ConsistentHash)
        {
            errors.Add(new ConfigError(path, $"service '{service}' hashes on a {hash.Source}, which an L4 listener cannot see; use client-address"));
        }
    }

    private static void CheckPositive(int value, string path, List<ConfigError> errors)
    {
        if (value <= 0)
        {
            errors.Add(new ConfigError(path, $"{value} must be above 0"));
        }
    }

    private static void CheckNotNegative(int value, string path, List<ConfigError> errors)
    {
        if (value < 0)
        {
            errors.Add(new ConfigError(path, $"{value} must be 0 or more"));
        }
    }

    private static void CheckHostPattern(string host, string path, List<ConfigError> errors)
    {
        var name = host.StartsWith("*.", StringComparison.Ordinal) ? host[2..] : host;
        if (host != "*" && (name.Length == 0 || name.Contains('*', StringComparison.Ordinal) || Uri.CheckHostName(name) == UriHostNameType.Unknown))
        {
            errors.Add(new ConfigError(path, $"'{host}' is not a host name, '*.suffix' or '*'"));
        }
    }

    private static void ValidateRoute(MeshOptions options, RouteOptions route, string path, Dictionary<string, int> listeners, HashSet<string> names, List<ConfigError> errors)
    {
        if (CheckName(route.Name, path + ".name", errors) && !names.Add(route.Name))
        {
            errors.Add(new ConfigError(path + ".name", $"'{route.Name}' is already the name of another route"));
        }

        var onlyInbound = route.Listeners.Count > 0;
        for (var i = 0; i < route.Listeners.Count; i++)
        {
            if (!listeners.TryGetValue(route.Listeners[i], out var index))
            {
                errors.Add(new ConfigError($"{path}.listeners[{i}]", $"no listener named '{route.Listeners[i]}'"));
                onlyInbound = false;
            }
            else
            {
                if (!ListenerProtocols.CarriesHttp(options.Listeners[index].Protocol))
                {
                    errors.Add(new ConfigError($"{path}.listeners[{i}]", $"listener '{route.Listeners[i]}' is {options.Listeners[index].Protocol}; HTTP routes apply to http and auto listeners (use tls.routes or service for L4)"));
                }

                if (options.Listeners[index].Direction != Directions.Inbound)
                {
                    onlyInbound = false;
                }
            }
        }

        if (string.IsNullOrEmpty(route.Service))
        {
            if (!onlyInbound && route.Split is null)
            {
                errors.Add(new ConfigError(path + ".service", "is required (only routes on inbound listeners may leave it out to mean the local app)"));
            }
        }
        else if (!options.Services.ContainsKey(route.Service))
        {
            errors.Add(new ConfigError(path + ".service", $"no service named '{route.Service}' in services"));
        }

        ValidateMatch(route.Match, path + ".match", errors);
        ValidateTransforms(route.Transforms, path + ".transforms", errors);
        ValidateRoutePolicy(options, route, path, errors);
        ValidateFilters(route.Filters, path + ".filters", errors);
    }

    private static void ValidateMatch(RouteMatchOptions match, string path, List<ConfigError> errors)
    {
        for (var i = 0; i < match.Hosts.Count; i++)
        {
            CheckHostPattern(match.Hosts[i], $"{path}.hosts[{i}]", errors);
        }

        if (match.Path is { } pathMatch)
        {
            var set = new[] { pathMatch.Prefix, pathMatch.Exact, pathMatch.Pattern }.Count(v => v is not null);
            if (set != 1)
            {
                errors.Add(new ConfigError(path + ".path", "give exactly one of prefix, exact or pattern"));
            }
            else if ((pathMatch.Prefix ?? pathMatch.Exact) is { } literal && !literal.StartsWith('/'))
            {
                errors.Add(new ConfigError(path + ".path." + (pathMatch.Prefix is not null ? "prefix" : "exact"), $"'{literal}' must start with '/'"));
            }
            else if (pathMatch.Pattern is { } pattern && PathMatcher.Validate(pattern) is { } problem)
            {
                errors.Add(new ConfigError(path + ".path.pattern", $"'{pattern}' {problem}"));
            }
        }

        for (var i = 0; i < match.Methods.Count; i++)
        {
            if (!TokenPattern().IsMatch(match.Methods[i]))
            {
                errors.Add(new ConfigError($"{path}.methods[{i}]", $"'{match.Methods[i]}' is not an HTTP method"));
            }
        }

        ValidateValueMatches(match.Headers, path + ".headers", errors);
        ValidateValueMatches(match.Query, path + ".query", errors);
        ValidateValueMatches(match.Cookies, path + ".cookies", errors);
    }

    private static void ValidateValueMatches(IReadOnlyList<ValueMatchOptions> matches, string path, List<ConfigError> errors)
    {
        for (var i = 0; i < matches.Count; i++)
        {
            var match = matches[i];
            var at = $"{path}[{i}]";
            if (string.IsNullOrEmpty(match.Name))
            {
                errors.Add(new ConfigError(at + ".name", "is required"));
            }

            var set = new object?[] { match.Exact, match.Prefix, match.Regex, match.Present }.Count(v => v is not null);
            if (set != 1)
            {
                errors.Add(new ConfigError(at, "give exactly one of exact, prefix, regex or present"));
            }
            else if (match.Regex is { } regex)
            {
                try
                {
                    _ = new Regex(regex, RegexOptions.CultureInvariant);
                }
                catch (ArgumentException ex)
                {
                    errors.Add(new ConfigError(at + ".regex", $"invalid regular expression: {ex.Message}"));
                }
            }
        }
    }

    private static void ValidateTransforms(TransformOptions transforms, string path, List<ConfigError> errors)
    {
        if (transforms.StripPrefix is { } strip && !strip.StartsWith('/'))
        {
            errors.Add(new ConfigError(path + ".stripPrefix", $"'{strip}' must start with '/'"));
        }

        ValidateHeaders(transforms.RequestHeaders, path + ".requestHeaders", errors);
        ValidateHeaders(transforms.ResponseHeaders, path + ".responseHeaders", errors);
    }

    private static void ValidateHeaders(HeaderTransformOptions headers, string path, List<ConfigError> errors)
    {
        foreach (var name in headers.Set.Keys)
        {
            CheckHeaderName(name, $"{path}.set.{name}", errors);
        }

        foreach (var name in headers.Add.Keys)
        {
            CheckHeaderName(name, $"{path}.add.{name}", errors);
        }

        for (var i = 0; i < headers.Remove.Count; i++)
        {
            CheckHeaderName(headers.Remove[i], $"{path}.remove[{i}]", errors);
        }
    }

    private static void ValidateService(string name, ServiceOptions service, string path, List<ConfigError> errors)
    {
        if (!NamePattern().IsMatch(name))
        {
            errors.Add(new ConfigError(path, $"'{name}' is not a valid service name (letters, digits, '.', '_' and '-')"));
        }

        if (CheckOneOf(service.Discovery, path + ".discovery", KnownProviders, errors)
            && service.Discovery == "static" && service.Endpoints.Count == 0)
        {
            errors.Add(new ConfigError(path + ".endpoints", "static discovery needs at least one endpoint"));
        }

        for (var i = 0; i < service.Endpoints.Count; i++)
        {
            var endpoint = service.Endpoints[i];
            var at = $"{path}.endpoints[{i}]";
            CheckHost(endpoint.Address, at + ".address", errors);
            CheckPort(endpoint.Port, at + ".port", allowZero: false, errors);
            if (endpoint.Weight is < 1 or > 10_000)
            {
                errors.Add(new ConfigError(at + ".weight", $"{endpoint.Weight} is not a weight from 1 to 10000"));
            }
        }

        var lb = service.LoadBalancing;
        if (CheckOneOf(lb.Policy, path + ".loadBalancing.policy", LoadBalancingPolicies.All, errors) && lb.Policy == LoadBalancingPolicies.ConsistentHash)
        {
            if (lb.Hash is null)
            {
                errors.Add(new ConfigError(path + ".loadBalancing.hash", "consistent-hash needs a hash key (source header, cookie or client-address)"));
            }
            else if (CheckOneOf(lb.Hash.Source, path + ".loadBalancing.hash.source", [HashSources.Header, HashSources.Cookie, HashSources.ClientAddress], errors)
                && lb.Hash.Source != HashSources.ClientAddress && string.IsNullOrEmpty(lb.Hash.Name))
            {
                errors.Add(new ConfigError(path + ".loadBalancing.hash.name", $"a {lb.Hash.Source} hash needs the {lb.Hash.Source} name"));
            }
        }

        CheckOneOf(service.Protocol, path + ".protocol", [UpstreamProtocols.Http1, UpstreamProtocols.Http2], errors);
        if (service.ConnectTimeoutMs <= 0)
        {
            errors.Add(new ConfigError(path + ".connectTimeoutMs", $"{service.ConnectTimeoutMs} must be above 0"));
        }

        if (service.RequestTimeoutMs <= 0)
        {
            errors.Add(new ConfigError(path + ".requestTimeoutMs", $"{service.RequestTimeoutMs} must be above 0"));
        }

        ValidateServiceResilience(service, path, errors);
    }

    private static bool CheckName(string name, string path, List<ConfigError> errors)
    {
        if (string.IsNullOrEmpty(name))
        {
            errors.Add(new ConfigError(path, "is required"));
            return false;
        }

        if (!NamePattern().IsMatch(name))
        {
            errors.Add(new ConfigError(path, $"'{name}' is not a valid name (letters, digits, '.', '_' and '-')"));
            return false;
        }

        return true;
    }

    private static bool CheckPort(int port, string path, bool allowZero, List<ConfigError> errors)
    {
        if (port is < 0 or > 65535 || (port == 0 && !allowZero))
        {
            errors.Add(new ConfigError(path, $"{port} is not a port"));
            return false;
        }

        return true;
    }

    private static void CheckAddress(string address, string path, List<ConfigError> errors)
    {
        if (!IPAddress.TryParse(address, out _))
        {
            errors.Add(new ConfigError(path, $"'{address}' is not an IP address"));
        }
    }

    private static void CheckHost(string address, string path, List<ConfigError> errors)
    {
        if (string.IsNullOrEmpty(address))
        {
            errors.Add(new ConfigError(path, "is required"));
        }
        else if (!IPAddress.TryParse(address, out _) && Uri.CheckHostName(address) != UriHostNameType.Dns)
        {
            errors.Add(new ConfigError(path, $"'{address}' is not an IP address or host name"));
        }
    }

    private static void CheckHeaderName(string name, string path, List<ConfigError> errors)
    {
        if (!TokenPattern().IsMatch(name))
        {
            errors.Add(new ConfigError(path, $"'{name}' is not a valid header name"));
        }
    }

    private static bool CheckOneOf(string value, string path, IReadOnlyList<string> allowed, List<ConfigError> errors)
    {
        if (!allowed.Contains(value, StringComparer.Ordinal))
        {
            errors.Add(new ConfigError(path, $"'{value}' is not one of: {string.Join(", ", allowed)}"));
            return false;
        }

        return true;
    }

    [GeneratedRegex("^[A-Za-z0-9][A-Za-z0-9._-]*$")]
    private static partial Regex NamePattern();

    // RFC 9110 token characters.
    [GeneratedRegex("^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")]
    private static partial Regex TokenPattern();
}
