// The view of one request that a filter gets, free of ASP.NET types so plugins stay small.
namespace Mesh.Plugins;

/// <summary>One request as a filter sees it.</summary>
public interface IRequestContext
{
    /// <summary>HTTP method, upper case.</summary>
    string Method { get; }

    /// <summary>Host header without port.</summary>
    string Host { get; }

    /// <summary>Request path, unescaped.</summary>
    string Path { get; }

    /// <summary>Name of the matched route.</summary>
    string Route { get; }

    /// <summary>Name of the service the route picked.</summary>
    string Service { get; }

    /// <summary>The client's address as text.</summary>
    string ClientAddress { get; }

    /// <summary>First value of a request header, or null.</summary>
    string? GetHeader(string name);

    /// <summary>Sets (replaces) a request header sent upstream.</summary>
    void SetHeader(string name, string value);

    /// <summary>Removes a request header before it is sent upstream.</summary>
    void RemoveHeader(string name);
}
