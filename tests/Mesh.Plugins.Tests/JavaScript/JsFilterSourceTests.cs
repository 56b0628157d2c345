// The JavaScript source: one filter per .js file, named by its file name; refusals with positions; changes and removals.
using Mesh.Plugins.JavaScript;

namespace Mesh.Plugins.Tests.JavaScript;

public sealed class JsFilterSourceTests : IDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("mesh-js-").FullName;
    private readonly JsFilterSource _source = new() { QuietPeriod = TimeSpan.Zero };

    public JsFilterSourceTests() => _source.SetDirectory(_directory);

    public void Dispose()
    {
        _source.Dispose();
        Directory.Delete(_directory, recursive: true);
    }

    private string Write(string name, string text)
    {
        var path = Path.Combine(_directory, name);
        File.WriteAllText(path, text);
        return path;
    }

    [Fact]
    public void ScanNow_JsFiles_OneFilterEachNamedByItsFileName()
    {
        Write("header-routing.js", "function onRequest(req, ctx) {}");
        Write("auth.js", "function onRequest(req, ctx) {}");
        Write(".auth.js.swp", "junk");
        Write("notes.txt", "junk");

        var changes = _source.ScanNow();

        Assert.Equal(["auth.js", "header-routing.js"], changes.Select(c => c.Package!.RequestFactories.Single().Name).Order(StringComparer.Ordinal));
        Assert.All(changes, c => Assert.Equal((FilterSourceChangeKind.Loaded, "javascript"), (c.Kind, c.Source)));
    }

    [Fact]
    public void ScanNow_SyntaxError_RefusedWithPosition()
    {
        var path = Write("broken.js", "function onRequest(req, ctx) {\n  ctx.route(\n}\n");

        var change = Assert.Single(_source.ScanNow());

        Assert.Equal((FilterSourceChangeKind.Refused, path), (change.Kind, change.File));
        Assert.StartsWith("broken.js:3:1: ", change.Reason, StringComparison.Ordinal);
    }

    [Fact]
    public void ScanNow_TopLevelThatThrows_Refused()
    {
        Write("throws.js", "const config = JSON.parse('{');\nfunction onRequest() {}");

        var change = Assert.Single(_source.ScanNow());

        Assert.Equal(FilterSourceChangeKind.Refused, change.Kind);
        Assert.Contains("SyntaxError", change.Reason, StringComparison.Ordinal);
        Assert.Contains("top level", change.Reason, StringComparison.Ordinal);
    }

    [Fact]
    public void PollOnce_EditedRemovedUnchanged_ReportedOnce()
    {
        var path = Write("stamp.js", "function onRequest(req, ctx) { req.setHeader('x-stamp', '1'); }");
        var first = Assert.Single(_source.ScanNow()).Package!;

        Assert.Empty(_source.PollOnce());
        File.WriteAllText(path, "function onRequest(req, ctx) { req.setHeader('x-stamp', '2'); }");
        var edited = Assert.Single(_source.PollOnce());
        Assert.Equal(FilterSourceChangeKind.Loaded, edited.Kind);
        Assert.NotEqual(first.ContentHash, edited.Package!.ContentHash);

        File.Delete(path);
        var removed = Assert.Single(_source.PollOnce());
        Assert.Equal((FilterSourceChangeKind.Removed, path), (removed.Kind, removed.Id));
    }
}
