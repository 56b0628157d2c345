// Request mirroring: a copy of the request goes to a shadow service in the background; its fate never reaches the client.
using System.Diagnostics.CodeAnalysis;
using Mesh.Sidecar.Endpoints;
using Mesh.Sidecar.Routing;
using Mesh.Sidecar.Translation;

namespace Mesh.Sidecar.Resilience;

/// <summary>
/// Builds the copy from the request while the request is still alive (method, path after the route's
/// prefix strip, query, headers, the recorded body), then sends it on the shadow service's own client
/// without awaiting it. The copy's Host gets Envoy's <c>-shadow</c> suffix, so the shadow can tell copies
/// apart. At most <see cref="MaxInFlight"/> copies are in flight; beyond that copies are dropped and
/// counted, so a slow shadow costs memory only up to that bound and never holds a client's request.
/// </summary>
internal sealed partial class MirrorSender(ResilienceMetrics metrics, ResilienceClock clock, ILogger<MirrorSender> logger)
{
    /// <summary>Largest request body copied; larger bodies are not mirrored.</summary>
    public const int MaxBodyBytes = 64 * 1024;

    /// <summary>Copies in flight at once, over every route.</summary>
    public const int MaxInFlight = 1024;

    private static readonly HashSet<string> Skipped = new(StringComparer.OrdinalIgnoreCase)
    {
        "Host", "Connection", "Keep-Alive", "Proxy-Connection", "TE", "Trailer", "Transfer-Encoding", "Upgrade", "Content-Length", "HTTP2-Settings",
    };

    private int _inFlight;

    /// <summary>Copies in flight now.</summary>
    public int InFlight => Volatile.Read(ref _inFlight);

    public void Send(HttpContext context, MeshState state, CompiledRoute route, ReplayableBody? body, bool bodyNotKept)
    {
        var mirror = route.Policy!.Mirror!;
        if (bodyNotKept || (body is not null && !body.Complete))
        {
            metrics.Mirrored(route.Name, mirror.Service, "body-too-large");
            return;
        }

        if (!state.Clusters.TryGetValue(mirror.Service, out var shadow) || shadow.Balancer.Pick(shadow.HashKey?.Compute(context)) is not { } endpoint)
        {
            metrics.Mirrored(route.Name, mirror.Service, "failed");
            return;
        }

        if (Interlocked.Increment(ref _inFlight) > MaxInFlight)
        {
            Interlocked.Decrement(ref _inFlight);
            metrics.Mirrored(route.Name, mirror.Service, "dropped");
            return;
        }

        HttpRequestMessage copy;
        try
        {
            copy = Copy(context, route, shadow, endpoint, body);
        }
        catch (Exception ex) when (ex is FormatException or InvalidOperationException or UriFormatException)
        {
            Interlocked.Decrement(ref _inFlight);
            metrics.Mirrored(route.Name, mirror.Service, "failed");
            Log.CopyFailed(logger, route.Name, ex.Message);
            return;
        }

        _ = SendAsync(copy, shadow, endpoint, route.Name, mirror.Service);
    }

    [SuppressMessage("Reliability", "CA2000:Dispose objects before losing scope", Justification = "The request is disposed by SendAsync.")]
    private static HttpRequestMessage Copy(HttpContext context, CompiledRoute route, Cluster shadow, EndpointState endpoint, ReplayableBody? body)
    {
        var request = context.Request;
        var path = route.Transformer.UpstreamPath(request);
        var copy = new HttpRequestMessage(new HttpMethod(request.Method), endpoint.DestinationPrefix + path.ToUriComponent() + request.QueryString.ToUriComponent())
        {
            Version = shadow.RequestConfig.Version ?? System.Net.HttpVersion.Version11,
            VersionPolicy = shadow.RequestConfig.VersionPolicy ?? HttpVersionPolicy.RequestVersionOrLower,
        };
        if (body is not null && body.Recorded.Length > 0)
        {
            copy.Content = new ByteArrayContent(body.Recorded.ToArray());
        }

        foreach (var (name, values) in request.Headers)
        {
            if (Skipped.Contains(name) || name.StartsWith(':'))
            {
                continue;
            }

            if (!copy.Headers.TryAddWithoutValidation(name, (IEnumerable<string?>)values))
            {
                copy.Content?.Headers.TryAddWithoutValidation(name, (IEnumerable<string?>)values);
            }
        }

        var host = request.Host.HasValue ? request.Host.Host : endpoint.Endpoint.Address;
        copy.Headers.Host = request.Host.Port is { } port ? $"{host}-shadow:{port}" : host + "-shadow";
        return copy;
    }

    private async Task SendAsync(HttpRequestMessage copy, Cluster shadow, EndpointState endpoint, string route, string service)
    {
        endpoint.Enter();
        var failed = true;
        try
        {
            using var timeout = new CancellationTokenSource(shadow.RequestConfig.ActivityTimeout ?? TimeSpan.FromSeconds(100), clock.Time);
            using var response = await shadow.Invoker.SendAsync(copy, timeout.Token).ConfigureAwait(false);
            await response.Content.CopyToAsync(Stream.Null, timeout.Token).ConfigureAwait(false);
            failed = false;
            metrics.Mirrored(route, service, "answered");
        }
        catch (Exception ex) when (ex is HttpRequestException or OperationCanceledException or IOException)
        {
            metrics.Mirrored(route, service, "failed");
            Log.MirrorFailed(logger, route, endpoint.Authority, ex.Message);
        }
        finally
        {
            copy.Dispose();
            endpoint.Leave(failed);
            Interlocked.Decrement(ref _inFlight);
        }
    }

    private static partial class Log
    {
        [LoggerMessage(5031, LogLevel.Debug, "Route {Route}: mirrored copy to {Endpoint} failed: {Reason}")]
        public static partial void MirrorFailed(ILogger logger, string route, string endpoint, string reason);

        [LoggerMessage(5032, LogLevel.Debug, "Route {Route}: the request could not be copied for the mirror: {Reason}")]
        public static partial void CopyFailed(ILogger logger, string route, string reason);
    }
}
