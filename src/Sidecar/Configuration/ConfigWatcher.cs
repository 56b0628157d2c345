// Watches the config file by polling its content, which also catches editors that replace the file by rename.
namespace Mesh.Sidecar.Configuration;

/// <summary>
/// Calls back when the config file's content changes. Polling (every 250 ms by default) is used
/// instead of FileSystemWatcher because it sees atomic renames, network mounts and Kubernetes
/// ConfigMap symlink swaps alike; reading a few kilobytes four times a second costs nothing.
/// Nothing a change handler throws stops the watching: <paramref name="onError"/> hears of it and the
/// next change is handled as usual (one bad edit must never end hot reload until a restart).
/// </summary>
internal sealed class ConfigWatcher(string path, TimeSpan interval, Func<CancellationToken, Task> onChanged, Action<Exception>? onError = null)
{
    private byte[]? _lastContent;

    /// <summary>Records the content that is currently applied, so it is not reloaded.</summary>
    public void Seen(byte[] content) => _lastContent = content;

    public async Task RunAsync(CancellationToken cancellationToken)
    {
        using var timer = new PeriodicTimer(interval);
        try
        {
            while (await timer.WaitForNextTickAsync(cancellationToken).ConfigureAwait(false))
            {
                byte[] content;
                try
                {
                    content = await File.ReadAllBytesAsync(path, cancellationToken).ConfigureAwait(false);
                }
                catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
                {
                    // Missing or mid-replace: keep serving; the next tick looks again.
                    continue;
                }

                if (_lastContent is not null && content.AsSpan().SequenceEqual(_lastContent))
                {
                    continue;
                }

                _lastContent = content;
                try
                {
                    await onChanged(cancellationToken).ConfigureAwait(false);
                }
                catch (Exception ex) when (ex is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
                {
                    onError?.Invoke(ex);
                }
            }
        }
        catch (OperationCanceledException)
        {
        }
    }
}
