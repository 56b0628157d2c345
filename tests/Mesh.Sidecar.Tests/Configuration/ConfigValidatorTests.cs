using System.Text.Json.Nodes;
using Mesh.Sidecar.Configuration;
using static Mesh.Sidecar.Tests.Configuration.TestConfigs;

namespace Mesh.Sidecar.Tests.Configuration;

public class ConfigValidatorTests
{
    [Fact]
    public void Validate_SmallValidConfig_IsValid()
    {
        var result = Parse(Valid());

        Assert.True(result.IsValid, string.Join("\n", result.Errors));
        Assert.NotNull(result.Options);
    }

    [Fact]
    public void Validate_BoundOptionsDirectly_ReportsNothingForValidAndEverythingForDefaults()
    {
        var errors = new List<ConfigError>();
        ConfigValidator.Validate(Parse(Valid()).Options!, errors);
        Assert.Empty(errors);

        ConfigValidator.Validate(new MeshOptions(), errors);
        Assert.Equal(["service.name", "listeners"], errors.Select(e => e.Path));
    }

    // ---- local service and admin ----

    [Theory]
    [InlineData("", "is required")]
    [InlineData("my web", "'my web' is not a valid name (letters, digits, '.', '_' and '-')")]
    [InlineData("-web", "'-web' is not a valid name")]
    public void Validate_BadLocalServiceName_ReportsServiceName(string name, string message)
    {
        var result = With(c => c["service"]!["name"] = name);

        SingleError(result, "service.name", message);
    }

    [Fact]
    public void Validate_LocalServiceAddressNotAHost_ReportsServiceAddress()
    {
        var result = With(c => c["service"]!["address"] = "not a host");

        SingleError(result, "service.address", "'not a host' is not an IP address or host name");
    }

    [Fact]
    public void Validate_LocalServiceProtocolUnknown_ReportsServiceProtocol()
    {
        var result = With(c => c["service"]!["protocol"] = "http3");

        SingleError(result, "service.protocol", "'http3' is not one of: http1, http2");
    }

    [Fact]
    public void Validate_InboundListenerWithoutLocalServicePort_ReportsServicePort()
    {
        var result = With(c => Listener(0, c)["direction"] = "inbound");

        var error = SingleError(result, "service.port", "an inbound listener needs the local app's port");
        Assert.Equal("service.port: an inbound listener needs the local app's port", error.ToString());
    }

    [Fact]
    public void Validate_InboundListenerWithLocalServicePort_IsValid()
    {
        var result = With(c =>
        {
            c["service"]!["port"] = 8080;
            Listener(0, c)["direction"] = "inbound";
        });

        Assert.True(result.IsValid, string.Join("\n", result.Errors));
    }

    [Fact]
    public void Validate_AdminAddressNotAnIp_ReportsAdminAddress()
    {
        var result = With(c => c["admin"]!["address"] = "localhost");

        SingleError(result, "admin.address", "'localhost' is not an IP address");
    }

    [Fact]
    public void Validate_AdminPortOutOfRange_ReportsAdminPort()
    {
        var result = With(c => c["admin"]!["port"] = 65536);

        var error = SingleError(result, "admin.port", "65536 is not a port");
        Assert.Equal("admin.port: 65536 is not a port", error.ToString());
    }

    // ---- listeners ----

    [Fact]
    public void Validate_NoListeners_ReportsListenerRequired()
    {
        var result = With(c => c.Remove("listeners"));

        var error = SingleError(result, "listeners", "at least one listener is required");
        Assert.Equal("listeners: at least one listener is required", error.ToString());
    }

    [Fact]
    public void Validate_SecondListenerPort70000_ReportsExactMessage()
    {
        var result = With(c => c["listeners"]!.AsArray().Add(SecondListener("out2", 70000)));

        var error = SingleError(result, "listeners[1].port", "70000 is not a port");
        Assert.Equal("listeners[1].port: 70000 is not a port", error.ToString());
    }

    [Fact]
    public void Validate_NegativeListenerPort_ReportsNotAPort()
    {
        var result = With(c => Listener(0, c)["port"] = -1);

        SingleError(result, "listeners[0].port", "-1 is not a port");
    }

    [Fact]
    public void Validate_ListenerPortZero_IsValid()
    {
        var result = With(c => Listener(0, c)["port"] = 0);

        Assert.True(result.IsValid, string.Join("\n", result.Errors));
    }

    [Theory]
    [InlineData("localhost")]
    [InlineData("not-an-ip")]
    [InlineData("256.0.0.1")]
    public void Validate_ListenerAddressNotAnIp_ReportsListenerAddress(string address)
    {
        var result = With(c => Listener(0, c)["address"] = address);

        SingleError(result, "listeners[0].address", $"'{address}' is not an IP address");
    }

    [Fact]
    public void Validate_EmptyListenerAddress_ReportsListenerAddress()
    {
        // An explicit "" must not silently become the default 127.0.0.1.
        var result = With(c => Listener(0, c)["address"] = "");

        SingleError(result, "listeners[0].address", "'' is not an IP address");
    }

    [Fact]
    public void Validate_ListenerIpv6Address_IsValid()
    {
        var result = With(c => Listener(0, c)["address"] = "::1");

        Assert.True(result.IsValid, string.Join("\n", result.Errors));
    }

    [Theory]
    [InlineData("", "is required")]
    [InlineData("out bound", "'out bound' is not a valid name")]
    public void Validate_BadListenerName_ReportsListenerName(string name, string message)
    {
        // A route naming no listener keeps the config otherwise valid.
        var result = With(c => Listener(0, c)["name"] = name);

        SingleError(result, "listeners[0].name", message);
    }

    [Fact]
    public void Validate_DuplicateListenerName_ReportsSecondWithFirstIndex()
    {
        var result = With(c => c["listeners"]!.AsArray().Add(SecondListener("out", 15002)));

        var error = SingleError(result, "listeners[1].name", "'out' is already the name of listeners[0]");
        Assert.Equal("listeners[1].name: 'out' is already the name of listeners[0]", error.ToString());
    }

    [Fact]
    public void Validate_DuplicateAddressAndPort_ReportsSecondListener()
    {
        var result = With(c => c["listeners"]!.AsArray().Add(SecondListener("out2", 15001)));

        var error = SingleError(result, "listeners[1].port", "127.0.0.1:15001 is already used by listeners[0]");
        Assert.Equal("listeners[1].port: 127.0.0.1:15001 is already used by listeners[0]", error.ToString());
    }

    [Fact]
    public void Validate_ListenerOnAdminSocket_ReportsUsedByAdmin()
    {
        var result = With(c => Listener(0, c)["port"] = 19000);

        SingleError(result, "listeners[0].port", "127.0.0.1:19000 is already used by admin");
    }

    [Fact]
    public void Validate_SamePortOnOtherAddress_IsValid()
    {
        var result = With(c =>
        {
            var second = SecondListener("out2", 15001);
            second["address"] = "127.0.0.2";
            c["listeners"]!.AsArray().Add(second);
        });

        Assert.True(result.IsValid, string.Join("\n", result.Errors));
    }

    [Fact]
    public void Validate_TwoListenersOnPortZero_IsValid()
    {
        var result = With(c =>
        {
            Listener(0, c)["port"] = 0;
            c["listeners"]!.AsArray().Add(SecondListener("out2", 0));
        });

        Assert.True(result.IsValid, string.Join("\n", result.Errors));
    }

    [Fact]
    public void Validate_UnknownDirection_ReportsListenerDirection()
    {
        var result = With(c => Listener(0, c)["direction"] = "sideways");

        var error = SingleError(result, "listeners[0].direction", "'sideways' is not one of: inbound, outbound");
        Assert.Equal("listeners[0].direction: 'sideways' is not one of: inbound, outbound", error.ToString());
    }

    [Fact]
    public void Validate_DirectionInOtherCase_ReportsListenerDirection()
    {
        var result = With(c => Listener(0, c)["direction"] = "Outbound");

        SingleError(result, "listeners[0].direction", "'Outbound' is not one of: ");
    }

    [Fact]
    public void Validate_UnknownListenerProtocol_ReportsListenerProtocol()
    {
        var result = With(c => Listener(0, c)["protocol"] = "quic");

        var error = SingleError(result, "listeners[0].protocol", "'quic' is not one of: ");
        Assert.Contains("http", error.Message, StringComparison.Ordinal);
    }

    // ---- routes ----

    [Fact]
    public void Validate_RouteWithoutName_ReportsNameRequired()
    {
        var result = With(c => Route(c).Remove("name"));

        var error = SingleError(result, "routes[0].name", "is required");
        Assert.Equal("routes[0].name: is required", error.ToString());
    }

    [Fact]
    public void Validate_RouteNameInvalid_ReportsRouteName()
    {
        var result = With(c => Route(c)["name"] = "my route");

        SingleError(result, "routes[0].name", "'my route' is not a valid name");
    }

    [Fact]
    public void Validate_DuplicateRouteName_ReportsSecondRoute()
    {
        var result = With(c => c["routes"]!.AsArray().Add(new JsonObject { ["name"] = "r", ["service"] = "api" }));

        var error = SingleError(result, "routes[1].name", "'r' is already the name of another route");
        Assert.Equal("routes[1].name: 'r' is already the name of another route", error.ToString());
    }

    [Fact]
    public void Validate_RouteToUnknownListener_ReportsRouteListener()
    {
        var result = With(c => Route(c)["listeners"] = new JsonArray("out", "nope"));

        var error = SingleError(result, "routes[0].listeners[1]", "no listener named 'nope'");
        Assert.Equal("routes[0].listeners[1]: no listener named 'nope'", error.ToString());
    }

    [Fact]
    public void Validate_RouteToUnknownService_ReportsRouteService()
    {
        var result = With(c => Route(c)["service"] = "nope");

        var error = SingleError(result, "routes[0].service", "no service named 'nope' in services");
        Assert.Equal("routes[0].service: no service named 'nope' in services", error.ToString());
    }

    [Fact]
    public void Validate_ServiceNameInOtherCase_ReportsUnknownService()
    {
        var result = With(c => Route(c)["service"] = "API");

        SingleError(result, "routes[0].service", "no service named 'API' in services");
    }

    [Fact]
    public void Validate_RouteWithoutServiceOnOutbound_ReportsServiceRequired()
    {
        var result = With(c => Route(c).Remove("service"));

        var error = SingleError(result, "routes[0].service", "is required (only routes on inbound listeners may leave it out to mean the local app)");
        Assert.Equal("routes[0].service: is required (only routes on inbound listeners may leave it out to mean the local app)", error.ToString());
    }

    [Fact]
    public void Validate_RouteWithoutServiceOnNamedOutboundListener_ReportsServiceRequired()
    {
        var result = With(c =>
        {
            Route(c).Remove("service");
            Route(c)["listeners"] = new JsonArray("out");
        });

        SingleError(result, "routes[0].service", "is required");
    }

    [Fact]
    public void Validate_RouteWithoutServiceOnInboundListener_IsValid()
    {
        var result = With(c =>
        {
            c["service"]!["port"] = 8080;
            Listener(0, c)["direction"] = "inbound";
            Route(c).Remove("service");
            Route(c)["listeners"] = new JsonArray("out");
        });

        Assert.True(result.IsValid, string.Join("\n", result.Errors));
    }

    [Fact]
    public void Validate_RouteWithoutServiceOnUnknownListener_ReportsBoth()
    {
        var result = With(c =>
        {
            Route(c).Remove("service");
            Route(c)["listeners"] = new JsonArray("nope");
        });

        Assert.Equal(["routes[0].listeners[0]", "routes[0].service"], result.Errors.Select(e => e.Path));
    }

    // ---- route match ----

    [Theory]
    [InlineData("a*b.com")]
    [InlineData("*.")]
    [InlineData("*.*.example.com")]
    [InlineData("api.example.com:8080")]
    public void Validate_HostPatternInvalid_ReportsHost(string host)
    {
        var result = With(c => Match(c)["hosts"] = new JsonArray("api.example.com", host));

        var error = SingleError(result, "routes[0].match.hosts[1]", $"'{host}' is not a host name, '*.suffix' or '*'");
        Assert.Equal($"routes[0].match.hosts[1]: '{host}' is not a host name, '*.suffix' or '*'", error.ToString());
    }

    [Fact]
    public void Validate_EmptyHostInList_ReportsHost()
    {
        // An explicit "" must not be dropped: without it the route would match every host.
        var result = With(c => Match(c)["hosts"] = new JsonArray("api.example.com", ""));

        SingleError(result, "routes[0].match.hosts[1]", "'' is not a host name, '*.suffix' or '*'");
    }

    [Theory]
    [InlineData("api.example.com")]
    [InlineData("*.example.com")]
    [InlineData("*")]
    [InlineData("localhost")]
    public void Validate_HostPatternValid_IsValid(string host)
    {
        var result = With(c => Match(c)["hosts"] = new JsonArray(host));

        Assert.True(result.IsValid, string.Join("\n", result.Errors));
    }

    [Fact]
    public void Validate_PathWithTwoKinds_ReportsExactlyOne()
    {
        var result = With(c => Match(c)["path"] = new JsonObject { ["prefix"] = "/a", ["exact"] = "/a" });

        var error = SingleError(result, "routes[0].match.path", "give exactly one of prefix, exact or pattern");
        Assert.Equal("routes[0].match.path: give exactly one of prefix, exact or pattern", error.ToString());
    }

    [Fact]
    public void Validate_PathWithAllThreeKinds_ReportsExactlyOne()
    {
        var result = With(c => Match(c)["path"] = new JsonObject { ["prefix"] = "/a", ["exact"] = "/a", ["pattern"] = "/{a}" });

        SingleError(result, "routes[0].match.path", "give exactly one of prefix, exact or pattern");
    }

    [Theory]
    [InlineData("prefix")]
    [InlineData("exact")]
    public void Validate_PathNotStartingWithSlash_ReportsKind(string kind)
    {
        var result = With(c => Match(c)["path"] = new JsonObject { [kind] = "api" });

        var error = SingleError(result, $"routes[0].match.path.{kind}", "'api' must start with '/'");
        Assert.Equal($"routes[0].match.path.{kind}: 'api' must start with '/'", error.ToString());
    }

    [Fact]
    public void Validate_PatternNotStartingWithSlash_ReportsPattern()
    {
        var result = With(c => Match(c)["path"] = new JsonObject { ["pattern"] = "api/{id}" });

        SingleError(result, "routes[0].match.path.pattern", "'api/{id}' must start with '/'");
    }

    [Theory]
    [InlineData("/a/x{id}", "x{id}")]
    [InlineData("/a/{id}x", "{id}x")]
    [InlineData("/a/{id", "{id")]
    [InlineData("/a/id}", "id}")]
    [InlineData("/a/{}", "{}")]
    public void Validate_BadPatternSegment_ReportsSegment(string pattern, string segment)
    {
        var result = With(c => Match(c)["path"] = new JsonObject { ["pattern"] = pattern });

        var error = SingleError(result, "routes[0].match.path.pattern", $"'{pattern}' segment '{segment}' must be a literal, '{{name}}' or '{{**name}}'");
        Assert.Equal($"routes[0].match.path.pattern: '{pattern}' segment '{segment}' must be a literal, '{{name}}' or '{{**name}}'", error.ToString());
    }

    [Fact]
    public void Validate_CatchAllNotLast_ReportsCatchAll()
    {
        var result = With(c => Match(c)["path"] = new JsonObject { ["pattern"] = "/a/{**rest}/b" });

        var error = SingleError(result, "routes[0].match.path.pattern", "catch-all '{**rest}' must be the last segment");
        Assert.Equal("routes[0].match.path.pattern: '/a/{**rest}/b' catch-all '{**rest}' must be the last segment", error.ToString());
    }

    [Fact]
    public void Validate_ValidPattern_IsValid()
    {
        var result = With(c => Match(c)["path"] = new JsonObject { ["pattern"] = "/users/{id}/orders/{**rest}" });

        Assert.True(result.IsValid, string.Join("\n", result.Errors));
    }

    [Theory]
    [InlineData("GE T")]
    [InlineData("GET/")]
    public void Validate_BadMethod_ReportsMethod(string method)
    {
        var result = With(c => Match(c)["methods"] = new JsonArray("GET", method));

        var error = SingleError(result, "routes[0].match.methods[1]", $"'{method}' is not an HTTP method");
        Assert.Equal($"routes[0].match.methods[1]: '{method}' is not an HTTP method", error.ToString());
    }

    [Theory]
    [InlineData("headers")]
    [InlineData("query")]
    [InlineData("cookies")]
    public void Validate_ValueMatchWithoutName_ReportsNameRequired(string kind)
    {
        var result = With(c => Match(c)[kind] = new JsonArray(new JsonObject { ["exact"] = "1" }));

        var error = SingleError(result, $"routes[0].match.{kind}[0].name", "is required");
        Assert.Equal($"routes[0].match.{kind}[0].name: is required", error.ToString());
    }

    [Theory]
    [InlineData("headers")]
    [InlineData("query")]
    [InlineData("cookies")]
    public void Validate_ValueMatchWithNoCondition_ReportsExactlyOne(string kind)
    {
        var result = With(c => Match(c)[kind] = new JsonArray(new JsonObject { ["name"] = "x-a" }));

        var error = SingleError(result, $"routes[0].match.{kind}[0]", "give exactly one of exact, prefix, regex or present");
        Assert.Equal($"routes[0].match.{kind}[0]: give exactly one of exact, prefix, regex or present", error.ToString());
    }

    [Fact]
    public void Validate_ValueMatchWithTwoConditions_ReportsExactlyOne()
    {
        var result = With(c => Match(c)["headers"] = new JsonArray(
            new JsonObject { ["name"] = "x-a", ["exact"] = "1" },
            new JsonObject { ["name"] = "x-b", ["exact"] = "1", ["prefix"] = "1" }));

        SingleError(result, "routes[0].match.headers[1]", "give exactly one of exact, prefix, regex or present");
    }

    [Fact]
    public void Validate_ValueMatchWithPresentAndRegex_ReportsExactlyOne()
    {
        var result = With(c => Match(c)["query"] = new JsonArray(new JsonObject { ["name"] = "v", ["present"] = false, ["regex"] = "^1$" }));

        SingleError(result, "routes[0].match.query[0]", "give exactly one of exact, prefix, regex or present");
    }

    [Fact]
    public void Validate_ValueMatchPresentFalse_IsValid()
    {
        var result = With(c => Match(c)["headers"] = new JsonArray(new JsonObject { ["name"] = "x-debug", ["present"] = false }));

        Assert.True(result.IsValid, string.Join("\n", result.Errors));
    }

    [Theory]
    [InlineData("(")]
    [InlineData("[a-")]
    [InlineData("a{2,1}")]
    public void Validate_InvalidRegex_ReportsRegex(string regex)
    {
        var result = With(c => Match(c)["cookies"] = new JsonArray(new JsonObject { ["name"] = "session", ["regex"] = regex }));

        var error = SingleError(result, "routes[0].match.cookies[0].regex", "invalid regular expression: ");
        Assert.StartsWith("invalid regular expression: ", error.Message, StringComparison.Ordinal);
    }

    // ---- transforms ----

    [Fact]
    public void Validate_StripPrefixWithoutSlash_ReportsStripPrefix()
    {
        var result = With(c => Route(c)["transforms"] = new JsonObject { ["stripPrefix"] = "api" });

        var error = SingleError(result, "routes[0].transforms.stripPrefix", "'api' must start with '/'");
        Assert.Equal("routes[0].transforms.stripPrefix: 'api' must start with '/'", error.ToString());
    }

    [Theory]
    [InlineData("requestHeaders", "set")]
    [InlineData("requestHeaders", "add")]
    [InlineData("responseHeaders", "set")]
    [InlineData("responseHeaders", "add")]
    public void Validate_BadHeaderNameInSetOrAdd_ReportsHeaderPath(string side, string operation)
    {
        var result = With(c => Route(c)["transforms"] = new JsonObject
        {
            [side] = new JsonObject { [operation] = new JsonObject { ["x-ok"] = "1", ["x bad"] = "1" } },
        });

        var error = SingleError(result, $"routes[0].transforms.{side}.{operation}.x bad", "'x bad' is not a valid header name");
        Assert.Equal($"routes[0].transforms.{side}.{operation}.x bad: 'x bad' is not a valid header name", error.ToString());
    }

    [Theory]
    [InlineData("requestHeaders")]
    [InlineData("responseHeaders")]
    public void Validate_BadHeaderNameInRemove_ReportsIndexedPath(string side)
    {
        var result = With(c => Route(c)["transforms"] = new JsonObject
        {
            [side] = new JsonObject { ["remove"] = new JsonArray("x-ok", "x(bad)") },
        });

        SingleError(result, $"routes[0].transforms.{side}.remove[1]", "'x(bad)' is not a valid header name");
    }

    // ---- services ----

    [Theory]
    [InlineData("my api")]
    [InlineData("_api")]
    [InlineData("api!")]
    public void Validate_InvalidServiceName_ReportsServicePath(string name)
    {
        var result = With(c => c["services"]![name] = new JsonObject
        {
            ["endpoints"] = new JsonArray(new JsonObject { ["address"] = "127.0.0.1", ["port"] = 9002 }),
        });

        var error = SingleError(result, $"services.{name}", $"'{name}' is not a valid service name (letters, digits, '.', '_' and '-')");
        Assert.Equal($"services.{name}: '{name}' is not a valid service name (letters, digits, '.', '_' and '-')", error.ToString());
    }

    [Fact]
    public void Validate_UnknownDiscoveryProvider_ReportsDiscovery()
    {
        var result = With(c => Api(c)["discovery"] = "kubernetes");

        var error = SingleError(result, "services.api.discovery", "'kubernetes' is not one of: static, consul");
        Assert.Equal("services.api.discovery: 'kubernetes' is not one of: static, consul", error.ToString());
    }

    [Fact]
    public void Validate_StaticServiceWithoutEndpoints_ReportsEndpoints()
    {
        var result = With(c => c["services"]!["api"] = new JsonObject { ["discovery"] = "static" });

        var error = SingleError(result, "services.api.endpoints", "static discovery needs at least one endpoint");
        Assert.Equal("services.api.endpoints: static discovery needs at least one endpoint", error.ToString());
    }

    [Fact]
    public void Validate_EndpointPortZero_ReportsEndpointPort()
    {
        var result = With(c => Endpoint(c)["port"] = 0);

        var error = SingleError(result, "services.api.endpoints[0].port", "0 is not a port");
        Assert.Equal("services.api.endpoints[0].port: 0 is not a port", error.ToString());
    }

    [Fact]
    public void Validate_EndpointPortMissing_ReportsEndpointPort()
    {
        var result = With(c => Endpoint(c).Remove("port"));

        SingleError(result, "services.api.endpoints[0].port", "0 is not a port");
    }

    [Fact]
    public void Validate_EndpointAddressMissing_ReportsAddressRequired()
    {
        var result = With(c => Endpoint(c).Remove("address"));

        SingleError(result, "services.api.endpoints[0].address", "is required");
    }

    [Fact]
    public void Validate_EndpointAddressNotAHost_ReportsEndpointAddress()
    {
        var result = With(c => Endpoint(c)["address"] = "a b");

        SingleError(result, "services.api.endpoints[0].address", "'a b' is not an IP address or host name");
    }

    [Theory]
    [InlineData("api.internal")]
    [InlineData("::1")]
    public void Validate_EndpointHostNameOrIpv6_IsValid(string address)
    {
        var result = With(c => Endpoint(c)["address"] = address);

        Assert.True(result.IsValid, string.Join("\n", result.Errors));
    }

    [Theory]
    [InlineData(0)]
    [InlineData(-3)]
    [InlineData(10_001)]
    public void Validate_EndpointWeightOutOfRange_ReportsWeight(int weight)
    {
        var result = With(c => Endpoint(c)["weight"] = weight);

        var error = SingleError(result, "services.api.endpoints[0].weight", $"{weight} is not a weight from 1 to 10000");
        Assert.Equal($"services.api.endpoints[0].weight: {weight} is not a weight from 1 to 10000", error.ToString());
    }

    [Fact]
    public void Validate_EndpointWeight10000_IsValid()
    {
        var result = With(c => Endpoint(c)["weight"] = 10_000);

        Assert.True(result.IsValid, string.Join("\n", result.Errors));
    }

    [Fact]
    public void Validate_UnknownPolicy_ReportsPolicy()
    {
        var result = With(c => Api(c)["loadBalancing"] = new JsonObject { ["policy"] = "fastest" });

        var error = SingleError(result, "services.api.loadBalancing.policy", "'fastest' is not one of: ");
        Assert.Contains("round-robin", error.Message, StringComparison.Ordinal);
        Assert.Contains("consistent-hash", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("round-robin")]
    [InlineData("least-requests")]
    [InlineData("power-of-two-choices")]
    [InlineData("random")]
    public void Validate_KnownPolicyWithoutHash_IsValid(string policy)
    {
        var result = With(c => Api(c)["loadBalancing"] = new JsonObject { ["policy"] = policy });

        Assert.True(result.IsValid, string.Join("\n", result.Errors));
    }

    [Fact]
    public void Validate_ConsistentHashWithoutHash_ReportsHash()
    {
        var result = With(c => Api(c)["loadBalancing"] = new JsonObject { ["policy"] = "consistent-hash" });

        var error = SingleError(result, "services.api.loadBalancing.hash", "consistent-hash needs a hash key (source header, cookie or client-address)");
        Assert.Equal("services.api.loadBalancing.hash: consistent-hash needs a hash key (source header, cookie or client-address)", error.ToString());
    }

    [Fact]
    public void Validate_BadHashSource_ReportsHashSource()
    {
        var result = With(c => Api(c)["loadBalancing"] = new JsonObject
        {
            ["policy"] = "consistent-hash",
            ["hash"] = new JsonObject { ["source"] = "query", ["name"] = "q" },
        });

        var error = SingleError(result, "services.api.loadBalancing.hash.source", "'query' is not one of: header, cookie, client-address");
        Assert.Equal("services.api.loadBalancing.hash.source: 'query' is not one of: header, cookie, client-address", error.ToString());
    }

    [Theory]
    [InlineData("header")]
    [InlineData("cookie")]
    public void Validate_HeaderOrCookieHashWithoutName_ReportsHashName(string source)
    {
        var result = With(c => Api(c)["loadBalancing"] = new JsonObject
        {
            ["policy"] = "consistent-hash",
            ["hash"] = new JsonObject { ["source"] = source },
        });

        var error = SingleError(result, "services.api.loadBalancing.hash.name", $"a {source} hash needs the {source} name");
        Assert.Equal($"services.api.loadBalancing.hash.name: a {source} hash needs the {source} name", error.ToString());
    }

    [Fact]
    public void Validate_ClientAddressHashWithoutName_IsValid()
    {
        var result = With(c => Api(c)["loadBalancing"] = new JsonObject
        {
            ["policy"] = "consistent-hash",
            ["hash"] = new JsonObject { ["source"] = "client-address" },
        });

        Assert.True(result.IsValid, string.Join("\n", result.Errors));
    }

    [Fact]
    public void Validate_HashOnNonHashPolicy_IsIgnored()
    {
        var result = With(c => Api(c)["loadBalancing"] = new JsonObject
        {
            ["policy"] = "random",
            ["hash"] = new JsonObject { ["source"] = "bogus" },
        });

        Assert.True(result.IsValid, string.Join("\n", result.Errors));
    }

    [Theory]
    [InlineData("http3")]
    [InlineData("h2c")]
    [InlineData("HTTP2")]
    public void Validate_BadUpstreamProtocol_ReportsServiceProtocol(string protocol)
    {
        var result = With(c => Api(c)["protocol"] = protocol);

        var error = SingleError(result, "services.api.protocol", $"'{protocol}' is not one of: http1, http2");
        Assert.Equal($"services.api.protocol: '{protocol}' is not one of: http1, http2", error.ToString());
    }

    [Theory]
    [InlineData("connectTimeoutMs", 0)]
    [InlineData("connectTimeoutMs", -1)]
    [InlineData("requestTimeoutMs", 0)]
    [InlineData("requestTimeoutMs", -5)]
    public void Validate_TimeoutNotAboveZero_ReportsTimeout(string key, int value)
    {
        var result = With(c => Api(c)[key] = value);

        var error = SingleError(result, $"services.api.{key}", $"{value} must be above 0");
        Assert.Equal($"services.api.{key}: {value} must be above 0", error.ToString());
    }

    // ---- performance ----

    [Theory]
    [InlineData(-1)]
    [InlineData(257)]
    public void Validate_Gen0SizeOutOfRange_ReportsKeyAndRange(int value)
    {
        var result = With(c => c["performance"] = new JsonObject { ["gcGen0SizeMb"] = value });

        var error = SingleError(result, "performance.gcGen0SizeMb", $"{value} is out of range");
        Assert.Equal($"performance.gcGen0SizeMb: {value} is out of range; use 0 (the runtime's choice) to 256", error.ToString());
    }

    [Fact]
    public void Defaults_Performance_InlineCompletionsAndFourMiBGen0()
    {
        var defaults = new PerformanceOptions();

        Assert.True(defaults.InlineCompletions);
        Assert.Equal(4, defaults.GcGen0SizeMb);
    }

    // ---- shutdown ----

    [Fact]
    public void Validate_NegativeDrainTimeout_ReportsKey()
    {
        var result = With(c => c["shutdown"] = new JsonObject { ["drainTimeoutMs"] = -1 });

        var error = SingleError(result, "shutdown.drainTimeoutMs", "-1 must be 0 or more");
        Assert.Equal("shutdown.drainTimeoutMs: -1 must be 0 or more", error.ToString());
    }

    [Fact]
    public void Defaults_Shutdown_FifteenSecondDrainAndZeroIsValid()
    {
        Assert.Equal(15_000, new ShutdownOptions().DrainTimeoutMs);
        var result = With(c => c["shutdown"] = new JsonObject { ["drainTimeoutMs"] = 0 });
        Assert.True(result.IsValid, string.Join("\n", result.Errors));
        Assert.Equal(0, result.Options!.Shutdown.DrainTimeoutMs);
    }

    // ---- logging ----

    [Fact]
    public void Validate_BadLogLevel_ReportsLevelAndChoices()
    {
        var result = With(c => c["logging"] = new JsonObject { ["level"] = "Loud" });

        var error = SingleError(result, "logging.level", "'Loud' is not a log level");
        Assert.Equal("logging.level: 'Loud' is not a log level; use one of Trace, Debug, Information, Warning, Error, Critical, None", error.ToString());
    }

    [Theory]
    [InlineData("warning")]
    [InlineData("TRACE")]
    [InlineData("None")]
    public void Validate_LogLevelInAnyCase_IsValid(string level)
    {
        var result = With(c => c["logging"] = new JsonObject { ["level"] = level });

        Assert.True(result.IsValid, string.Join("\n", result.Errors));
    }
}
