// Kestrel endpoints fed by Mesh's own accept loops, so Mesh can sniff protocols and rebind at runtime.
using System.Net;
using System.Threading.Channels;
using Microsoft.AspNetCore.Connections;

namespace Mesh.Sidecar.Listeners;

/// <summary>The HTTP pipelines Kestrel runs for connections Mesh hands over.</summary>
internal enum HttpPipeline
{
    /// <summary>HTTP/1.1 (with WebSocket upgrades).</summary>
    Http1,

    /// <summary>HTTP/2 with prior knowledge (h2c) or after ALPN.</summary>
    Http2,

    /// <summary>TLS (mTLS from peers, or edge TLS): Kestrel terminates it, then ALPN picks HTTP/1.1 or HTTP/2.</summary>
    Tls,
}

/// <summary>An endpoint Kestrel "binds" that is really a queue of connections from Mesh's accept loops.</summary>
internal sealed class VirtualEndPoint(HttpPipeline pipeline) : EndPoint
{
    public HttpPipeline Pipeline { get; } = pipeline;

    public override string ToString() => "mesh-" + Pipeline.ToString().ToLowerInvariant();
}

/// <summary>
/// Kestrel's transport for <see cref="VirtualEndPoint"/>s: accepting from it returns the
/// connections that <see cref="ListenerManager"/> decided belong to that HTTP pipeline.
/// </summary>
internal sealed class VirtualConnectionListenerFactory : IConnectionListenerFactory, IConnectionListenerFactorySelector
{
    private readonly Channel<ConnectionContext>[] _queues =
    [
        Channel.CreateUnbounded<ConnectionContext>(new UnboundedChannelOptions { SingleReader = false, SingleWriter = false }),
        Channel.CreateUnbounded<ConnectionContext>(new UnboundedChannelOptions { SingleReader = false, SingleWriter = false }),
        Channel.CreateUnbounded<ConnectionContext>(new UnboundedChannelOptions { SingleReader = false, SingleWriter = false }),
    ];

    public bool CanBind(EndPoint endpoint) => endpoint is VirtualEndPoint;

    public ValueTask<IConnectionListener> BindAsync(EndPoint endpoint, CancellationToken cancellationToken = default)
    {
        var virtualEndPoint = (VirtualEndPoint)endpoint;
        return ValueTask.FromResult<IConnectionListener>(new VirtualListener(virtualEndPoint, _queues[(int)virtualEndPoint.Pipeline].Reader));
    }

    /// <summary>Hands a connection to Kestrel's pipeline for <paramref name="pipeline"/>.</summary>
    public bool Dispatch(HttpPipeline pipeline, ConnectionContext connection) => _queues[(int)pipeline].Writer.TryWrite(connection);

    private sealed class VirtualListener(EndPoint endPoint, ChannelReader<ConnectionContext> queue) : IConnectionListener
    {
        private readonly CancellationTokenSource _unbound = new();

        public EndPoint EndPoint { get; } = endPoint;

        public async ValueTask<ConnectionContext?> AcceptAsync(CancellationToken cancellationToken = default)
        {
            using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, _unbound.Token);
            try
            {
                return await queue.ReadAsync(linked.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                // Kestrel reads null as "this listener is done".
                return null;
            }
            catch (ChannelClosedException)
            {
                return null;
            }
        }

        public ValueTask UnbindAsync(CancellationToken cancellationToken = default)
        {
            _unbound.Cancel();
            return ValueTask.CompletedTask;
        }

        public ValueTask DisposeAsync()
        {
            _unbound.Cancel();
            _unbound.Dispose();
            return ValueTask.CompletedTask;
        }
    }
}
