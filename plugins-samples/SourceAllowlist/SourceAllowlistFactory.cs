// Mesh plugin "source-allowlist": closes connections from client addresses outside the configured ranges.
using System.Net;
using Mesh.Plugins;

namespace Mesh.Samples.SourceAllowlist;

/// <summary>Builds the <c>source-allowlist</c> connection filter. Config: <c>allow</c>, a list of CIDR ranges (<c>10.0.0.0/8</c>, <c>::1/128</c>).</summary>
public sealed class SourceAllowlistFactory : IConnectionFilterFactory
{
    /// <inheritdoc />
    public string Name => "source-allowlist";

    /// <inheritdoc />
    public IConnectionFilter Create(FilterSettings settings)
    {
        ArgumentNullException.ThrowIfNull(settings);
        var ranges = settings.GetStrings("allow");
        if (ranges.Count == 0)
        {
            throw new FilterConfigException("allow", "give at least one address range, such as 10.0.0.0/8");
        }

        var networks = new IPNetwork[ranges.Count];
        for (var i = 0; i < ranges.Count; i++)
        {
            if (!IPNetwork.TryParse(ranges[i], out networks[i]))
            {
                throw new FilterConfigException($"allow[{i}]", $"'{ranges[i]}' is not an address range (CIDR, such as 10.0.0.0/8)");
            }
        }

        return new SourceAllowlistFilter(networks);
    }
}

/// <summary>Allows a connection when its client address is in one of the ranges.</summary>
internal sealed class SourceAllowlistFilter(IPNetwork[] networks) : IConnectionFilter
{
    public ValueTask<bool> AllowAsync(AcceptedConnection connection, CancellationToken cancellationToken)
    {
        if (!IPAddress.TryParse(connection.RemoteAddress, out var address))
        {
            return ValueTask.FromResult(false);
        }

        if (address.IsIPv4MappedToIPv6)
        {
            address = address.MapToIPv4();
        }

        foreach (var network in networks)
        {
            if (network.Contains(address))
            {
                return ValueTask.FromResult(true);
            }
        }

        return ValueTask.FromResult(false);
    }
}
