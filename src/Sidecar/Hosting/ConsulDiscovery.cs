// Wires the consul block into the Consul provider and the registration: one client per agent settings, swapped on reload.
using Mesh.Discovery.Consul;
using Mesh.Sidecar.Configuration;

namespace Mesh.Sidecar.Hosting;

/// <summary>
/// Turns the config into the Consul provider's inputs: the client for the <c>consul</c> block
/// (made again only when the agent settings change), and which Consul service each
/// <c>"discovery": "consul"</c> service reads. Also hands the registration its options.
/// </summary>
internal sealed class ConsulDiscovery(ConsulServiceCatalog catalog, ConsulRegistration registration, ILogger<ConsulDiscovery> logger) : IDiscoveryConfigurator, IDisposable
{
    private readonly Lock _lock = new();
    private ConsulClient? _client;
    private ConsulClientOptions? _clientOptions;
    private (MeshOptions Options, ConsulClient? Client, ConsulClientOptions? ClientOptions)? _prepared;
    private readonly CancellationTokenSource _disposed = new();

    /// <summary>The client for the applied config; null without a consul block.</summary>
    public ConsulClient? Client
    {
        get
        {
            lock (_lock)
            {
                return _client;
            }
        }
    }

    public IReadOnlyList<ConfigError> Prepare(MeshOptions options)
    {
        lock (_lock)
        {
            var wanted = options.Consul is { } consul ? ClientOptions(consul) : null;
            if (wanted is null || wanted == _clientOptions)
            {
                _prepared = (options, wanted is null ? null : _client, wanted);
                return [];
            }

            try
            {
                _prepared = (options, new ConsulClient(wanted, logger), wanted);
                return [];
            }
            catch (ConsulException ex)
            {
                _prepared = null;
                return [new ConfigError("consul", ex.Message)];
            }
        }
    }

    public void Commit()
    {
        ConsulClient? previous;
        MeshOptions options;
        ConsulClient? client;
        lock (_lock)
        {
            if (_prepared is not { } prepared)
            {
                return;
            }

            _prepared = null;
            (options, client, _clientOptions) = prepared;
            previous = ReferenceEquals(_client, client) ? null : _client;
            _client = client;
        }

        catalog.Configure(client, Queries(options));
        registration.Update(options, client);
        if (previous is not null)
        {
            // The old client may still carry the old registration's removal or a cancelled query.
            _ = RetireAsync(previous);
        }
    }

    public void Abandon()
    {
        lock (_lock)
        {
            if (_prepared is { Client: { } client } && !ReferenceEquals(client, _client))
            {
                client.Dispose();
            }

            _prepared = null;
        }
    }

    /// <summary>Waits (up to <paramref name="timeout"/>) for the first answer of every Consul service read, so a starting sidecar has endpoints.</summary>
    public Task WaitForFirstAnswersAsync(TimeSpan timeout, CancellationToken cancellationToken) =>
        catalog.WaitForFirstAnswersAsync(timeout, cancellationToken);

    public void Dispose()
    {
        lock (_lock)
        {
            _client?.Dispose();
            _client = null;
        }

        _disposed.Cancel();
    }

    private async Task RetireAsync(ConsulClient client)
    {
        try
        {
            await Task.Delay(TimeSpan.FromSeconds(30), _disposed.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
        }

        client.Dispose();
    }

    internal static ConsulClientOptions ClientOptions(ConsulOptions consul) => new()
    {
        Address = new Uri(consul.Address),
        Token = consul.Token,
        TokenFile = consul.TokenFile,
        Datacenter = consul.Datacenter,
        CaFile = consul.CaFile,
        CertificateFile = consul.CertificateFile,
        KeyFile = consul.KeyFile,
    };

    internal static Dictionary<string, ConsulServiceQuery> Queries(MeshOptions options)
    {
        var queries = new Dictionary<string, ConsulServiceQuery>(StringComparer.Ordinal);
        foreach (var (name, service) in options.Services)
        {
            if (service.Discovery == ConsulServiceCatalog.ProviderName)
            {
                var consul = service.Consul ?? new ConsulServiceOptions();
                queries[name] = new ConsulServiceQuery(consul.Service.Length > 0 ? consul.Service : name, consul.Tag, consul.PassingOnly);
            }
        }

        return queries;
    }
}
