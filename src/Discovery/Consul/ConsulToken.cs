// The ACL token for each call: from the config, or from a file that is read again when it changes.
namespace Mesh.Discovery.Consul;

/// <summary>
/// Yields the token to send. A token file is re-read when its write time changes, so a token
/// rotated on disk (by Vault agent, a Kubernetes secret) is picked up without a restart.
/// </summary>
internal sealed class ConsulToken(string token, string tokenFile)
{
    private readonly Lock _lock = new();
    private DateTime _fileTime;
    private string _fileToken = "";

    /// <summary>The token, or empty for none.</summary>
    public string Current()
    {
        if (tokenFile.Length == 0)
        {
            return token;
        }

        lock (_lock)
        {
            try
            {
                var time = File.GetLastWriteTimeUtc(tokenFile);
                if (time != _fileTime || _fileToken.Length == 0)
                {
                    _fileToken = File.ReadAllText(tokenFile).Trim();
                    _fileTime = time;
                }

                return _fileToken;
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                throw new ConsulException($"cannot read the Consul token file {tokenFile}: {ex.Message}", null, isTransient: true, ex);
            }
        }
    }
}
