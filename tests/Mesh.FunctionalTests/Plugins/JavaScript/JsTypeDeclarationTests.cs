// plugins-samples/js/mesh-filters.d.ts checked by TypeScript's own compiler: the samples pass, a wrong call is caught.
using Mesh.FunctionalTests.Infrastructure;
using Mesh.Tests;

namespace Mesh.FunctionalTests.Plugins.JavaScript;

public sealed class JsTypeDeclarationTests : IDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("mesh-tsc-").FullName;

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    private static Task<ProcessResult> TscAsync(params string[] files)
    {
        var tsc = Path.Combine(ExternalTools.NodeModules("typescript@5.9.3"), "node_modules", "typescript", "bin", "tsc");
        return ExternalProcess.RunAsync("node", [tsc, "--noEmit", "--allowJs", "--checkJs", "--strict", "--target", "es2022", "--lib", "es2022", .. files]);
    }

    [Fact]
    public async Task Declarations_SamplesTypeCheckStrictly_AWrongUseOfTheApiIsCaught()
    {
        var samples = Directory.GetFiles(Path.GetDirectoryName(JsFilterDirectory.SamplePath("auth.js"))!, "*.js");
        var declarations = JsFilterDirectory.SamplePath("mesh-filters.d.ts");
        var wrong = Path.Combine(_directory, "wrong.js");
        File.WriteAllText(wrong, $$"""
            // @ts-check
            /// <reference path="{{declarations}}" />

            /** @type {MeshOnRequest} */
            function onRequest(req, ctx) {
              ctx.respond('200');
              req.path = '/admin';
              ctx.items.user = { name: 'ada' };
            }
            """);

        var good = await TscAsync(samples);
        var bad = await TscAsync(wrong);

        Assert.Equal(4, samples.Length);
        Assert.True(good.ExitCode == 0, good.ToString());
        Assert.NotEqual(0, bad.ExitCode);
        Assert.Contains("wrong.js(6,15): error TS2345", bad.Output, StringComparison.Ordinal);
        Assert.Contains("wrong.js(7,7): error TS2540", bad.Output, StringComparison.Ordinal);
        Assert.Contains("wrong.js(8,3): error TS2322", bad.Output, StringComparison.Ordinal);
    }
}
