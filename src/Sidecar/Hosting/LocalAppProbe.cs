// Is the local app accepting connections? /ready asks when the service is registered in Consul.
using System.Net.Sockets;
using Mesh.Sidecar.Configuration;

namespace Mesh.Sidecar.Hosting;

/// <summary>
/// A TCP connect to <c>service.address:service.port</c>, so that Consul (through <c>/ready</c>)
/// takes the instance out when the app beside the sidecar is down, not only when the sidecar is.
/// </summary>
internal static class LocalAppProbe
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(1);

    /// <summary>True when <paramref name="options"/> registers in Consul and the local app has a port.</summary>
    public static bool Applies(MeshOptions options) => options.Consul is { Register: true } && options.Service.Port > 0;

    /// <summary>Null when the app accepts a connection; otherwise why not.</summary>
    public static async Task<string?> CheckAsync(LocalServiceOptions service, CancellationToken cancellationToken)
    {
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        deadline.CancelAfter(Timeout);
        using var socket = new Socket(SocketType.Stream, ProtocolType.Tcp);
        try
        {
            await socket.ConnectAsync(service.Address, service.Port, deadline.Token).ConfigureAwait(false);
            return null;
        }
        catch (SocketException ex)
        {
            return $"local app at {service.Address}:{service.Port} is not accepting connections ({ex.SocketErrorCode})";
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            return $"local app at {service.Address}:{service.Port} did not accept a connection within {Timeout.TotalSeconds:0} s";
        }
    }
}
