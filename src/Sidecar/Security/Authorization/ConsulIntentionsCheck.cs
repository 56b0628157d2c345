// authorization.consulIntentions: the Consul agent decides whether a verified caller may call the local app.
using Mesh.Discovery.Consul;

namespace Mesh.Sidecar.Security.Authorization;

/// <summary>
/// The intentions stage of inbound authorization, after the rules: the caller's SPIFFE ID (already
/// verified against the Connect roots by the mTLS handshake) goes to the agent's
/// <c>authorize</c> endpoint once per caller, through the current Consul client. A caller without an
/// identity, a sidecar without a Consul agent, or an agent that cannot answer is denied. The client
/// is the one the Consul provider was last configured with (the <c>consul</c> block's).
/// </summary>
internal sealed class ConsulIntentionsCheck(ConsulServiceCatalog consul, ILoggerFactory loggerFactory)
{
    /// <summary>The rule name in metrics and 403 bodies.</summary>
    public const string RuleName = "consul-intentions";

    private Holder? _current;

    public ValueTask<IntentionDecision> CheckAsync(string target, PeerIdentityFeature? peer)
    {
        if (peer is null)
        {
            return new(new IntentionDecision(false, "the caller has no verified identity (plaintext); Consul intentions need mTLS"));
        }

        if (consul.Client is not { } client)
        {
            return new(new IntentionDecision(false, "no Consul agent is configured"));
        }

        var current = Volatile.Read(ref _current);
        if (current is null || !ReferenceEquals(current.Client, client))
        {
            // A new agent client (reload): a new cache, since its answers may differ.
            var fresh = new Holder(client, new ConsulIntentionAuthorizer(client, loggerFactory.CreateLogger<ConsulIntentionAuthorizer>()));
            current = Interlocked.CompareExchange(ref _current, fresh, current) == current ? fresh : Volatile.Read(ref _current)!;
        }

        var uri = peer.PeerId.Value;
        if (!current.Authorizer.TryGetCached(target, uri, out var decision))
        {
            decision = current.Authorizer.AuthorizeAsync(target, uri, peer.Certificate.SerialNumber);
        }

        return decision.IsCompletedSuccessfully ? new(decision.Result) : new(decision);
    }

    private sealed record Holder(ConsulClient Client, ConsulIntentionAuthorizer Authorizer);
}
