// Semantic checks of the mTLS keys: identity, listener mtls and edge certificates, service tls, authorization rules.
using System.Security.Cryptography.X509Certificates;
using Mesh.Sidecar.Security;
using Mesh.Sidecar.Security.Certificates;

namespace Mesh.Sidecar.Configuration;

internal static partial class ConfigValidator
{
    /// <summary>Values of <c>identity.source</c>; <c>consul</c> works once the Consul source is registered.</summary>
    private static readonly string[] KnownCertificateSources = ["ca", "files", "consul"];

    private static void ValidateSecurity(MeshOptions options, List<ConfigError> errors)
    {
        var hasIdentity = ValidateIdentity(options, errors);
        for (var i = 0; i < options.Listeners.Count; i++)
        {
            ValidateListenerTls(options, options.Listeners[i], $"listeners[{i}]", hasIdentity, errors);
        }

        foreach (var (name, service) in options.Services)
        {
            ValidateServiceTls(options, name, service, $"services.{name}.tls", hasIdentity, errors);
        }

        // The local app: plaintext on the host, or TLS when it only speaks TLS; never a peer sidecar's mTLS.
        if (options.Service.Tls.Mode == UpstreamTlsModes.Mesh)
        {
            errors.Add(new ConfigError("service.tls.mode", "mesh is for peer sidecars; the local app takes off or tls"));
        }
        else
        {
            ValidateServiceTls(options, options.Service.Name, new ServiceOptions { Tls = options.Service.Tls }, "service.tls", hasIdentity, errors);
        }

        ValidateAuthorization(options, errors);
    }

    private static bool ValidateIdentity(MeshOptions options, List<ConfigError> errors)
    {
        var identity = options.Identity;
        if (!SpiffeId.TryParse(SpiffeId.Prefix + identity.TrustDomain, out _, out var problem) || identity.TrustDomain.Contains('/', StringComparison.Ordinal))
        {
            errors.Add(new ConfigError("identity.trustDomain", $"'{identity.TrustDomain}' is not a trust domain name: {problem ?? "it must not contain '/'"}"));
        }

        CheckName(identity.Namespace, "identity.namespace", errors);
        if (identity.LeafTtlHours is < 1 or > 8760)
        {
            errors.Add(new ConfigError("identity.leafTtlHours", $"{identity.LeafTtlHours} is out of range; use 1 to 8760 hours"));
        }

        var source = identity.Source;
        OnlyFor(identity.CaDir, "identity.caDir", source, "ca", errors);
        OnlyFor(identity.CertificateFile, "identity.certificateFile", source, "files", errors);
        OnlyFor(identity.KeyFile, "identity.keyFile", source, "files", errors);
        OnlyFor(identity.TrustBundleFile, "identity.trustBundleFile", source, "files", errors);
        if (source is null)
        {
            return false;
        }

        if (!CheckOneOf(source, "identity.source", KnownCertificateSources, errors))
        {
            return false;
        }

        if (source == "ca")
        {
            if (Required(identity.CaDir, "identity.caDir", errors))
            {
                CheckCaDir(identity, errors);
            }
        }
        else if (source == "files")
        {
            var certificate = Required(identity.CertificateFile, "identity.certificateFile", errors);
            var key = Required(identity.KeyFile, "identity.keyFile", errors);
            if (Required(identity.TrustBundleFile, "identity.trustBundleFile", errors))
            {
                TryFiles("identity.trustBundleFile", errors, () => PemFiles.ReadCertificates(identity.TrustBundleFile!));
            }

            if (certificate && key)
            {
                CheckLeafFiles(identity.CertificateFile!, identity.KeyFile!, "identity.certificateFile", "identity.keyFile", errors, leaf =>
                {
                    var id = PemFiles.SpiffeIdOf(leaf, out var why);
                    return id is null ? why
                        : !string.Equals(id.TrustDomain, identity.TrustDomain, StringComparison.OrdinalIgnoreCase) ? $"the certificate's SPIFFE ID {id} is not in trust domain '{identity.TrustDomain}'"
                        : null;
                });
            }
        }

        return true;
    }

    private static void CheckCaDir(IdentityOptions identity, List<ConfigError> errors)
    {
        try
        {
            using var ca = BuiltInCa.Load(identity.CaDir!);
            if (ca.NotAfter.ToUniversalTime() <= DateTime.UtcNow)
            {
                errors.Add(new ConfigError("identity.caDir", $"the CA certificate in '{identity.CaDir}' expired on {ca.NotAfter.ToUniversalTime():u}"));
            }

            if (PemFiles.SpiffeIdOf(ca, out _) is { } domain && !string.Equals(domain.TrustDomain, identity.TrustDomain, StringComparison.OrdinalIgnoreCase))
            {
                errors.Add(new ConfigError("identity.trustDomain", $"'{identity.TrustDomain}' differs from the trust domain '{domain.TrustDomain}' of the CA in '{identity.CaDir}'"));
            }
        }
        catch (CertificateFileException ex)
        {
            errors.Add(new ConfigError("identity.caDir", ex.Message));
        }
    }

    private static void ValidateListenerTls(MeshOptions options, ListenerOptions listener, string path, bool hasIdentity, List<ConfigError> errors)
    {
        if (CheckOneOf(listener.Mtls, path + ".mtls", MtlsModes.All, errors) && listener.Mtls != MtlsModes.Off)
        {
            if (listener.Direction != Directions.Inbound)
            {
                errors.Add(new ConfigError(path + ".mtls", $"mtls applies to inbound listeners (peers calling the local app); '{listener.Name}' is {listener.Direction}"));
            }

            if (listener.Protocol is not (ListenerProtocols.Http or ListenerProtocols.Tcp))
            {
                errors.Add(new ConfigError(path + ".mtls", $"mtls applies to http and tcp listeners, not {listener.Protocol}"));
            }

            if (!hasIdentity)
            {
                errors.Add(new ConfigError(path + ".mtls", "mtls needs this sidecar's identity; set identity.source"));
            }

            if (listener.Tls.Certificates.Count > 0)
            {
                errors.Add(new ConfigError(path + ".tls.certificates", "a listener takes either mtls from peers or edge certificates for ordinary clients, not both"));
            }
        }

        var certificates = listener.Tls.Certificates;
        if (certificates.Count > 0 && listener.Protocol != ListenerProtocols.Http)
        {
            errors.Add(new ConfigError(path + ".tls.certificates", $"edge certificates apply to http listeners, not {listener.Protocol}"));
        }

        for (var i = 0; i < certificates.Count; i++)
        {
            var certificate = certificates[i];
            var at = $"{path}.tls.certificates[{i}]";
            if (certificate.ServerNames.Count == 0)
            {
                errors.Add(new ConfigError(at + ".serverNames", "give at least one server name (exact or *.suffix)"));
            }

            for (var j = 0; j < certificate.ServerNames.Count; j++)
            {
                CheckHostPattern(certificate.ServerNames[j], $"{at}.serverNames[{j}]", errors);
            }

            var hasCertificate = Required(certificate.CertificateFile, at + ".certificateFile", errors);
            if (Required(certificate.KeyFile, at + ".keyFile", errors) && hasCertificate)
            {
                CheckLeafFiles(certificate.CertificateFile, certificate.KeyFile, at + ".certificateFile", at + ".keyFile", errors, null);
            }
        }

        // TLS origination on L4 is for tcp listeners; auto and tls-passthrough forward bytes as they are.
        if (listener.Protocol is ListenerProtocols.Auto or ListenerProtocols.TlsPassthrough or ListenerProtocols.Udp)
        {
            CheckNoTlsTarget(options, listener.Service, path + ".service", listener.Protocol, errors);
            for (var i = 0; i < listener.Tls.Routes.Count; i++)
            {
                CheckNoTlsTarget(options, listener.Tls.Routes[i].Service, $"{path}.tls.routes[{i}].service", listener.Protocol, errors);
            }
        }
    }

    private static void CheckNoTlsTarget(MeshOptions options, string? service, string path, string protocol, List<ConfigError> errors)
    {
        if (service is not null && options.Services.TryGetValue(service, out var target) && target.Tls.Mode != UpstreamTlsModes.Off)
        {
            errors.Add(new ConfigError(path, $"service '{service}' uses tls.mode {target.Tls.Mode}, which {protocol} listeners cannot originate (use a tcp or http listener)"));
        }
    }

    private static void ValidateServiceTls(MeshOptions options, string name, ServiceOptions service, string path, bool hasIdentity, List<ConfigError> errors)
    {
        var tls = service.Tls;
        if (!CheckOneOf(tls.Mode, path + ".mode", UpstreamTlsModes.All, errors))
        {
            return;
        }

        OnlyFor(tls.ServerIdentity, path + ".serverIdentity", tls.Mode, UpstreamTlsModes.Mesh, errors);
        foreach (var (value, key) in new[] { (tls.CaFile, "caFile"), (tls.ServerName, "serverName"), (tls.CertificateFile, "certificateFile"), (tls.KeyFile, "keyFile") })
        {
            OnlyFor(value, $"{path}.{key}", tls.Mode, UpstreamTlsModes.Tls, errors);
        }

        if (tls.Mode == UpstreamTlsModes.Mesh)
        {
            if (!hasIdentity)
            {
                errors.Add(new ConfigError(path + ".mode", "mesh mode needs this sidecar's identity; set identity.source"));
            }

            var expected = tls.ServerIdentity ?? SpiffeId.ForService(options.Identity.TrustDomain, options.Identity.Namespace, name);
            if (!SpiffeId.TryParse(expected, out _, out var problem))
            {
                errors.Add(new ConfigError(path + ".serverIdentity", $"'{expected}' is not a SPIFFE ID: {problem}"));
            }
        }
        else if (tls.Mode == UpstreamTlsModes.Tls)
        {
            if (tls.CaFile is { Length: > 0 } caFile)
            {
                TryFiles(path + ".caFile", errors, () => PemFiles.ReadCertificates(caFile));
            }

            if (tls.ServerName is { } serverName && Uri.CheckHostName(serverName) == UriHostNameType.Unknown)
            {
                errors.Add(new ConfigError(path + ".serverName", $"'{serverName}' is not a host name"));
            }

            var hasCertificate = !string.IsNullOrEmpty(tls.CertificateFile);
            var hasKey = !string.IsNullOrEmpty(tls.KeyFile);
            if (hasCertificate != hasKey)
            {
                errors.Add(new ConfigError(path + (hasCertificate ? ".keyFile" : ".certificateFile"), "a client certificate needs both certificateFile and keyFile"));
            }
            else if (hasCertificate)
            {
                CheckLeafFiles(tls.CertificateFile!, tls.KeyFile!, path + ".certificateFile", path + ".keyFile", errors, null);
            }
        }
    }

    private static void ValidateAuthorization(MeshOptions options, List<ConfigError> errors)
    {
        var authorization = options.Authorization;
        CheckOneOf(authorization.DefaultAction, "authorization.defaultAction", [AuthorizationActions.Allow, AuthorizationActions.Deny], errors);
        var names = new HashSet<string>(StringComparer.Ordinal);
        for (var i = 0; i < authorization.Rules.Count; i++)
        {
            var rule = authorization.Rules[i];
            var path = $"authorization.rules[{i}]";
            if (CheckName(rule.Name, path + ".name", errors) && !names.Add(rule.Name))
            {
                errors.Add(new ConfigError(path + ".name", $"'{rule.Name}' is already the name of another rule"));
            }

            CheckOneOf(rule.Action, path + ".action", [AuthorizationActions.Allow, AuthorizationActions.Deny], errors);
            var onlyTcp = rule.Listeners.Count > 0;
            for (var j = 0; j < rule.Listeners.Count; j++)
            {
                var listener = options.Listeners.FirstOrDefault(l => l.Name == rule.Listeners[j]);
                if (listener is null)
                {
                    errors.Add(new ConfigError($"{path}.listeners[{j}]", $"no listener named '{rule.Listeners[j]}'"));
                    onlyTcp = false;
                }
                else if (listener.Direction != Directions.Inbound)
                {
                    errors.Add(new ConfigError($"{path}.listeners[{j}]", $"authorization governs inbound listeners; '{listener.Name}' is {listener.Direction}"));
                }
                else if (listener.Protocol != ListenerProtocols.Tcp)
                {
                    onlyTcp = false;
                }
            }

            for (var j = 0; j < rule.From.Count; j++)
            {
                var from = rule.From[j];
                if (from is not ("*" or "unauthenticated") && !SpiffeId.TryParse(from, out _, out var problem))
                {
                    errors.Add(new ConfigError($"{path}.from[{j}]", $"'{from}' is not a SPIFFE ID (spiffe://trust-domain/ns/NAMESPACE/svc/NAME), '*' or 'unauthenticated': {problem}"));
                }
            }

            if (rule.Match is { } match)
            {
                ValidateMatch(new RouteMatchOptions { Path = match.Path, Methods = match.Methods, Headers = match.Headers }, path + ".match", errors);
                if (onlyTcp)
                {
                    errors.Add(new ConfigError(path + ".match", "match applies to HTTP requests, and every listener of this rule is tcp (only from applies there)"));
                }
            }
        }
    }

    private static void CheckLeafFiles(string certificateFile, string keyFile, string certificatePath, string keyPath, List<ConfigError> errors, Func<X509Certificate2, string?>? extra)
    {
        try
        {
            var (leaf, _) = PemFiles.ReadLeaf(certificateFile, keyFile);
            using (leaf)
            {
                if (leaf.NotAfter.ToUniversalTime() <= DateTime.UtcNow)
                {
                    errors.Add(new ConfigError(certificatePath, $"the certificate in '{certificateFile}' expired on {leaf.NotAfter.ToUniversalTime():u}"));
                }
                else if (extra?.Invoke(leaf) is { } problem)
                {
                    errors.Add(new ConfigError(certificatePath, problem));
                }
            }
        }
        catch (CertificateFileException ex)
        {
            errors.Add(new ConfigError(ex.File == keyFile ? keyPath : certificatePath, ex.Message));
        }
    }

    private static void TryFiles(string path, List<ConfigError> errors, Action read)
    {
        try
        {
            read();
        }
        catch (CertificateFileException ex)
        {
            errors.Add(new ConfigError(path, ex.Message));
        }
    }

    private static bool Required(string? value, string path, List<ConfigError> errors)
    {
        if (string.IsNullOrEmpty(value))
        {
            errors.Add(new ConfigError(path, "is required"));
            return false;
        }

        return true;
    }

    private static void OnlyFor(string? value, string path, string? mode, string wanted, List<ConfigError> errors)
    {
        if (!string.IsNullOrEmpty(value) && mode != wanted)
        {
            errors.Add(new ConfigError(path, $"is only used when the mode or source is '{wanted}' (it is '{mode ?? "unset"}')"));
        }
    }
}
