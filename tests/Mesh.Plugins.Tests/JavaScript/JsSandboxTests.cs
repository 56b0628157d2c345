// The sandbox: no CLR or host facilities, a frozen realm, nothing carried from one call to the next, hard limits.
using Mesh.Plugins.JavaScript;

namespace Mesh.Plugins.Tests.JavaScript;

public sealed class JsSandboxTests
{
    [Fact]
    public void Globals_NoClrModulesTimersNetworkOrEval()
    {
        var filter = Js.Filter("""
            function onRequest(req, ctx) {
              const names = ['importNamespace', 'require', 'System', 'clr', 'setTimeout', 'setInterval', 'setImmediate', 'queueMicrotask', 'fetch',
                'XMLHttpRequest', 'WebSocket', 'process', 'module', 'exports', 'eval', 'ShadowRealm', 'SharedArrayBuffer', 'Atomics',
                'WeakRef', 'FinalizationRegistry', 'Temporal'];
              ctx.respond(200, names.filter(n => typeof globalThis[n] !== 'undefined').join(',') || 'none');
            }
            """);

        Assert.Equal("none", Js.Body(filter, new JsTestContext()));
    }

    [Theory]
    [InlineData("Function('return globalThis')()")]
    [InlineData("req.setHeader.constructor('return 1')()")]
    [InlineData("(async () => {}).constructor('return 1')()")]
    [InlineData("req.GetType().Assembly")]
    [InlineData("ctx.constructor.constructor('return this')()")]
    public void Escapes_Throw(string expression)
    {
        var filter = Js.Filter($"function onRequest(req, ctx) {{ try {{ {expression}; ctx.respond(200, 'escaped'); }} catch (e) {{ ctx.respond(200, 'stopped'); }} }}");

        Assert.Equal("stopped", Js.Body(filter, new JsTestContext()));
    }

    [Fact]
    public void DynamicImport_FailsTheCall()
    {
        var filter = Js.Filter("async function onRequest(req, ctx) { try { await import('fs'); ctx.respond(200, 'imported'); } catch (e) { ctx.respond(200, 'caught'); } }");

        var error = Assert.Throws<JsCallException>(() => Js.Run(filter, new JsTestContext()));

        Assert.Contains("Module loading has been disabled", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("Array.prototype.evil = 1")]
    [InlineData("Object.prototype.toString = () => 'x'")]
    [InlineData("globalThis.shared = 1")]
    [InlineData("JSON.parse = null")]
    [InlineData("Math.random = () => 4")]
    [InlineData("undeclared = 1")]
    [InlineData("delete globalThis.JSON")]
    public void Realm_Frozen_ChangesThrow(string statement)
    {
        var filter = Js.Filter($"function onRequest(req, ctx) {{ try {{ {statement}; ctx.respond(200, 'changed'); }} catch (e) {{ ctx.respond(200, e.name); }} }}");

        Assert.Equal(["TypeError", "TypeError"], new[] { Js.Body(filter, new JsTestContext()), Js.Body(filter, new JsTestContext()) }.Select(b => b == "ReferenceError" ? "TypeError" : b));
    }

    [Fact]
    public void Realm_OwnPropertiesNamedLikeBuiltIns_StillAssignable()
    {
        // The "override mistake" of a frozen realm is tamed for the members code commonly sets.
        var filter = Js.Filter("""
            class NotFound extends Error { constructor(what) { super(what + ' not found'); this.name = 'NotFound'; } }
            function onRequest(req, ctx) {
              const o = {}; o.toString = () => 'custom';
              const e = new NotFound('user');
              ctx.respond(200, String(o) + '|' + e.name + '|' + e.message + '|' + String(e));
            }
            """);

        Assert.Equal("custom|NotFound|user not found|NotFound: user not found", Js.Body(filter, new JsTestContext()));
    }

    [Fact]
    public void RegExpLegacyStatics_Gone()
    {
        var filter = Js.Filter("function onRequest(req, ctx) { /secret-(\\d+)/.exec('secret-42'); ctx.respond(200, String(RegExp.$1) + String(RegExp.lastMatch)); }");

        Assert.Equal("undefinedundefined", Js.Body(filter, new JsTestContext()));
    }

    [Fact]
    public void State_TopLevelLet_FreshForEveryCall()
    {
        var filter = Js.Filter("let count = 0;\nconst seen = new Set();\nfunction onRequest(req, ctx) { count++; seen.add(req.path); ctx.respond(200, count + '/' + seen.size); }");

        Assert.Equal(["1/1", "1/1", "1/1"], Enumerable.Range(0, 3).Select(i => Js.Body(filter, new JsTestContext { Path = "/" + i })));
    }

    [Fact]
    public void State_SharedConstsAndFunctions_FrozenSoCallsCannotChangeThem()
    {
        var filter = Js.Filter("""
            const state = { n: 0, list: [] };
            function onRequest(req, ctx) {
              const errors = [];
              for (const change of [() => state.n++, () => state.list.push(1), () => { onRequest.memo = 1; }, () => { state.extra = 1; }]) {
                try { change(); } catch (e) { errors.push(e.name); }
              }
              ctx.respond(200, [state.n, state.list.length, onRequest.memo, state.extra, errors.join(' ')].join('|'));
            }
            """);

        Assert.Equal(
            ["0|0|||TypeError TypeError TypeError TypeError", "0|0|||TypeError TypeError TypeError TypeError"],
            new[] { Js.Body(filter, new JsTestContext()), Js.Body(filter, new JsTestContext()) });
    }

    [Fact]
    public void State_PromiseJobQueuedByAFailedCall_NeverRunsInTheNext()
    {
        var filter = Js.Filter("""
            function onRequest(req, ctx) {
              if (req.path === '/fail') { Promise.reject().catch(() => {}).then(() => { ctx.items.late = 'leaked'; }); throw new Error('boom'); }
              ctx.respond(200, 'clean');
            }
            """);
        var failing = new JsTestContext { Path = "/fail" };
        var next = new JsTestContext();

        Assert.Throws<JsCallException>(() => Js.Run(filter, failing));
        Assert.Equal("clean", Js.Body(filter, next));

        Assert.False(next.Items.ContainsKey("late"));
        Assert.False(failing.Items.ContainsKey("late"));
    }

    [Fact]
    public void State_ManyParallelCallsOnManyEngines_EachGetsItsOwnAnswerAndNoneSeesAnother()
    {
        var filter = (JsRequestFilter)Js.Filter("""
            let mine;
            function onRequest(req, ctx) {
              const before = mine;
              mine = req.headers['x-id'];
              let spin = 0; for (let i = 0; i < 2000; i++) spin += i;
              ctx.respond(200, String(before) + ':' + mine + ':' + req.headers['x-id']);
            }
            """,
            limits: Js.Limits());

        var answers = new string[400];
        Parallel.For(0, answers.Length, new ParallelOptions { MaxDegreeOfParallelism = 8 }, i => answers[i] = Js.Body(filter, new JsTestContext().With("x-id", i.ToString(System.Globalization.CultureInfo.InvariantCulture))));

        for (var i = 0; i < answers.Length; i++)
        {
            Assert.Equal($"undefined:{i}:{i}", answers[i]);
        }
    }

    [Fact]
    public void Limit_InfiniteLoop_TimesOutAndTheNextCallWorks()
    {
        var host = new JsFilterHost();
        var filter = Js.Filter("function onRequest(req, ctx) { if (req.path === '/spin') { while (true) {} } ctx.respond(200, 'ok'); }", limits: Js.Limits(timeoutMs: 100), host: host);

        Assert.Equal("FilterTimeoutException", Assert.ThrowsAny<Exception>(() => Js.Run(filter, new JsTestContext { Path = "/spin" })).GetType().Name);
        Assert.Equal("ok", Js.Body(filter, new JsTestContext()));
    }

    [Theory]
    [InlineData("for (let i = 0; ; i++) {}", 8, "Statements")]
    [InlineData("const a = []; for (;;) a.push({ n: a.length, s: 'x' + a.length });", 8, "Memory")]
    [InlineData("function down(n) { return down(n + 1) + 1; } down(0);", 8, "Recursion")]
    [InlineData("let a = []; for (let i = 0; i < 100000; i++) a = [a]; String(a);", 256, "Recursion")]
    public void Limit_Breached_ReportedWithTheLimitAndFile(string body, int memoryMb, string limit)
    {
        var filter = Js.Filter($"function onRequest(req, ctx) {{ if (req.path === '/bad') {{ {body} }} ctx.respond(200, 'ok'); }}", limits: Js.Limits(timeoutMs: 20_000, statements: 1_000_000, memoryMb: memoryMb, recursion: 50), name: "bad.js");

        var error = Assert.Throws<JsCallException>(() => Js.Run(filter, new JsTestContext { Path = "/bad" }));

        Assert.Equal(limit, error.Limit.ToString());
        Assert.StartsWith("bad.js ", error.Message, StringComparison.Ordinal);
        Assert.Equal("ok", Js.Body(filter, new JsTestContext()));
    }

    [Theory]
    [InlineData("/(a+)+$/.test('a'.repeat(40) + '!')")]
    [InlineData("function again() { Promise.resolve().then(again); } again();")]
    public void Limit_WorkOutsideStatements_StillTimesOut(string body)
    {
        var filter = Js.Filter($"function onRequest(req, ctx) {{ {body} }}", limits: Js.Limits(timeoutMs: 200));

        Assert.Equal("FilterTimeoutException", Assert.ThrowsAny<Exception>(() => Js.Run(filter, new JsTestContext())).GetType().Name);
    }

    [Fact]
    public void ScriptError_ReportedWithFileLineColumn()
    {
        var filter = Js.Filter("function onRequest(req, ctx) {\n  const user = null;\n  return user.name;\n}", name: "oops.js");

        var error = Assert.Throws<JsCallException>(() => Js.Run(filter, new JsTestContext()));

        Assert.Null(error.Limit);
        Assert.StartsWith("oops.js:3:", error.Message, StringComparison.Ordinal);
        Assert.Contains("TypeError", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void TopLevel_FailsOrLoops_TheFilterIsNotBuilt()
    {
        Assert.Contains("ReferenceError", Assert.Throws<JsScriptException>(() => Js.Filter("const x = missing();\nfunction onRequest() {}")).Message, StringComparison.Ordinal);
        Assert.Contains("time limit", Assert.Throws<JsScriptException>(() => Js.Filter("while (true) {}\nfunction onRequest() {}", limits: Js.Limits(timeoutMs: 100))).Message, StringComparison.Ordinal);
    }
}
