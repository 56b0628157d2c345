// Every member of the filter API on a real engine: req.*, ctx.*, res.* in onResponse.
using System.Text.Json;
using Mesh.Plugins.JavaScript;
using Microsoft.Extensions.Logging;

namespace Mesh.Plugins.Tests.JavaScript;

public sealed class JsApiTests
{
    private static JsonElement Json(string text) => JsonDocument.Parse(text).RootElement;

    [Fact]
    public void Request_Properties_ReadFromTheRequest()
    {
        var filter = Js.Filter("""
            function onRequest(req, ctx) {
              ctx.respond(200, JSON.stringify({
                method: req.method, scheme: req.scheme, host: req.host, path: req.path,
                clientAddress: req.clientAddress, peer: req.peer, listener: req.listener,
                route: req.route, service: req.service,
              }));
            }
            """);
        var context = new JsTestContext { Method = "POST", Scheme = "https", Host = "shop.local", Path = "/cart", ClientAddress = "127.0.0.7", Listener = "inbound", Route = "cart", Service = "shop", PeerIdentity = "spiffe://mesh.local/ns/default/svc/web" };

        var body = Json(Js.Body(filter, context));

        Assert.Equal(
            ("POST", "https", "shop.local", "/cart", "127.0.0.7", "spiffe://mesh.local/ns/default/svc/web", "inbound", "cart", "shop"),
            (body.GetProperty("method").GetString(), body.GetProperty("scheme").GetString(), body.GetProperty("host").GetString(), body.GetProperty("path").GetString(),
             body.GetProperty("clientAddress").GetString(), body.GetProperty("peer").GetString(), body.GetProperty("listener").GetString(),
             body.GetProperty("route").GetString(), body.GetProperty("service").GetString()));
    }

    [Fact]
    public void Request_PeerWithoutMtls_IsNull()
    {
        var filter = Js.Filter("function onRequest(req, ctx) { ctx.respond(200, String(req.peer === null)); }");

        Assert.Equal("true", Js.Body(filter, new JsTestContext()));
    }

    [Fact]
    public void Request_HeadersQueryCookies_LowerCaseNamesAndFirstValues()
    {
        var filter = Js.Filter("""
            function onRequest(req, ctx) {
              ctx.respond(200, JSON.stringify({
                tenant: req.headers['x-tenant'], missing: req.headers['x-missing'] === undefined,
                names: Object.keys(req.headers), repeated: req.headers['x-many'],
                q: req.query.q, page: req.query.page, queryNames: Object.keys(req.query),
                session: req.cookies.session, cookieNames: Object.keys(req.cookies),
              }));
            }
            """);
        var context = new JsTestContext { QueryString = "?q=a%20b&page=2&q=ignored" }
            .With("X-Tenant", "blue").With("x-many", "1").With("x-many", "2").With("Cookie", "session=abc; theme=dark");

        var body = Json(Js.Body(filter, context));

        Assert.Equal("blue", body.GetProperty("tenant").GetString());
        Assert.True(body.GetProperty("missing").GetBoolean());
        Assert.Equal(["x-tenant", "x-many", "cookie"], body.GetProperty("names").EnumerateArray().Select(e => e.GetString()));
        Assert.Equal("1, 2", body.GetProperty("repeated").GetString());
        Assert.Equal(("a b", "2"), (body.GetProperty("q").GetString(), body.GetProperty("page").GetString()));
        Assert.Equal(["q", "page"], body.GetProperty("queryNames").EnumerateArray().Select(e => e.GetString()));
        Assert.Equal("abc", body.GetProperty("session").GetString());
        Assert.Equal(["session", "theme"], body.GetProperty("cookieNames").EnumerateArray().Select(e => e.GetString()));
    }

    [Fact]
    public void Request_SetAndRemoveHeader_ChangeTheRequest()
    {
        var filter = Js.Filter("function onRequest(req, ctx) { req.setHeader('x-user', 'ada'); req.removeHeader('authorization'); req.setHeader('x-count', 3); }");
        var context = new JsTestContext().With("authorization", "Bearer t");

        Assert.Equal(FilterAction.Continue, Js.Run(filter, context).Action);

        Assert.Equal(("ada", null, "3"), (context.GetHeader("x-user"), context.GetHeader("authorization"), context.GetHeader("x-count")));
    }

    [Theory]
    [InlineData("req.setHeader('x-bad', 'a\\r\\nx-injected: 1')", "printable ASCII")]
    [InlineData("req.setHeader('bad name', 'v')", "is not a valid header name")]
    [InlineData("req.setHeader('content-length', '5')", "is managed by the sidecar")]
    [InlineData("req.removeHeader('transfer-encoding')", "is managed by the sidecar")]
    [InlineData("req.setHeader('x', {})", "the value must be a string")]
    public void Request_SetHeaderWithBadNameOrValue_TypeErrorAndNothingChanged(string call, string message)
    {
        var filter = Js.Filter($"function onRequest(req, ctx) {{ try {{ {call}; }} catch (e) {{ ctx.respond(200, e.name + ': ' + e.message); }} }}");
        var context = new JsTestContext();

        var body = Js.Body(filter, context);

        Assert.StartsWith("TypeError: ", body, StringComparison.Ordinal);
        Assert.Contains(message, body, StringComparison.Ordinal);
        Assert.Empty(context.Headers);
    }

    [Fact]
    public void Request_ViewIsReadOnly_AssigningThrowsTypeError()
    {
        var filter = Js.Filter("function onRequest(req, ctx) { try { req.path = '/admin'; } catch (e) { ctx.respond(200, e.name); } }");

        Assert.Equal("TypeError", Js.Body(filter, new JsTestContext()));
    }

    [Fact]
    public void Route_ServiceAndSubset_Reroutes()
    {
        var filter = Js.Filter("function onRequest(req, ctx) { ctx.route('api', 'v2'); }");

        var result = Js.Run(filter, new JsTestContext());

        Assert.Equal((FilterAction.Reroute, "api", "v2"), (result.Action, result.Service, result.Subset));
    }

    [Fact]
    public void Route_ServiceOnly_ReroutesToEveryEndpoint()
    {
        var filter = Js.Filter("function onRequest(req, ctx) { ctx.route('billing'); }");

        var result = Js.Run(filter, new JsTestContext());

        Assert.Equal((FilterAction.Reroute, "billing", (string?)null), (result.Action, result.Service, result.Subset));
    }

    [Fact]
    public void Respond_StatusBodyHeaders_Answers()
    {
        var filter = Js.Filter("function onRequest(req, ctx) { ctx.respond(429, 'slow down\\n', { 'Retry-After': 2, 'x-why': 'quota' }); }");

        var result = Js.Run(filter, new JsTestContext());

        Assert.Equal((FilterAction.Respond, 429, "slow down\n"), (result.Action, result.StatusCode, result.Body));
        Assert.Equal([new("Retry-After", "2"), new("x-why", "quota")], result.Headers!);
    }

    [Fact]
    public void Respond_StatusOnly_EmptyBody()
    {
        var result = Js.Run(Js.Filter("function onRequest(req, ctx) { ctx.respond(204); }"), new JsTestContext());

        Assert.Equal((FilterAction.Respond, 204, (string?)null), (result.Action, result.StatusCode, result.Body));
    }

    [Theory]
    [InlineData("ctx.respond(99)")]
    [InlineData("ctx.respond(700)")]
    [InlineData("ctx.respond('200')")]
    [InlineData("ctx.respond(200, {a: 1})")]
    [InlineData("ctx.route('')")]
    [InlineData("ctx.route('api', 3)")]
    public void Decisions_BadArguments_TypeError(string call)
    {
        var filter = Js.Filter($"function onRequest(req, ctx) {{ try {{ {call}; }} catch (e) {{ ctx.respond(200, e.name); }} }}");

        Assert.Equal("TypeError", Js.Body(filter, new JsTestContext()));
    }

    [Fact]
    public void Decisions_NoneCalled_Continues()
    {
        Assert.Equal(FilterAction.Continue, Js.Run(Js.Filter("function onRequest(req, ctx) { return 42; }"), new JsTestContext()).Action);
    }

    [Fact]
    public void Decisions_LastCallWins()
    {
        var result = Js.Run(Js.Filter("function onRequest(req, ctx) { ctx.respond(403); ctx.route('api', 'v2'); }"), new JsTestContext());

        Assert.Equal(FilterAction.Reroute, result.Action);
    }

    [Fact]
    public void Config_IsTheEntrysConfigObject_Frozen()
    {
        var filter = Js.Filter(
            "function onRequest(req, ctx) { let frozen = false; try { ctx.config.keys.push('x'); } catch (e) { frozen = true; } ctx.respond(200, ctx.config.keys.join(',') + '|' + ctx.config.limit.burst + '|' + frozen); }",
            """{ "keys": ["a", "b"], "limit": { "burst": 5 } }""");

        Assert.Equal("a,b|5|true", Js.Body(filter, new JsTestContext()));
    }

    [Fact]
    public void Items_SharedWithCSharpFilters_BothWays()
    {
        var filter = Js.Filter("function onRequest(req, ctx) { ctx.items.user = ctx.items.fromCSharp + '!'; ctx.items.n = 2; ctx.items.ok = true; delete ctx.items.drop; }");
        var context = new JsTestContext();
        context.Items["fromCSharp"] = "ada";
        context.Items["drop"] = "x";

        Js.Run(filter, context);

        Assert.Equal("ada!", context.Items["user"]);
        Assert.Equal(2.0, context.Items["n"]);
        Assert.Equal(true, context.Items["ok"]);
        Assert.False(context.Items.ContainsKey("drop"));
    }

    [Fact]
    public void Items_ObjectValue_TypeError()
    {
        var filter = Js.Filter("function onRequest(req, ctx) { try { ctx.items.bad = {}; } catch (e) { ctx.respond(200, e.name); } }");

        Assert.Equal("TypeError", Js.Body(filter, new JsTestContext()));
    }

    [Fact]
    public void Log_WritesALineNamingTheFileAndRoute()
    {
        var logs = new ListLogger();
        using var factory = LoggerFactory.Create(builder => builder.AddProvider(logs).SetMinimumLevel(LogLevel.Trace));
        var filter = Js.Filter("function onRequest(req, ctx) { ctx.log('hello ' + req.path); }", host: new JsFilterHost(factory), name: "hello.js");

        Js.Run(filter, new JsTestContext());

        Assert.Contains((5301, "JavaScript filter hello.js on route api: hello /users/42"), logs.Entries);
    }

    [Fact]
    public void RateLimit_BurstThenDenied_SharedAcrossFiltersOfTheSameFile()
    {
        var host = new JsFilterHost();
        const string Source = "function onRequest(req, ctx) { ctx.respond(200, String(ctx.rateLimit(req.headers['x-caller'], { rate: 0.001, burst: 2 }))); }";
        var first = Js.Filter(Source, host: host, name: "limit.js");
        var second = Js.Filter(Source, host: host, name: "limit.js");
        var other = Js.Filter(Source, host: host, name: "other.js");
        JsTestContext Caller(string name) => new JsTestContext().With("x-caller", name);

        Assert.Equal(["true", "true", "false"], new[] { Js.Body(first, Caller("a")), Js.Body(second, Caller("a")), Js.Body(first, Caller("a")) });
        Assert.Equal("true", Js.Body(first, Caller("b")));
        Assert.Equal("true", Js.Body(other, Caller("a")));
    }

    [Theory]
    [InlineData("ctx.rateLimit('k')")]
    [InlineData("ctx.rateLimit('k', { rate: 0 })")]
    [InlineData("ctx.rateLimit('k', { rate: 1, burst: 0.5 })")]
    public void RateLimit_BadLimit_TypeError(string call)
    {
        var filter = Js.Filter($"function onRequest(req, ctx) {{ try {{ {call}; }} catch (e) {{ ctx.respond(200, e.name); }} }}");

        Assert.Equal("TypeError", Js.Body(filter, new JsTestContext()));
    }

    [Fact]
    public void Hash_Fnv1aOfUtf8_NonNegativeAndStable()
    {
        // 32-bit FNV-1a of "foobar" is 0xbf9cf968; the top bit is cleared.
        var filter = Js.Filter("function onRequest(req, ctx) { ctx.respond(200, [ctx.hash('foobar'), ctx.hash(''), ctx.hash('é')].join(',')); }");

        Assert.Equal($"{0x3f9cf968},{0x811c9dc5 & 0x7fffffff},{JsHash.Fnv1a("é")}", Js.Body(filter, new JsTestContext()));
        Assert.Equal(0x3f9cf968, JsHash.Fnv1a("foobar"));
    }

    [Fact]
    public async Task Response_StatusAndHeaders_SeenAndChanged()
    {
        var filter = Js.Filter("""
            function onRequest(req, ctx) { ctx.items.started = 'yes'; }
            function onResponse(res, ctx) {
              res.setHeader('x-status-seen', String(res.status));
              res.setHeader('x-server-seen', res.headers['server'] ?? 'none');
              res.setHeader('x-item', ctx.items.started);
              res.removeHeader('server');
            }
            """);
        var context = new JsTestContext { StatusCode = 201 }.WithResponse("Server", "nginx");
        Js.Run(filter, context);

        await ((IResponseFilter)filter).OnResponseAsync(context, CancellationToken.None);

        var response = (IResponseContext)context;
        Assert.Equal(("201", "nginx", "yes", (string?)null), (response.GetHeader("x-status-seen"), response.GetHeader("x-server-seen"), response.GetHeader("x-item"), response.GetHeader("server")));
    }

    [Fact]
    public void Response_FileWithoutOnResponse_IsNotAResponseFilter()
    {
        Assert.IsNotType<IResponseFilter>(Js.Filter("function onRequest(req, ctx) {}"), exactMatch: false);
    }

    [Fact]
    public async Task Response_DecidingInOnResponse_TypeError()
    {
        var filter = Js.Filter("function onRequest() {}\nfunction onResponse(res, ctx) { try { ctx.respond(500); } catch (e) { res.setHeader('x-error', e.name); } }");
        var context = new JsTestContext();

        await ((IResponseFilter)filter).OnResponseAsync(context, CancellationToken.None);

        Assert.Equal("TypeError", ((IResponseContext)context).GetHeader("x-error"));
    }

    [Fact]
    public void AsyncOnRequest_PromiseJobsRunWithinTheCall()
    {
        var filter = Js.Filter("async function onRequest(req, ctx) { await null; ctx.route('after-await'); }");

        Assert.Equal("after-await", Js.Run(filter, new JsTestContext()).Service);
    }

    private sealed class ListLogger : ILoggerProvider, ILogger
    {
        public List<(int, string)> Entries { get; } = [];

        public ILogger CreateLogger(string categoryName) => this;

        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            lock (Entries)
            {
                Entries.Add((eventId.Id, formatter(state, exception)));
            }
        }

        public void Dispose()
        {
        }
    }
}
