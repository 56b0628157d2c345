// Mesh plugin "api-key": lets a request through only with a configured API key in a header.
using System.Security.Cryptography;
using System.Text;
using Mesh.Plugins;

namespace Mesh.Samples.ApiKeyAuth;

/// <summary>
/// Builds the <c>api-key</c> filter. Config: <c>keys</c> (required, the accepted keys), <c>header</c>
/// (default <c>x-api-key</c>), <c>realm</c> (default <c>mesh</c>) and <c>forwardKey</c> (default false:
/// the key is removed before the request goes upstream).
/// </summary>
public sealed class ApiKeyAuthFactory : IRequestFilterFactory
{
    /// <inheritdoc />
    public string Name => "api-key";

    /// <inheritdoc />
    public IRequestFilter Create(FilterSettings settings)
    {
        ArgumentNullException.ThrowIfNull(settings);
        var keys = settings.GetStrings("keys");
        if (keys.Count == 0)
        {
            throw new FilterConfigException("keys", "give at least one key");
        }

        for (var i = 0; i < keys.Count; i++)
        {
            if (keys[i].Length == 0)
            {
                throw new FilterConfigException($"keys[{i}]", "must not be empty");
            }
        }

        return new ApiKeyAuthFilter(keys, settings.GetString("header", "x-api-key")!, settings.GetString("realm", "mesh")!, settings.GetBoolean("forwardKey", false));
    }
}

/// <summary>Checks the key in constant time against the hashes of the configured keys.</summary>
internal sealed class ApiKeyAuthFilter : IRequestFilter
{
    private readonly byte[][] _hashes;
    private readonly string _header;
    private readonly bool _forwardKey;
    private readonly FilterResult _unauthorized;

    public ApiKeyAuthFilter(IReadOnlyList<string> keys, string header, string realm, bool forwardKey)
    {
        _hashes = [.. keys.Select(k => SHA256.HashData(Encoding.UTF8.GetBytes(k)))];
        _header = header;
        _forwardKey = forwardKey;
        // Built once: every refusal returns the same value.
        _unauthorized = FilterResult.Respond(401, "missing or invalid API key\n", [new("WWW-Authenticate", $"ApiKey realm=\"{realm}\", header=\"{header}\"")]);
    }

    public ValueTask<FilterResult> OnRequestAsync(IRequestContext context, CancellationToken cancellationToken)
    {
        var key = context.GetHeader(_header);
        if (key is null || !Known(key))
        {
            return ValueTask.FromResult(_unauthorized);
        }

        if (!_forwardKey)
        {
            context.RemoveHeader(_header);
        }

        // Later filters of the chain (a rate limit per caller, say) can read who passed.
        context.Items["api-key.authenticated"] = true;
        return ValueTask.FromResult(FilterResult.Continue);
    }

    private bool Known(string key)
    {
        Span<byte> hash = stackalloc byte[32];
        SHA256.HashData(Encoding.UTF8.GetBytes(key), hash);
        var found = false;
        foreach (var known in _hashes)
        {
            // Every key is compared, so the time taken says nothing about which one matched.
            found |= CryptographicOperations.FixedTimeEquals(hash, known);
        }

        return found;
    }
}
