// A service's Connect identity from the agent: leaf and CA roots, kept current with blocking queries.
using System.Runtime.CompilerServices;
using System.Security.Cryptography.X509Certificates;
using System.Threading.Channels;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Polly;
using Polly.Retry;

namespace Mesh.Discovery.Consul;

/// <summary>One version of a service's Connect identity: its leaf (with key) and the roots to trust.</summary>
/// <param name="Leaf">The agent's answer for <c>/v1/agent/connect/ca/leaf/SERVICE</c>.</param>
/// <param name="Roots">The agent's answer for <c>/v1/agent/connect/ca/roots</c>.</param>
public sealed record ConnectIdentity(LeafCert Leaf, CaRootList Roots)
{
    /// <summary>The leaf with its private key, ready for TLS.</summary>
    public X509Certificate2 CreateCertificate() => X509Certificate2.CreateFromPem(Leaf.CertPem, Leaf.PrivateKeyPem);

    /// <summary>Intermediates of the active root, sent after the leaf in handshakes.</summary>
    public X509Certificate2Collection CreateIntermediates()
    {
        var intermediates = new X509Certificate2Collection();
        foreach (var root in Roots.Roots)
        {
            if (root.Id == Roots.ActiveRootId && root.IntermediateCerts is { } pems)
            {
                foreach (var pem in pems)
                {
                    intermediates.ImportFromPem(pem);
                }
            }
        }

        return intermediates;
    }

    /// <summary>Every root (the old ones stay trusted during a rotation): what peers must chain to.</summary>
    public X509Certificate2Collection CreateTrustBundle()
    {
        var bundle = new X509Certificate2Collection();
        foreach (var root in Roots.Roots)
        {
            bundle.ImportFromPem(root.RootCert);
        }

        return bundle;
    }
}

/// <summary>
/// Follows a service's Connect leaf and the CA roots on the local agent with two blocking-query
/// loops (the index rules of <see cref="BlockingIndex"/>, Polly backoff on failures). Each change
/// of either yields a new <see cref="ConnectIdentity"/>; while the agent is unreachable nothing is
/// yielded and the caller keeps the last one. The agent renews the leaf before it expires and
/// reissues it on a CA rotation, which wakes the leaf query.
/// </summary>
public sealed partial class ConnectIdentityWatcher(ConsulClient client, string service, ILogger? logger = null, TimeProvider? timeProvider = null)
{
    private readonly ILogger _logger = logger ?? NullLogger.Instance;
    private readonly TimeProvider _time = timeProvider ?? TimeProvider.System;

    /// <summary>The first backoff after a failed read; it grows with jitter.</summary>
    public TimeSpan RetryDelay { get; init; } = TimeSpan.FromMilliseconds(250);

    /// <summary>The longest backoff between reads while the agent is unreachable.</summary>
    public TimeSpan MaxRetryDelay { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>Called with a reason when a read fails (the last identity stays in use).</summary>
    public Action<string>? OnFailure { get; init; }

    /// <summary>Reads the current identity once; throws <see cref="ConsulException"/> when the agent cannot give it.</summary>
    public async Task<(ConnectIdentity Identity, ulong RootsIndex, ulong LeafIndex)> LoadAsync(CancellationToken cancellationToken)
    {
        var roots = await client.ConnectCaRootsAsync(QueryOptions.NonBlocking, cancellationToken).ConfigureAwait(false);
        var leaf = await client.ConnectLeafAsync(service, QueryOptions.NonBlocking, cancellationToken).ConfigureAwait(false);
        return (new ConnectIdentity(leaf.Value, roots.Value), BlockingIndex.Next(0, roots.Index), BlockingIndex.Next(0, leaf.Index));
    }

    /// <summary>Loads the identity, yields it, then yields each newer one until cancelled.</summary>
    public async IAsyncEnumerable<ConnectIdentity> WatchAsync([EnumeratorCancellation] CancellationToken cancellationToken)
    {
        var pipeline = Backoff("load");
        var (identity, rootsIndex, leafIndex) = await pipeline.ExecuteAsync(async ct => await LoadAsync(ct).ConfigureAwait(false), cancellationToken).ConfigureAwait(false);
        yield return identity;

        var changes = Channel.CreateUnbounded<object>(new UnboundedChannelOptions { SingleReader = true });
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var loops = new[]
        {
            FollowAsync("roots", rootsIndex, (q, ct) => client.ConnectCaRootsAsync(q, ct), changes.Writer, stop.Token),
            FollowAsync("leaf", leafIndex, (q, ct) => client.ConnectLeafAsync(service, q, ct), changes.Writer, stop.Token),
        };
        try
        {
            var current = identity;
            while (await changes.Reader.WaitToReadAsync(cancellationToken).ConfigureAwait(false))
            {
                while (changes.Reader.TryRead(out var change))
                {
                    current = change switch
                    {
                        LeafCert leaf => current with { Leaf = leaf },
                        CaRootList roots => current with { Roots = roots },
                        _ => current,
                    };
                }

                Log.Changed(_logger, service, current.Leaf.SerialNumber, current.Roots.ActiveRootId);
                yield return current;
            }
        }
        finally
        {
            await stop.CancelAsync().ConfigureAwait(false);
            await Task.WhenAll(loops).ConfigureAwait(false);
        }
    }

    private async Task FollowAsync<T>(string what, ulong index, Func<QueryOptions, CancellationToken, Task<QueryResult<T>>> read, ChannelWriter<object> changes, CancellationToken cancellationToken)
        where T : class
    {
        var pipeline = Backoff(what);
        try
        {
            while (!cancellationToken.IsCancellationRequested)
            {
                var sent = index;
                var result = await pipeline.ExecuteAsync(
                    async ct =>
                    {
                        sent = index;
                        return await read(new QueryOptions(sent), ct).ConfigureAwait(false);
                    },
                    cancellationToken).ConfigureAwait(false);
                var next = BlockingIndex.Next(sent, result.Index);
                // A new index (or a reset) means a new value; an unchanged one is a wait that ran out.
                if (result.Index != sent)
                {
                    changes.TryWrite(result.Value);
                }

                index = next;
            }
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
        }
    }

    private ResiliencePipeline Backoff(string what) => new ResiliencePipelineBuilder { TimeProvider = _time }
        .AddRetry(new RetryStrategyOptions
        {
            ShouldHandle = new PredicateBuilder().Handle<ConsulException>(),
            MaxRetryAttempts = int.MaxValue,
            BackoffType = DelayBackoffType.Exponential,
            UseJitter = true,
            Delay = RetryDelay,
            MaxDelay = MaxRetryDelay,
            OnRetry = args =>
            {
                var reason = args.Outcome.Exception?.Message ?? "unknown error";
                Log.Failed(_logger, service, what, reason);
                OnFailure?.Invoke(reason);
                return default;
            },
        })
        .Build();

    private static partial class Log
    {
        [LoggerMessage(5301, LogLevel.Information, "Consul Connect: new identity for {Service} (leaf serial {Serial}, active root {RootId})")]
        public static partial void Changed(ILogger logger, string service, string serial, string rootId);

        [LoggerMessage(5302, LogLevel.Warning, "Consul Connect: cannot read the {What} of {Service}; keeping the current identity and retrying: {Reason}")]
        public static partial void Failed(ILogger logger, string service, string what, string reason);
    }
}
