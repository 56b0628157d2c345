// Semantic checks of the consul block and of services that read Consul.
using System.Text.RegularExpressions;

namespace Mesh.Sidecar.Configuration;

internal static partial class ConfigValidator
{
    /// <summary>Metadata keys Mesh sets on its registration.</summary>
    public static readonly string[] MeshMetaKeys = ["mesh-protocol", "mesh-version"];

    private static void ValidateConsulService(MeshOptions options, ServiceOptions service, string path, List<ConfigError> errors)
    {
        if (service.Discovery != "consul")
        {
            if (service.Consul is not null)
            {
                errors.Add(new ConfigError(path + ".consul", $"applies only with \"discovery\": \"consul\" (this service uses {service.Discovery})"));
            }

            return;
        }

        if (options.Consul is null)
        {
            errors.Add(new ConfigError(path + ".discovery", "consul discovery needs a top-level \"consul\" block (the agent's address)"));
        }

        if (service.Endpoints.Count > 0)
        {
            errors.Add(new ConfigError(path + ".endpoints", "endpoints are for static discovery; with consul they come from Consul"));
        }

        if (service.Consul is { Service.Length: > 0 } consul && !ConsulNamePattern().IsMatch(consul.Service))
        {
            errors.Add(new ConfigError(path + ".consul.service", $"'{consul.Service}' is not a Consul service name (letters, digits, '.', '_' and '-')"));
        }

        if (service.Consul is { Tag.Length: > 0 } tagged && tagged.Tag.Any(char.IsWhiteSpace))
        {
            errors.Add(new ConfigError(path + ".consul.tag", $"'{tagged.Tag}' contains white space"));
        }
    }

    private static void ValidateConsul(MeshOptions options, List<ConfigError> errors)
    {
        if (options.Consul is not { } consul)
        {
            if (options.Identity.Source == "consul")
            {
                errors.Add(new ConfigError("identity.source", "the consul source needs the top-level \"consul\" block (the agent's address)"));
            }

            if (options.Authorization.ConsulIntentions)
            {
                errors.Add(new ConfigError("authorization.consulIntentions", "needs the top-level \"consul\" block (the agent that answers)"));
            }

            return;
        }

        if (options.Authorization.ConsulIntentions && options.Identity.Source is null)
        {
            errors.Add(new ConfigError("authorization.consulIntentions", "intentions decide on verified callers; set identity.source and mtls on inbound listeners"));
        }

        var https = false;
        if (!Uri.TryCreate(consul.Address, UriKind.Absolute, out var address) || address.Scheme is not ("http" or "https") || address.Host.Length == 0)
        {
            errors.Add(new ConfigError("consul.address", $"'{consul.Address}' is not an http:// or https:// URL"));
        }
        else
        {
            https = address.Scheme == "https";
        }

        if (consul.Token.Length > 0 && consul.TokenFile.Length > 0)
        {
            errors.Add(new ConfigError("consul.tokenFile", "give token or tokenFile, not both"));
        }

        CheckFile(consul.TokenFile, "consul.tokenFile", errors);
        CheckFile(consul.CaFile, "consul.caFile", errors);
        CheckFile(consul.CertificateFile, "consul.certificateFile", errors);
        CheckFile(consul.KeyFile, "consul.keyFile", errors);
        if (consul.CertificateFile.Length > 0 && consul.KeyFile.Length == 0)
        {
            errors.Add(new ConfigError("consul.keyFile", "is required with certificateFile"));
        }
        else if (consul.KeyFile.Length > 0 && consul.CertificateFile.Length == 0)
        {
            errors.Add(new ConfigError("consul.certificateFile", "is required with keyFile"));
        }

        if (!https && address is not null && (consul.CaFile.Length > 0 || consul.CertificateFile.Length > 0))
        {
            errors.Add(new ConfigError("consul.address", $"'{consul.Address}' is plain HTTP; caFile and certificateFile need an https:// address"));
        }

        if (consul.Datacenter.Length > 0 && !ConsulNamePattern().IsMatch(consul.Datacenter))
        {
            errors.Add(new ConfigError("consul.datacenter", $"'{consul.Datacenter}' is not a datacenter name (letters, digits, '.', '_' and '-')"));
        }

        if (consul.ServiceId.Length > 0 && (consul.ServiceId.Contains('/', StringComparison.Ordinal) || consul.ServiceId.Any(char.IsWhiteSpace)))
        {
            errors.Add(new ConfigError("consul.serviceId", $"'{consul.ServiceId}' must not contain '/' or white space"));
        }

        if (consul.AdvertiseAddress.Length > 0)
        {
            CheckHost(consul.AdvertiseAddress, "consul.advertiseAddress", errors);
        }

        for (var i = 0; i < consul.Tags.Count; i++)
        {
            if (string.IsNullOrWhiteSpace(consul.Tags[i]))
            {
                errors.Add(new ConfigError($"consul.tags[{i}]", "is empty"));
            }
        }

        foreach (var (key, value) in consul.Meta)
        {
            // Consul's limits: keys of at most 128 letters, digits, '_' and '-', not starting with consul-; values of at most 512 characters.
            if (!MetaKeyPattern().IsMatch(key) || key.StartsWith("consul-", StringComparison.OrdinalIgnoreCase))
            {
                errors.Add(new ConfigError($"consul.meta.{key}", "is not a Consul metadata key (up to 128 letters, digits, '_' and '-', not starting with consul-)"));
            }
            else if (MeshMetaKeys.Contains(key, StringComparer.OrdinalIgnoreCase))
            {
                errors.Add(new ConfigError($"consul.meta.{key}", "is set by Mesh"));
            }

            if (value.Length > 512)
            {
                errors.Add(new ConfigError($"consul.meta.{key}", "is longer than 512 characters"));
            }
        }

        var check = consul.Check;
        CheckOneOf(check.Type, "consul.check.type", [ConsulCheckTypes.Http, ConsulCheckTypes.Ttl], errors);
        CheckPositive(check.IntervalMs, "consul.check.intervalMs", errors);
        CheckPositive(check.TimeoutMs, "consul.check.timeoutMs", errors);
        CheckPositive(check.TtlMs, "consul.check.ttlMs", errors);
        CheckNotNegative(check.DeregisterCriticalAfterMs, "consul.check.deregisterCriticalAfterMs", errors);
        CheckNotNegative(consul.DeregisterGraceMs, "consul.deregisterGraceMs", errors);

        if (consul.Register && !options.Listeners.Any(l => l.Direction == Directions.Inbound))
        {
            errors.Add(new ConfigError("consul.register", "registration advertises the first inbound listener, and there is none; add one or set register to false"));
        }
    }

    private static void CheckFile(string file, string path, List<ConfigError> errors)
    {
        if (file.Length > 0 && !File.Exists(file))
        {
            errors.Add(new ConfigError(path, $"file '{file}' does not exist"));
        }
    }

    [GeneratedRegex("^[A-Za-z0-9][A-Za-z0-9._-]*$")]
    private static partial Regex ConsulNamePattern();

    [GeneratedRegex("^[A-Za-z0-9_-]{1,128}$")]
    private static partial Regex MetaKeyPattern();
}
