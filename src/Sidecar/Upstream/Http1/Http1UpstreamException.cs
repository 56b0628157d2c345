// What went wrong on an upstream HTTP/1.1 connection, in words for the debug log.
namespace Mesh.Sidecar.Upstream.Http1;

/// <summary>An upstream broke the HTTP/1.1 protocol or closed the connection mid-message.</summary>
internal sealed class Http1UpstreamException(string message) : IOException(message);
