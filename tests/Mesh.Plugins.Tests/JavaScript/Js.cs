// Builds JavaScript filters from source text for tests, as the sidecar builds them from files.
using System.Text;
using System.Text.Json;
using Mesh.Plugins.JavaScript;

namespace Mesh.Plugins.Tests.JavaScript;

internal static class Js
{
    public static JsScript Script(string source, string name = "test.js") =>
        JsScript.Load(Path.Combine(Path.GetTempPath(), name), Encoding.UTF8.GetBytes(source));

    public static IRequestFilter Filter(string source, string config = "{}", JsFilterLimits? limits = null, JsFilterHost? host = null, string name = "test.js")
    {
        using var document = JsonDocument.Parse(config);
        var settings = new FilterSettings(name, document.RootElement.Clone(), "routes[0].filters[0].config") { Route = "api" };
        return new JsFilterFactory(Script(source, name), host ?? new JsFilterHost()).Create(settings, limits ?? JsFilterLimits.Default);
    }

    public static FilterResult Run(IRequestFilter filter, IRequestContext context)
    {
        var pending = filter.OnRequestAsync(context, CancellationToken.None);
        Assert.True(pending.IsCompleted, "a JavaScript filter completes synchronously");
        return pending.IsCompleted ? pending.Result : default;
    }

    /// <summary>Runs a filter whose onRequest answers with a body, and returns the body.</summary>
    public static string Body(IRequestFilter filter, IRequestContext context)
    {
        var result = Run(filter, context);
        Assert.Equal(FilterAction.Respond, result.Action);
        return result.Body ?? "";
    }

    public static JsFilterLimits Limits(int timeoutMs = 2000, int statements = 10_000_000, int memoryMb = 64, int recursion = 64) =>
        new(TimeSpan.FromMilliseconds(timeoutMs), statements, memoryMb * 1024L * 1024L, recursion);
}
