// Reads the consistent-hash key of a request: a header, a cookie or the client address.
using Mesh.Sidecar.Configuration;

namespace Mesh.Sidecar.LoadBalancing;

/// <summary>Computes a request's hash key as configured by <see cref="HashKeyOptions"/>.</summary>
internal sealed class HashKeySelector
{
    private readonly string _source;
    private readonly string _name;

    public HashKeySelector(HashKeyOptions options)
    {
        _source = options.Source;
        _name = options.Name ?? "";
    }

    /// <summary>The key's hash, or null when the request does not carry the key.</summary>
    public ulong? Compute(HttpContext context)
    {
        switch (_source)
        {
            case HashSources.Header:
                var header = context.Request.Headers[_name];
                return header.Count == 0 || string.IsNullOrEmpty(header[0]) ? null : StableHash.Of(header[0]);
            case HashSources.Cookie:
                var cookie = context.Request.Cookies[_name];
                return string.IsNullOrEmpty(cookie) ? null : StableHash.Of(cookie);
            default:
                var address = context.Connection.RemoteIpAddress;
                return address is null ? null : StableHash.Of(address);
        }
    }
}
