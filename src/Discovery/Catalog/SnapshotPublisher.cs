// Holds the newest snapshot and wakes watchers; shared by every provider implementation.
using System.Runtime.CompilerServices;

namespace Mesh.Discovery;

/// <summary>
/// Keeps the newest <see cref="CatalogSnapshot"/> of a provider and lets any number of watchers
/// wait for the next one. Publishing swaps the whole snapshot atomically.
/// </summary>
public sealed class SnapshotPublisher
{
    private CatalogSnapshot _current;
    private TaskCompletionSource _changed = NewSignal();

    /// <summary>Creates a publisher whose first snapshot is empty.</summary>
    public SnapshotPublisher(string provider)
    {
        ArgumentNullException.ThrowIfNull(provider);
        _current = CatalogSnapshot.Empty(provider);
    }

    /// <summary>The newest snapshot.</summary>
    public CatalogSnapshot Current => Volatile.Read(ref _current);

    /// <summary>Publishes a new set of services; the version grows by one.</summary>
    public CatalogSnapshot Publish(IReadOnlyDictionary<string, IReadOnlyList<ServiceEndpoint>> services)
    {
        ArgumentNullException.ThrowIfNull(services);
        CatalogSnapshot next;
        lock (this)
        {
            var previous = _current;
            next = new CatalogSnapshot(previous.Provider, previous.Version + 1, services);
            Volatile.Write(ref _current, next);
            var signal = Interlocked.Exchange(ref _changed, NewSignal());
            signal.TrySetResult();
        }

        return next;
    }

    /// <summary>Streams the current snapshot and then each newer one until cancelled.</summary>
    public async IAsyncEnumerable<CatalogSnapshot> WatchAsync([EnumeratorCancellation] CancellationToken cancellationToken)
    {
        long seen = -1;
        while (!cancellationToken.IsCancellationRequested)
        {
            // Take the signal before reading the snapshot so a publish in between is never missed.
            var signal = Volatile.Read(ref _changed).Task;
            var snapshot = Current;
            if (snapshot.Version != seen)
            {
                seen = snapshot.Version;
                yield return snapshot;
                continue;
            }

            try
            {
                await signal.WaitAsync(cancellationToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                yield break;
            }
        }
    }

    private static TaskCompletionSource NewSignal() => new(TaskCreationOptions.RunContinuationsAsynchronously);
}
