// Mesh plugin "rate-limit": a token bucket per caller (header value, client address or peer identity).
using System.Globalization;
using System.Threading.RateLimiting;
using Mesh.Plugins;

namespace Mesh.Samples.RateLimit;

/// <summary>
/// Builds the <c>rate-limit</c> filter. Config: <c>key</c> (<c>header</c>, <c>client-address</c> or
/// <c>peer-identity</c>; default <c>client-address</c>), <c>header</c> (for <c>key: header</c>),
/// <c>tokens</c> (bucket size, default 10), <c>tokensPerPeriod</c> (default: <c>tokens</c>) and
/// <c>periodMs</c> (default 1000).
/// </summary>
public sealed class RateLimitFactory : IRequestFilterFactory
{
    /// <inheritdoc />
    public string Name => "rate-limit";

    /// <inheritdoc />
    public IRequestFilter Create(FilterSettings settings)
    {
        ArgumentNullException.ThrowIfNull(settings);
        var key = settings.GetString("key", "client-address")!;
        if (key is not ("header" or "client-address" or "peer-identity"))
        {
            throw new FilterConfigException("key", $"'{key}' is not one of: header, client-address, peer-identity");
        }

        var header = key == "header" ? settings.GetRequiredString("header") : null;
        var tokens = (int)settings.GetInt64("tokens", 10, 1, 1_000_000);
        var options = new TokenBucketRateLimiterOptions
        {
            TokenLimit = tokens,
            TokensPerPeriod = (int)settings.GetInt64("tokensPerPeriod", tokens, 1, 1_000_000),
            ReplenishmentPeriod = TimeSpan.FromMilliseconds(settings.GetInt64("periodMs", 1000, 1, 86_400_000)),
            QueueLimit = 0,
            AutoReplenishment = true,
        };
        return new RateLimitFilter(key, header, options);
    }
}

/// <summary>One bucket per caller; disposed (its timers stopped) by the sidecar after its last request.</summary>
internal sealed class RateLimitFilter : IRequestFilter, IDisposable
{
    private readonly string _key;
    private readonly string? _header;
    private readonly PartitionedRateLimiter<IRequestContext> _limiter;
    private readonly FilterResult _tooMany;

    public RateLimitFilter(string key, string? header, TokenBucketRateLimiterOptions options)
    {
        _key = key;
        _header = header;
        _limiter = PartitionedRateLimiter.Create<IRequestContext, string>(context => RateLimitPartition.GetTokenBucketLimiter(KeyOf(context), _ => options));
        var retryAfter = Math.Max(1, (int)Math.Ceiling(options.ReplenishmentPeriod.TotalSeconds)).ToString(CultureInfo.InvariantCulture);
        _tooMany = FilterResult.Respond(429, "rate limit exceeded\n", [new("Retry-After", retryAfter)]);
    }

    public ValueTask<FilterResult> OnRequestAsync(IRequestContext context, CancellationToken cancellationToken)
    {
        using var lease = _limiter.AttemptAcquire(context);
        return ValueTask.FromResult(lease.IsAcquired ? FilterResult.Continue : _tooMany);
    }

    public void Dispose() => _limiter.Dispose();

    private string KeyOf(IRequestContext context) => _key switch
    {
        "header" => context.GetHeader(_header!) ?? "",
        "peer-identity" => context.PeerIdentity ?? "",
        _ => context.ClientAddress,
    };
}
