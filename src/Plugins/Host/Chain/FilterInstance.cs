// One filter object built by a factory, lease-counted so it is disposed (and its plugin unloaded) only after its last request.
namespace Mesh.Plugins;

/// <summary>
/// A filter created from one config entry. Routing snapshots share it while its factory and config
/// stay the same (so a rate limiter keeps its buckets across reloads). Each request that runs it
/// holds a lease; once a swap has retired it and the last lease is returned it closes: the filter is
/// disposed if it is disposable and its package may unload.
/// </summary>
public sealed class FilterInstance
{
    private const int Closed = -1;
    private int _leases;
    private int _retired;
    private readonly Action<FilterInstance, Exception>? _disposeFailed;

    /// <summary>Wraps <paramref name="filter"/> (an <see cref="IRequestFilter"/> or <see cref="IConnectionFilter"/>) made from <paramref name="package"/>.</summary>
    public FilterInstance(object filter, FilterPackage? package, string key, Action<FilterInstance, Exception>? disposeFailed = null)
    {
        ArgumentNullException.ThrowIfNull(filter);
        ArgumentNullException.ThrowIfNull(key);
        Filter = filter;
        Package = package;
        Key = key;
        _disposeFailed = disposeFailed;
        package?.AddInstance();
    }

    /// <summary>The filter object.</summary>
    public object Filter { get; }

    /// <summary>The factory that made it; an instance is reused only for the same factory object.</summary>
    public object? Factory { get; init; }

    /// <summary>Where its factory came from; null for built-in filters.</summary>
    public FilterPackage? Package { get; }

    /// <summary>What it was built from (scope, position, name, factory and config); equal keys may share the instance.</summary>
    public string Key { get; }

    /// <summary>True once closed: retired and no request holds it.</summary>
    public bool IsClosed => Volatile.Read(ref _leases) == Closed;

    /// <summary>Requests running it now.</summary>
    public int Leases => Math.Max(0, Volatile.Read(ref _leases));

    /// <summary>Takes a lease for one request; false when the instance is already closed (the caller reads the newer snapshot).</summary>
    public bool TryEnter()
    {
        while (true)
        {
            var leases = Volatile.Read(ref _leases);
            if (leases == Closed)
            {
                return false;
            }

            if (Interlocked.CompareExchange(ref _leases, leases + 1, leases) == leases)
            {
                return true;
            }
        }
    }

    /// <summary>Returns a lease taken by <see cref="TryEnter"/>.</summary>
    public void Leave()
    {
        if (Interlocked.Decrement(ref _leases) == 0 && Volatile.Read(ref _retired) != 0)
        {
            TryClose();
        }
    }

    /// <summary>No snapshot uses the instance any more: close it once its last request ends (now, if none runs it).</summary>
    public void Retire()
    {
        if (Interlocked.Exchange(ref _retired, 1) == 0)
        {
            TryClose();
        }
    }

    private void TryClose()
    {
        if (Interlocked.CompareExchange(ref _leases, Closed, 0) != 0)
        {
            return;
        }

        try
        {
            switch (Filter)
            {
                case IAsyncDisposable asyncDisposable:
                    var pending = asyncDisposable.DisposeAsync();
                    if (!pending.IsCompletedSuccessfully)
                    {
                        // Disposal finishes in the background; the package is released when it does.
                        _ = ReleaseAfterAsync(pending);
                        return;
                    }

                    break;
                case IDisposable disposable:
                    disposable.Dispose();
                    break;
            }
        }
        catch (Exception ex)
        {
            _disposeFailed?.Invoke(this, ex);
        }

        Package?.ReleaseInstance();
    }

    private async Task ReleaseAfterAsync(ValueTask pending)
    {
        try
        {
            await pending.ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            _disposeFailed?.Invoke(this, ex);
        }

        Package?.ReleaseInstance();
    }
}
