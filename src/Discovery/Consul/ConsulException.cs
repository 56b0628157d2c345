// The one error type of the Consul client: what was asked, what the agent said, and whether to retry.
using System.Net;

namespace Mesh.Discovery.Consul;

/// <summary>A Consul call that failed: unreachable agent, error status or malformed body.</summary>
public sealed class ConsulException : Exception
{
    /// <summary>Creates an error.</summary>
    public ConsulException(string message, HttpStatusCode? statusCode = null, bool isTransient = false, Exception? innerException = null)
        : base(message, innerException)
    {
        StatusCode = statusCode;
        IsTransient = isTransient;
    }

    /// <summary>Creates an error with no details.</summary>
    public ConsulException()
        : this("Consul call failed")
    {
    }

    /// <summary>Creates an error with a message.</summary>
    public ConsulException(string message)
        : this(message, (HttpStatusCode?)null)
    {
    }

    /// <summary>Creates an error with a message and a cause.</summary>
    public ConsulException(string message, Exception innerException)
        : this(message, null, false, innerException)
    {
    }

    /// <summary>The agent's status code, or null when no answer came.</summary>
    public HttpStatusCode? StatusCode { get; }

    /// <summary>True when trying again later may succeed (no connection, timeout, 429, 5xx).</summary>
    public bool IsTransient { get; }
}
