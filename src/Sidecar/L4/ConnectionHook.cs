// Runs the connection filters for each accepted connection: registered ones, then the listener's configured connectionFilters.
using Mesh.Plugins;
using Mesh.Sidecar.Translation;

namespace Mesh.Sidecar.L4;

/// <summary>
/// All <see cref="IConnectionFilter"/>s registered in the sidecar's services, in registration order,
/// then the listener's <c>connectionFilters</c> chain from the current snapshot; the first "deny" wins.
/// </summary>
internal sealed class ConnectionHook(IEnumerable<IConnectionFilter> filters, MeshStateStore store)
{
    private readonly IConnectionFilter[] _filters = [.. filters];

    /// <summary>True when no filter would run on any listener, so callers can skip building a <see cref="AcceptedConnection"/>.</summary>
    public bool IsEmpty => _filters.Length == 0 && !(store.HasState && store.Current.Filters.HasConnectionFilters);

    public async ValueTask<bool> AllowAsync(AcceptedConnection connection, CancellationToken cancellationToken)
    {
        foreach (var filter in _filters)
        {
            if (!await filter.AllowAsync(connection, cancellationToken).ConfigureAwait(false))
            {
                return false;
            }
        }

        if (!store.HasState)
        {
            return true;
        }

        var chain = store.Current.Filters.ConnectionChainFor(connection.Listener);
        if (chain.IsEmpty)
        {
            return true;
        }

        // A chain closed by a plugin swap since it was read: take the current snapshot's.
        while (!chain.TryEnter())
        {
            chain = store.Current.Filters.ConnectionChainFor(connection.Listener);
        }

        try
        {
            return await chain.AllowAsync(connection, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            chain.Leave();
        }
    }
}
