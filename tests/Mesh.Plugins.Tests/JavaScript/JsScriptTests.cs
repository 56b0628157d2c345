// Loading a filter file: syntax errors with their position, the onRequest check, shared or per-call top level.
using System.Text;
using Mesh.Plugins.JavaScript;

namespace Mesh.Plugins.Tests.JavaScript;

public sealed class JsScriptTests
{
    [Fact]
    public void Load_SyntaxError_RefusedWithFileLineColumnAndMessage()
    {
        var error = Assert.Throws<JsScriptException>(() => Js.Script("function onRequest(req, ctx) {\n  if (req.path === '/') {\n    ctx.respond(200 'x');\n  }\n}\n", "broken.js"));

        Assert.StartsWith("broken.js:3:21: ", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Load_NoOnRequest_Refused()
    {
        var error = Assert.Throws<JsScriptException>(() => Js.Script("function onResponse(res, ctx) {}", "nothing.js"));

        Assert.Equal("nothing.js: defines no onRequest: write function onRequest(req, ctx) { ... } at the top level", error.Message);
    }

    [Fact]
    public void Load_CodeClosingTheWrapper_IsASyntaxError()
    {
        // A file must be a complete script on its own, so it cannot reach outside the function it runs in.
        Assert.Throws<JsScriptException>(() => Js.Script("function onRequest() {} }); let leak = 0; (function () {"));
    }

    [Fact]
    public void Load_NotUtf8_Refused()
    {
        var error = Assert.Throws<JsScriptException>(() => JsScript.Load("/x/bin.js", [0xff, 0xfe, 0x00, 0x80]));

        Assert.Equal("bin.js: is not UTF-8 text", error.Message);
    }

    [Theory]
    [InlineData("'use strict';\nfunction onRequest(req, ctx) { ctx.route(H.get(req.path) ?? 'api'); }\nfunction helper() {}\nconst LIMIT = 10;\nconst H = { a: [1, 'b', null], f: () => 1, g() { return 2; } };\nconst T = `x${1 + 2}`;\nconst R = /^Bearer (.+)$/i;")]
    [InlineData("'use strict';\nconst onRequest = (req, ctx) => ctx.route('v2');")]
    public void Load_DeclarationsOnly_TopLevelShared(string source)
    {
        Assert.True(Js.Script(source).SharedTopLevel, Js.Script(source).FreshReason);
    }

    [Theory]
    [InlineData("let count = 0;\nfunction onRequest(req, ctx) { count++; }", "the top level declares with let")]
    [InlineData("var count = 0;\nfunction onRequest(req, ctx) { count++; }", "the top level declares with var")]
    [InlineData("const seen = new Set();\nfunction onRequest(req, ctx) {}", "top-level const 'seen' is computed")]
    [InlineData("const counter = (() => { let n = 0; return () => ++n; })();\nfunction onRequest(req, ctx) {}", "top-level const 'counter' is computed")]
    [InlineData("const re = /x/g;\nfunction onRequest(req, ctx) {}", "top-level const 're' is computed")]
    [InlineData("const o = { ...{ a: 1 } };\nfunction onRequest(req, ctx) {}", "top-level const 'o' is computed")]
    [InlineData("const n = +{ valueOf() { return 1; } };\nfunction onRequest(req, ctx) {}", "top-level const 'n' is computed")]
    [InlineData("function helper() { return 1; }\nfunction onRequest(req, ctx) { helper = () => 2; }", "it assigns to the top-level function 'helper'")]
    [InlineData("function helper() { return 1; }\nfunction onRequest(req, ctx) { [helper] = [null]; }", "it assigns to the top-level function 'helper'")]
    [InlineData("const grab = () => arguments;\nfunction onRequest(req, ctx) {}", "it uses the top level's arguments")]
    [InlineData("class A {}\nfunction onRequest(req, ctx) {}", "the top level declares a class")]
    [InlineData("function onRequest(req, ctx) {}\nonRequest.cache = {};", "the top level runs statements")]
    public void Load_TopLevelThatKeepsState_RunsPerCall(string source, string reason)
    {
        Assert.Equal(reason, Js.Script(source).FreshReason);
    }

    [Fact]
    public void Load_ReservedName_Refused()
    {
        var error = Assert.Throws<JsScriptException>(() => Js.Script("const __mesh_phase = 1;\nfunction onRequest() {}", "r.js"));

        Assert.Contains("reserved", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Load_ByteOrderMark_Accepted()
    {
        var script = JsScript.Load("/x/bom.js", [0xEF, 0xBB, 0xBF, .. Encoding.UTF8.GetBytes("function onRequest() {}")]);

        Assert.Equal("bom.js", script.Name);
    }
}
