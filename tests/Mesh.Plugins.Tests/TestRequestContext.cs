// A request view with only the contract 1.0 members, as a plugin author's test double would be: the rest comes from defaults.
namespace Mesh.Plugins.Tests;

internal sealed class TestRequestContext : IRequestContext
{
    private readonly Dictionary<string, string> _headers = new(StringComparer.OrdinalIgnoreCase);

    public string Method => "GET";

    public string Host => "api.example.com";

    public string Path => "/";

    public string Route => "r";

    public string Service => "api";

    public string ClientAddress => "127.0.0.1";

    public string? GetHeader(string name) => _headers.TryGetValue(name, out var value) ? value : null;

    public void SetHeader(string name, string value) => _headers[name] = value;

    public void RemoveHeader(string name) => _headers.Remove(name);
}
