// What went wrong on an upstream HTTP/1.1 connection, in words for the debug log.
namespace Mesh.Sidecar.Upstream.Http1;

/// <summary>An upstream broke the HTTP/1.1 protocol or closed the connection mid-message.</summary>
internal sealed class Http1UpstreamException(string message) : IOException(message);

/// <summary>
/// The request cannot be written as valid HTTP/1.1 (a header name that is not a token, a value with
/// a line break, a method that is not a token); thrown before any byte is sent.
/// </summary>
internal sealed class Http1RequestRefusedException(string message) : Exception(message);
