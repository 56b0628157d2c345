// A real Grpc.AspNetCore backend for the L7 tests: every call shape of mesh.test.Echo, named replies and call probes.
using System.Collections.Concurrent;
using Grpc.Core;
using Grpc.Net.Client;
using Mesh.FunctionalTests.Grpc;
using Mesh.FunctionalTests.Infrastructure;
using Microsoft.AspNetCore.Server.Kestrel.Core;

namespace Mesh.FunctionalTests.L7;

/// <summary>What one gRPC backend knows about itself and the calls it saw.</summary>
public sealed class EchoInstance(string name)
{
    private readonly ConcurrentDictionary<string, CallProbe> _probes = new(StringComparer.Ordinal);

    public string Name { get; } = name;

    /// <summary>The probe for calls whose request text is <paramref name="text"/>.</summary>
    public CallProbe Probe(string text) => _probes.GetOrAdd(text, _ => new CallProbe());
}

/// <summary>Signals when a slow call started and when the server saw it cancelled.</summary>
public sealed class CallProbe
{
    private readonly TaskCompletionSource _started = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly TaskCompletionSource _cancelled = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public Task Started => _started.Task;

    public Task Cancelled => _cancelled.Task;

    internal void MarkStarted() => _started.TrySetResult();

    internal void MarkCancelled() => _cancelled.TrySetResult();
}

/// <summary>
/// The Echo service. Unary: text "error" fails with NotFound "nope", delay_ms waits (honouring
/// cancellation). Every call adds the trailer x-trailer: v. Replies carry the instance name.
/// </summary>
public sealed class EchoService(EchoInstance instance) : Echo.EchoBase
{
    public const string TrailerName = "x-trailer";
    public const string TrailerValue = "v";
    public const string ErrorText = "error";

    public override async Task<EchoReply> Unary(EchoRequest request, ServerCallContext context)
    {
        context.ResponseTrailers.Add(TrailerName, TrailerValue);
        if (request.Text == ErrorText)
        {
            throw new RpcException(new Status(StatusCode.NotFound, "nope"));
        }

        if (request.DelayMs > 0)
        {
            var probe = instance.Probe(request.Text);
            probe.MarkStarted();
            try
            {
                await Task.Delay(request.DelayMs, context.CancellationToken);
            }
            catch (OperationCanceledException)
            {
                probe.MarkCancelled();
                throw;
            }
        }

        return new EchoReply { Text = request.Text, Instance = instance.Name };
    }

    public override async Task ServerStream(EchoRequest request, IServerStreamWriter<EchoReply> responseStream, ServerCallContext context)
    {
        for (var i = 0; i < request.Count; i++)
        {
            await responseStream.WriteAsync(new EchoReply { Text = $"{request.Text}-{i}", Instance = instance.Name }, context.CancellationToken);
        }

        context.ResponseTrailers.Add(TrailerName, TrailerValue);
    }

    public override async Task<EchoReply> ClientStream(IAsyncStreamReader<EchoRequest> requestStream, ServerCallContext context)
    {
        var texts = new List<string>();
        await foreach (var request in requestStream.ReadAllAsync(context.CancellationToken))
        {
            texts.Add(request.Text);
        }

        context.ResponseTrailers.Add(TrailerName, TrailerValue);
        return new EchoReply { Text = string.Join(',', texts), Instance = instance.Name };
    }

    public override async Task Duplex(IAsyncStreamReader<EchoRequest> requestStream, IServerStreamWriter<EchoReply> responseStream, ServerCallContext context)
    {
        await foreach (var request in requestStream.ReadAllAsync(context.CancellationToken))
        {
            await responseStream.WriteAsync(new EchoReply { Text = request.Text, Instance = instance.Name }, context.CancellationToken);
        }

        context.ResponseTrailers.Add(TrailerName, TrailerValue);
    }
}

/// <summary>Starts gRPC backends (h2c only) and hands out channels that use one HTTP/2 connection.</summary>
public static class EchoGrpcBackend
{
    public static Task<TestBackend> StartAsync(string name, EchoInstance? instance = null) => TestBackend.StartAsync(
        name,
        HttpProtocols.Http2,
        services: s =>
        {
            s.AddGrpc();
            s.AddSingleton(instance ?? new EchoInstance(name));
        },
        configure: app => app.MapGrpcService<EchoService>());

    /// <summary>A channel to the sidecar's listener: plaintext, HTTP/2 prior knowledge, one connection.</summary>
    public static GrpcChannel Channel(Uri listener) => GrpcChannel.ForAddress(
        listener,
        new GrpcChannelOptions { HttpHandler = new SocketsHttpHandler { UseProxy = false, EnableMultipleHttp2Connections = false } });

    /// <summary>The sidecar config: one catch-all route to the h2c service "greeter".</summary>
    public static object SidecarConfig(IEnumerable<TestBackend> backends, string policy = "round-robin") => TestConfig.Outbound(
        [TestConfig.Route("grpc", "greeter")],
        new Dictionary<string, object> { ["greeter"] = TestConfig.Service(backends, policy, protocol: "http2") });
}
