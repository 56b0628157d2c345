// A full request and response view for JavaScript filter tests: headers, query, cookies, items, response headers.
using System.Web;

namespace Mesh.Plugins.Tests.JavaScript;

internal sealed class JsTestContext : IRequestContext, IResponseContext
{
    private readonly List<KeyValuePair<string, string>> _headers = [];
    private readonly List<KeyValuePair<string, string>> _responseHeaders = [];
    private Dictionary<string, object?>? _items;

    public string Method { get; init; } = "GET";

    public string Host { get; init; } = "api.example.com";

    public string Path { get; init; } = "/users/42";

    public string Route { get; init; } = "api";

    public string Service { get; set; } = "api";

    public string ClientAddress { get; init; } = "127.0.0.1";

    public string Scheme { get; init; } = "http";

    public string QueryString { get; init; } = "";

    public string Listener { get; init; } = "outbound";

    public string? PeerIdentity { get; init; }

    public int StatusCode { get; set; } = 200;

    public IDictionary<string, object?> Items => _items ??= new Dictionary<string, object?>(StringComparer.Ordinal);

    public IEnumerable<KeyValuePair<string, string>> Headers => _headers;

    IEnumerable<KeyValuePair<string, string>> IResponseContext.Headers => _responseHeaders;

    IRequestContext IResponseContext.Request => this;

    public JsTestContext With(string name, string value)
    {
        _headers.Add(new(name, value));
        return this;
    }

    public JsTestContext WithResponse(string name, string value)
    {
        _responseHeaders.Add(new(name, value));
        return this;
    }

    public string? GetHeader(string name) => _headers.FirstOrDefault(h => string.Equals(h.Key, name, StringComparison.OrdinalIgnoreCase)).Value;

    public IReadOnlyList<string> GetHeaderValues(string name) => [.. _headers.Where(h => string.Equals(h.Key, name, StringComparison.OrdinalIgnoreCase)).Select(h => h.Value)];

    public void SetHeader(string name, string value)
    {
        RemoveHeader(name);
        _headers.Add(new(name, value));
    }

    public void RemoveHeader(string name) => _headers.RemoveAll(h => string.Equals(h.Key, name, StringComparison.OrdinalIgnoreCase));

    public string? GetQuery(string name) => QueryString.Length == 0 ? null : HttpUtility.ParseQueryString(QueryString).GetValues(name)?[0];

    public string? GetCookie(string name)
    {
        foreach (var header in GetHeaderValues("cookie"))
        {
            foreach (var part in header.Split(';', StringSplitOptions.TrimEntries))
            {
                var equals = part.IndexOf('=', StringComparison.Ordinal);
                if (equals > 0 && part[..equals] == name)
                {
                    return part[(equals + 1)..];
                }
            }
        }

        return null;
    }

    string? IResponseContext.GetHeader(string name) => _responseHeaders.FirstOrDefault(h => string.Equals(h.Key, name, StringComparison.OrdinalIgnoreCase)).Value;

    void IResponseContext.SetHeader(string name, string value)
    {
        _responseHeaders.RemoveAll(h => string.Equals(h.Key, name, StringComparison.OrdinalIgnoreCase));
        _responseHeaders.Add(new(name, value));
    }

    void IResponseContext.RemoveHeader(string name) => _responseHeaders.RemoveAll(h => string.Equals(h.Key, name, StringComparison.OrdinalIgnoreCase));
}
