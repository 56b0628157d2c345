// Runs the registered connection filters (plugins, authorization) for each accepted connection.
using Mesh.Plugins;


namespace Mesh.Sidecar.L4;

/// <summary>All <see cref="IConnectionFilter"/>s in registration order; the first "deny" wins.</summary>
internal sealed class ConnectionHook(IEnumerable<IConnectionFilter> filters)
{
    private readonly IConnectionFilter[] _filters = [.. filters];

    /// <summary>True when no filter is registered, so callers can skip building a <see cref="AcceptedConnection"/>.</summary>
    public bool IsEmpty => _filters.Length == 0;

    public async ValueTask<bool> AllowAsync(AcceptedConnection connection, CancellationToken cancellationToken)
    {
        foreach (var filter in _filters)
        {
            if (!await filter.AllowAsync(connection, cancellationToken).ConfigureAwait(false))
            {
                return false;
            }
        }

        return true;
    }
}
