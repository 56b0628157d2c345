// Per-service settings of Mesh's HTTP/1.1 upstream client.
namespace Mesh.Sidecar.Upstream.Http1;

/// <summary>Timeouts of one service; a cluster has these only when its upstream is plain HTTP/1.1 and the client is on.</summary>
/// <param name="ConnectTimeoutMs">Time allowed to open a connection.</param>
/// <param name="RequestTimeoutMs">Longest wait for upstream activity (response head or body).</param>
internal sealed record Http1Settings(int ConnectTimeoutMs, int RequestTimeoutMs);
