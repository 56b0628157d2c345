// C# sources of the plugins the functional tests compile (Roslyn) and drop into a sidecar's plugins directory.
namespace Mesh.FunctionalTests.Plugins;

internal static class TestPluginSources
{
    /// <summary>
    /// "stamp": sets request header x-stamp and response header x-stamp-response to <paramref name="version"/>.
    /// With <paramref name="constructorThrows"/> the factory's constructor throws.
    /// </summary>
    public static string Stamp(string version, bool constructorThrows = false) => $$"""
        namespace Stamp;
        public sealed class StampFactory : IRequestFilterFactory
        {
            public StampFactory() { {{(constructorThrows ? "throw new InvalidOperationException(\"stamp cannot start\");" : "")}} }
            public string Name => "stamp";
            public IRequestFilter Create(FilterSettings settings)
            {
                if (settings.GetBoolean("refuse", false)) throw new FilterConfigException("refuse", "this version refuses the setting");
                return new StampFilter("{{version}}");
            }
        }
        public sealed class StampFilter(string version) : IRequestFilter, IResponseFilter
        {
            public ValueTask<FilterResult> OnRequestAsync(IRequestContext context, CancellationToken cancellationToken)
            {
                context.SetHeader("x-stamp", version);
                return ValueTask.FromResult(FilterResult.Continue);
            }

            public ValueTask OnResponseAsync(IResponseContext context, CancellationToken cancellationToken)
            {
                context.SetHeader("x-stamp-response", version);
                return ValueTask.CompletedTask;
            }
        }
        """;

    /// <summary>"stamp" whose Create rejects a setting the others accept ("mode": "strict" is unknown to it).</summary>
    public const string StampRejectingConfig = """
        namespace Stamp;
        public sealed class StampFactory : IRequestFilterFactory
        {
            public string Name => "stamp";
            public IRequestFilter Create(FilterSettings settings) => throw new FilterConfigException("mode", "unknown setting in this version");
        }
        """;

    /// <summary>"auth": requests without x-key: secret get 401.</summary>
    public const string Auth = """
        namespace Auth;
        public sealed class AuthFactory : IRequestFilterFactory
        {
            public string Name => "auth";
            public IRequestFilter Create(FilterSettings settings) => new AuthFilter(settings.GetString("key", "secret")!);
        }
        public sealed class AuthFilter(string key) : IRequestFilter
        {
            private static readonly FilterResult Denied = FilterResult.Respond(401, "no key\n", [new("WWW-Authenticate", "Key")]);
            public ValueTask<FilterResult> OnRequestAsync(IRequestContext context, CancellationToken cancellationToken) =>
                ValueTask.FromResult(context.GetHeader("x-key") == key ? FilterResult.Continue : Denied);
        }
        """;

    /// <summary>
    /// "tag": appends its config's "tag" to request header x-order; "fault": throws or waits "delayMs"
    /// per its config's "mode"; "remember" / "recall": one writes the per-request item bag, the other reads it
    /// into x-recalled along with what the view says about the request.
    /// </summary>
    public const string Toolkit = """
        namespace Toolkit;
        public sealed class TagFactory : IRequestFilterFactory
        {
            public string Name => "tag";
            public IRequestFilter Create(FilterSettings settings) => new TagFilter(settings.GetRequiredString("tag"));
        }
        public sealed class TagFilter(string tag) : IRequestFilter
        {
            public ValueTask<FilterResult> OnRequestAsync(IRequestContext context, CancellationToken cancellationToken)
            {
                var sofar = context.GetHeader("x-order");
                context.SetHeader("x-order", sofar is null ? tag : sofar + "," + tag);
                return ValueTask.FromResult(FilterResult.Continue);
            }
        }
        public sealed class FaultFactory : IRequestFilterFactory
        {
            public string Name => "fault";
            public IRequestFilter Create(FilterSettings settings) => new FaultFilter(settings.GetString("mode", "throw")!, (int)settings.GetInt64("delayMs", 5000));
        }
        public sealed class FaultFilter(string mode, int delayMs) : IRequestFilter
        {
            public async ValueTask<FilterResult> OnRequestAsync(IRequestContext context, CancellationToken cancellationToken)
            {
                if (mode == "throw")
                {
                    throw new InvalidOperationException("fault filter throws");
                }

                await Task.Delay(delayMs, CancellationToken.None);
                return FilterResult.Continue;
            }
        }
        public sealed class RememberFactory : IRequestFilterFactory
        {
            public string Name => "remember";
            public IRequestFilter Create(FilterSettings settings) => new RememberFilter();
        }
        public sealed class RememberFilter : IRequestFilter
        {
            public ValueTask<FilterResult> OnRequestAsync(IRequestContext context, CancellationToken cancellationToken)
            {
                context.Items["user"] = context.GetQuery("user") ?? "nobody";
                return ValueTask.FromResult(FilterResult.Continue);
            }
        }
        public sealed class RecallFactory : IRequestFilterFactory
        {
            public string Name => "recall";
            public IRequestFilter Create(FilterSettings settings) => new RecallFilter();
        }
        public sealed class RecallFilter : IRequestFilter
        {
            public ValueTask<FilterResult> OnRequestAsync(IRequestContext context, CancellationToken cancellationToken)
            {
                var headers = string.Join(";", context.Headers.Where(h => h.Key.StartsWith("x-in", StringComparison.OrdinalIgnoreCase)).Select(h => h.Key.ToLowerInvariant() + "=" + h.Value));
                context.SetHeader("x-recalled", string.Join("|",
                    context.Items.TryGetValue("user", out var user) ? user : "(none)",
                    context.GetCookie("session") ?? "(no cookie)",
                    context.Scheme, context.Listener, context.Direction, context.Route, context.Service,
                    context.PeerIdentity ?? "(no peer identity)",
                    context.ClientPort > 0 ? "port" : "no port",
                    headers));
                return ValueTask.FromResult(FilterResult.Continue);
            }
        }
        public sealed class RerouteFactory : IRequestFilterFactory
        {
            public string Name => "reroute";
            public IRequestFilter Create(FilterSettings settings) => new RerouteFilter(settings.GetRequiredString("service"), settings.GetString("subset"));
        }
        public sealed class RerouteFilter(string service, string? subset) : IRequestFilter
        {
            public ValueTask<FilterResult> OnRequestAsync(IRequestContext context, CancellationToken cancellationToken) =>
                ValueTask.FromResult(subset is null ? FilterResult.Reroute(service) : FilterResult.Reroute(service, subset));
        }
        """;
}
