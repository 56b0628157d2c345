// Validation of L4 listeners (tcp, udp, tls-passthrough, auto): their service, timeouts, SNI routes and the hash an L4 listener can see.
using System.Text.Json.Nodes;
using static Mesh.Sidecar.Tests.Configuration.TestConfigs;

namespace Mesh.Sidecar.Tests.Configuration;

public class ConfigValidatorL4Tests
{
    private static JsonObject L4(string protocol, string? service = "api") => service is null
        ? new JsonObject { ["name"] = "l4", ["address"] = "127.0.0.1", ["port"] = 0, ["protocol"] = protocol }
        : new JsonObject { ["name"] = "l4", ["address"] = "127.0.0.1", ["port"] = 0, ["protocol"] = protocol, ["service"] = service };

    private static JsonObject SniRoute(string name = "sni", string service = "api", params string[] serverNames) => new()
    {
        ["name"] = name,
        ["serverNames"] = new JsonArray([.. (serverNames.Length == 0 ? ["*"] : serverNames).Select(n => (JsonNode?)n)]),
        ["service"] = service,
    };

    private static void HashOn(JsonObject config, string source, string? name = "x-user")
    {
        var hash = new JsonObject { ["source"] = source };
        if (name is not null)
        {
            hash["name"] = name;
        }

        Api(config)["loadBalancing"] = new JsonObject { ["policy"] = "consistent-hash", ["hash"] = hash };
    }

    private static ConfigLoadResultAssertions.Result WithL4(JsonObject listener, Action<JsonObject>? change = null) =>
        new(With(c =>
        {
            c["listeners"]!.AsArray().Add(listener);
            change?.Invoke(c);
        }));

    [Theory]
    [InlineData("tcp")]
    [InlineData("udp")]
    [InlineData("tls-passthrough")]
    [InlineData("auto")]
    public void Validate_L4ListenerWithService_IsValid(string protocol)
    {
        WithL4(L4(protocol)).Valid();
    }

    [Theory]
    [InlineData("tcp")]
    [InlineData("udp")]
    public void Validate_TcpOrUdpListenerWithoutService_ReportsService(string protocol)
    {
        var error = WithL4(L4(protocol, service: null)).Single("listeners[1].service", $"a {protocol} listener needs a service");

        Assert.Equal($"listeners[1].service: a {protocol} listener needs a service", error.ToString());
    }

    [Theory]
    [InlineData("tls-passthrough")]
    [InlineData("auto")]
    [InlineData("http")]
    public void Validate_ListenerThatCanRouteWithoutService_NeedsNone(string protocol)
    {
        // tls-passthrough routes by SNI, auto and http by routes: a default service is optional.
        WithL4(L4(protocol, service: null)).Valid();
    }

    [Theory]
    [InlineData("tcp")]
    [InlineData("udp")]
    [InlineData("auto")]
    public void Validate_L4ServiceNotDefined_ReportsService(string protocol)
    {
        WithL4(L4(protocol, service: "db")).Single("listeners[1].service", "no service named 'db' in services");
    }

    [Theory]
    [InlineData("header")]
    [InlineData("cookie")]
    public void Validate_L4ServiceHashingOnWhatL4CannotSee_ReportsService(string source)
    {
        var error = WithL4(L4("tcp"), c => HashOn(c, source)).Single("listeners[1].service", $"service 'api' hashes on a {source}, which an L4 listener cannot see; use client-address");

        Assert.Equal($"listeners[1].service: service 'api' hashes on a {source}, which an L4 listener cannot see; use client-address", error.ToString());
    }

    [Fact]
    public void Validate_SniRouteServiceHashingOnAHeader_ReportsTheRoute()
    {
        var listener = L4("tls-passthrough", service: null);
        listener["tls"] = new JsonObject { ["routes"] = new JsonArray(SniRoute()) };

        WithL4(listener, c => HashOn(c, "header")).Single(
            "listeners[1].tls.routes[0].service", "service 'api' hashes on a header, which an L4 listener cannot see; use client-address");
    }

    [Theory]
    [InlineData("tcp")]
    [InlineData("udp")]
    [InlineData("tls-passthrough")]
    public void Validate_L4ServiceHashingOnClientAddress_IsValid(string protocol)
    {
        WithL4(L4(protocol), c => HashOn(c, "client-address", name: null)).Valid();
    }

    [Fact]
    public void Validate_HeaderHashOnAServiceOnlyHttpRoutesUse_IsValid()
    {
        // Only an L4 listener's service is refused: HTTP routes see headers.
        WithL4(L4("tcp", service: "db"), c =>
        {
            c["services"]!["db"] = new JsonObject { ["endpoints"] = new JsonArray(new JsonObject { ["address"] = "127.0.0.1", ["port"] = 9002 }) };
            HashOn(c, "header");
        }).Valid();
    }

    [Fact]
    public void Validate_HeaderHashWithAnotherPolicy_IsValidOnL4()
    {
        // The hash key only matters to consistent-hash; round-robin ignores it.
        WithL4(L4("tcp"), c => Api(c)["loadBalancing"] = new JsonObject
        {
            ["policy"] = "round-robin",
            ["hash"] = new JsonObject { ["source"] = "header", ["name"] = "x-user" },
        }).Valid();
    }

    [Theory]
    [InlineData("tcp", "connectTimeoutMs", 0, "0 must be above 0")]
    [InlineData("tcp", "connectTimeoutMs", -1, "-1 must be above 0")]
    [InlineData("tcp", "idleTimeoutMs", -1, "-1 must be 0 or more")]
    [InlineData("tcp", "maxConnections", -1, "-1 must be 0 or more")]
    [InlineData("udp", "flowIdleTimeoutMs", 0, "0 must be above 0")]
    [InlineData("udp", "maxFlows", 0, "0 must be above 0")]
    [InlineData("tls", "peekTimeoutMs", 0, "0 must be above 0")]
    public void Validate_L4LimitOutOfRange_ReportsIt(string section, string key, int value, string message)
    {
        var listener = L4(section == "udp" ? "udp" : section == "tls" ? "tls-passthrough" : "tcp");
        listener[section] = new JsonObject { [key] = value };

        WithL4(listener).Single($"listeners[1].{section}.{key}", message);
    }

    [Theory]
    [InlineData("tcp", "connectTimeoutMs", 1)]
    [InlineData("tcp", "idleTimeoutMs", 0)]
    [InlineData("tcp", "maxConnections", 0)]
    [InlineData("udp", "flowIdleTimeoutMs", 1)]
    [InlineData("udp", "maxFlows", 1)]
    [InlineData("tls", "peekTimeoutMs", 1)]
    public void Validate_L4LimitAtItsEdge_IsValid(string section, string key, int value)
    {
        var listener = L4(section == "udp" ? "udp" : section == "tls" ? "tls-passthrough" : "tcp");
        listener[section] = new JsonObject { [key] = value };

        WithL4(listener).Valid();
    }

    [Theory]
    [InlineData(0, "0 must be above 0")]
    [InlineData(-5, "-5 must be above 0")]
    public void Validate_DetectTimeoutNotPositive_ReportsIt(int value, string message)
    {
        var listener = L4("auto");
        listener["detectTimeoutMs"] = value;

        WithL4(listener).Single("listeners[1].detectTimeoutMs", message);
    }

    [Fact]
    public void Validate_NoSniActionUnknown_ReportsIt()
    {
        var listener = L4("tls-passthrough");
        listener["tls"] = new JsonObject { ["noSni"] = "drop" };

        WithL4(listener).Single("listeners[1].tls.noSni", "'drop' is not one of: default, refuse");
    }

    [Theory]
    [InlineData("default")]
    [InlineData("refuse")]
    public void Validate_NoSniActionKnown_IsValid(string action)
    {
        var listener = L4("tls-passthrough");
        listener["tls"] = new JsonObject { ["noSni"] = action };

        WithL4(listener).Valid();
    }

    [Theory]
    [InlineData("tcp")]
    [InlineData("udp")]
    [InlineData("http")]
    public void Validate_SniRoutesOnAListenerThatDoesNotPeek_ReportsRoutes(string protocol)
    {
        var listener = L4(protocol);
        listener["tls"] = new JsonObject { ["routes"] = new JsonArray(SniRoute()) };

        WithL4(listener).Single("listeners[1].tls.routes", $"SNI routes need protocol tls-passthrough or auto, not {protocol}");
    }

    [Theory]
    [InlineData("tls-passthrough")]
    [InlineData("auto")]
    public void Validate_SniRoutesOnAListenerThatPeeks_AreValid(string protocol)
    {
        var listener = L4(protocol);
        listener["tls"] = new JsonObject { ["routes"] = new JsonArray(SniRoute("a", "api", "a.example.com", "*.b.example.com"), SniRoute("b", "api", "*")) };

        WithL4(listener).Valid();
    }

    [Fact]
    public void Validate_SniRouteNamesRepeated_ReportsTheSecond()
    {
        var listener = L4("tls-passthrough");
        listener["tls"] = new JsonObject { ["routes"] = new JsonArray(SniRoute("same"), SniRoute("same")) };

        WithL4(listener).Single("listeners[1].tls.routes[1].name", "'same' is already the name of another SNI route");
    }

    [Fact]
    public void Validate_SniRouteNameInvalid_ReportsName()
    {
        var listener = L4("tls-passthrough");
        listener["tls"] = new JsonObject { ["routes"] = new JsonArray(SniRoute("bad name")) };

        WithL4(listener).Single("listeners[1].tls.routes[0].name", "'bad name' is not a valid name");
    }

    [Fact]
    public void Validate_SniRouteWithoutServerNames_ReportsServerNames()
    {
        var listener = L4("tls-passthrough");
        var route = SniRoute();
        route["serverNames"] = new JsonArray();
        listener["tls"] = new JsonObject { ["routes"] = new JsonArray(route) };

        WithL4(listener).Single("listeners[1].tls.routes[0].serverNames", "give at least one server name ('*' matches any)");
    }

    [Theory]
    [InlineData("*.")]
    [InlineData("a.*.example.com")]
    [InlineData("**")]
    [InlineData("bad host")]
    [InlineData("")]
    public void Validate_SniServerNameNotAHostPattern_ReportsIt(string name)
    {
        var listener = L4("tls-passthrough");
        listener["tls"] = new JsonObject { ["routes"] = new JsonArray(SniRoute("sni", "api", "ok.example.com", name)) };

        WithL4(listener).Single("listeners[1].tls.routes[0].serverNames[1]", $"'{name}' is not a host name, '*.suffix' or '*'");
    }

    [Fact]
    public void Validate_SniRouteWithoutService_ReportsService()
    {
        var listener = L4("tls-passthrough");
        var route = SniRoute();
        route.Remove("service");
        listener["tls"] = new JsonObject { ["routes"] = new JsonArray(route) };

        WithL4(listener).Single("listeners[1].tls.routes[0].service", "is required");
    }

    [Fact]
    public void Validate_SniRouteServiceNotDefined_ReportsService()
    {
        var listener = L4("tls-passthrough");
        listener["tls"] = new JsonObject { ["routes"] = new JsonArray(SniRoute("sni", "db")) };

        WithL4(listener).Single("listeners[1].tls.routes[0].service", "no service named 'db' in services");
    }

    [Fact]
    public void Validate_TcpAndUdpOnTheSamePort_AreValidButTwoTcpAreNot()
    {
        // A UDP and a TCP socket may share a port number; two TCP sockets may not.
        static JsonObject On15002(string protocol, string name)
        {
            var listener = L4(protocol);
            listener["name"] = name;
            listener["port"] = 15002;
            return listener;
        }

        WithL4(On15002("udp", "udp"), c => c["listeners"]!.AsArray().Add(On15002("tcp", "tcp"))).Valid();
        WithL4(On15002("udp", "udp"), c =>
        {
            c["listeners"]!.AsArray().Add(On15002("tcp", "tcp"));
            c["listeners"]!.AsArray().Add(On15002("tcp", "again"));
        }).Single("listeners[3].port", "127.0.0.1:15002 is already used by listeners[2]");
    }
}

/// <summary>Assertions on a load result that print every error when they fail.</summary>
internal static class ConfigLoadResultAssertions
{
    public readonly record struct Result(Mesh.Sidecar.Configuration.ConfigLoadResult Value)
    {
        public void Valid() => Assert.True(Value.IsValid, string.Join("\n", Value.Errors));

        public Mesh.Sidecar.Configuration.ConfigError Single(string path, string message)
        {
            Assert.False(Value.IsValid, "expected an error at " + path);
            return SingleError(Value, path, message);
        }
    }
}
