// Sources of the plugins these tests compile: small, each with one behaviour or one fault.
namespace Mesh.Plugins.Tests;

internal static class TestPlugins
{
    /// <summary>A request filter "stamp" that sets x-stamp to its config's "value" (default: the version baked in).</summary>
    public static string Stamp(string version, string name = "stamp") => $$"""
        using System.Text.Json;
        namespace Stamp;
        public sealed class StampFactory : IRequestFilterFactory
        {
            public string Name => "{{name}}";
            public IRequestFilter Create(FilterSettings settings) => new StampFilter(settings.GetString("value", "{{version}}")!);
        }
        public sealed class StampFilter(string value) : IRequestFilter
        {
            public ValueTask<FilterResult> OnRequestAsync(IRequestContext context, CancellationToken cancellationToken)
            {
                context.SetHeader("x-stamp", value);
                return ValueTask.FromResult(FilterResult.Continue);
            }
        }
        """;

    /// <summary>A factory written against contract 1.0: string-pair settings, the four original members.</summary>
    public const string Contract10 = """
        namespace Legacy;
        public sealed class LegacyFactory : IRequestFilterFactory
        {
            public string Name => "legacy";
            public IRequestFilter Create(IReadOnlyDictionary<string, string> settings) =>
                new LegacyFilter(settings.TryGetValue("greeting", out var g) ? g : "none", settings.TryGetValue("targets:1", out var t) ? t : "none");
        }
        public sealed class LegacyFilter(string greeting, string target) : IRequestFilter
        {
            public ValueTask<FilterResult> OnRequestAsync(IRequestContext context, CancellationToken cancellationToken)
            {
                context.SetHeader("x-greeting", greeting);
                return ValueTask.FromResult(context.GetHeader("x-deny") is null ? FilterResult.Reroute(target) : FilterResult.Respond(403, "denied"));
            }
        }
        """;

    public const string ConstructorThrows = """
        namespace Broken;
        public sealed class BrokenFactory : IRequestFilterFactory
        {
            public BrokenFactory() => throw new InvalidOperationException("no license file");
            public string Name => "broken";
            public IRequestFilter Create(FilterSettings settings) => throw new NotImplementedException();
        }
        """;

    /// <summary>Uses the contract (a filter) but publishes no factory.</summary>
    public const string NoFactory = """
        namespace Nothing;
        public sealed class Orphan : IRequestFilter
        {
            public ValueTask<FilterResult> OnRequestAsync(IRequestContext context, CancellationToken cancellationToken) => ValueTask.FromResult(FilterResult.Continue);
        }
        """;

    public const string NoCreate = """
        namespace Lazy;
        public sealed class LazyFactory : IRequestFilterFactory
        {
            public string Name => "lazy";
        }
        """;

    public const string BadName = """
        namespace Bad;
        public sealed class BadFactory : IRequestFilterFactory
        {
            public string Name => "has spaces";
            public IRequestFilter Create(FilterSettings settings) => throw new NotImplementedException();
        }
        """;

    /// <summary>A connection filter "allow-port" that allows connections whose client port is even (config "parity").</summary>
    public const string Connection = """
        namespace Conn;
        public sealed class ParityFactory : IConnectionFilterFactory
        {
            public string Name => "parity";
            public IConnectionFilter Create(FilterSettings settings) => new ParityFilter(settings.GetString("parity", "even") == "even");
        }
        public sealed class ParityFilter(bool even) : IConnectionFilter
        {
            public ValueTask<bool> AllowAsync(AcceptedConnection connection, CancellationToken cancellationToken) => ValueTask.FromResult((connection.RemotePort % 2 == 0) == even);
        }
        """;
}
