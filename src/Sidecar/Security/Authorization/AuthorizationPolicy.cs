// Authorization rules compiled once per config: first matching rule wins, else the default action.
using Mesh.Sidecar.Configuration;
using Mesh.Sidecar.Routing;

namespace Mesh.Sidecar.Security.Authorization;

/// <summary>An allow or deny, and the rule that decided (<c>default</c> when none matched).</summary>
internal readonly record struct AuthorizationDecision(bool Allowed, string Rule)
{
    public const string DefaultRule = "default";
}

/// <summary>
/// The compiled <c>authorization</c> section. It governs inbound listeners. HTTP requests are checked
/// against every rule; TCP connections only against rules without an HTTP <c>match</c> (a match on a
/// path cannot hold for bytes nobody decodes). Matching allocates nothing.
/// </summary>
internal sealed class AuthorizationPolicy
{
    private readonly AuthorizationRule[] _rules;
    private readonly bool _defaultAllows;

    private AuthorizationPolicy(AuthorizationRule[] rules, bool defaultAllows)
    {
        _rules = rules;
        _defaultAllows = defaultAllows;
    }

    /// <summary>Null when there is nothing to decide (no rules, default allow): the data path skips the stage.</summary>
    public static AuthorizationPolicy? Compile(AuthorizationOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var defaultAllows = options.DefaultAction != AuthorizationActions.Deny;
        if (options.Rules.Count == 0 && defaultAllows)
        {
            return null;
        }

        var rules = new AuthorizationRule[options.Rules.Count];
        for (var i = 0; i < rules.Length; i++)
        {
            rules[i] = new AuthorizationRule(options.Rules[i]);
        }

        return new AuthorizationPolicy(rules, defaultAllows);
    }

    /// <summary>Decides an HTTP request on an inbound listener; <paramref name="peer"/> is null for plaintext clients.</summary>
    public AuthorizationDecision Decide(string listener, SpiffeId? peer, HttpRequest request)
    {
        foreach (var rule in _rules)
        {
            if (rule.AppliesTo(listener, peer) && rule.MatchesRequest(request))
            {
                return new AuthorizationDecision(rule.Allows, rule.Name);
            }
        }

        return new AuthorizationDecision(_defaultAllows, AuthorizationDecision.DefaultRule);
    }

    /// <summary>Decides a TCP connection once its handshake is done.</summary>
    public AuthorizationDecision Decide(string listener, SpiffeId? peer)
    {
        foreach (var rule in _rules)
        {
            if (!rule.HasHttpMatch && rule.AppliesTo(listener, peer))
            {
                return new AuthorizationDecision(rule.Allows, rule.Name);
            }
        }

        return new AuthorizationDecision(_defaultAllows, AuthorizationDecision.DefaultRule);
    }
}

/// <summary>One compiled rule.</summary>
internal sealed class AuthorizationRule
{
    /// <summary>The <c>from</c> entry for any authenticated peer.</summary>
    public const string AnyPeer = "*";

    /// <summary>The <c>from</c> entry for a plaintext client on a permissive listener.</summary>
    public const string Unauthenticated = "unauthenticated";

    private readonly string[] _listeners;
    private readonly SpiffeId[] _from;
    private readonly bool _fromAnyPeer;
    private readonly bool _fromUnauthenticated;
    private readonly bool _fromAnyone;
    private readonly PathMatcher? _path;
    private readonly string[] _methods;
    private readonly ValueMatcher[] _headers;

    public AuthorizationRule(AuthorizationRuleOptions options)
    {
        Name = options.Name;
        Allows = options.Action != AuthorizationActions.Deny;
        _listeners = [.. options.Listeners];
        var from = new List<SpiffeId>();
        foreach (var entry in options.From)
        {
            if (entry == AnyPeer)
            {
                _fromAnyPeer = true;
            }
            else if (entry == Unauthenticated)
            {
                _fromUnauthenticated = true;
            }
            else if (SpiffeId.TryParse(entry, out var id, out _))
            {
                from.Add(id);
            }
        }

        _from = [.. from];
        _fromAnyone = options.From.Count == 0;
        var match = options.Match;
        _path = match?.Path is { } path ? PathMatcher.Create(path) : null;
        _methods = match is null ? [] : [.. match.Methods];
        _headers = match is null ? [] : [.. match.Headers.Select(h => new ValueMatcher(h))];
        HasHttpMatch = _path is not null || _methods.Length > 0 || _headers.Length > 0;
    }

    public string Name { get; }

    public bool Allows { get; }

    public bool HasHttpMatch { get; }

    public bool AppliesTo(string listener, SpiffeId? peer)
    {
        if (_listeners.Length > 0 && Array.IndexOf(_listeners, listener) < 0)
        {
            return false;
        }

        if (_fromAnyone)
        {
            return true;
        }

        if (peer is null)
        {
            return _fromUnauthenticated;
        }

        if (_fromAnyPeer)
        {
            return true;
        }

        foreach (var id in _from)
        {
            if (peer.Matches(id))
            {
                return true;
            }
        }

        return false;
    }

    public bool MatchesRequest(HttpRequest request)
    {
        if (_path is not null && !_path.Matches(request.Path.Value ?? "/"))
        {
            return false;
        }

        if (_methods.Length > 0)
        {
            var any = false;
            foreach (var method in _methods)
            {
                if (string.Equals(method, request.Method, StringComparison.OrdinalIgnoreCase))
                {
                    any = true;
                    break;
                }
            }

            if (!any)
            {
                return false;
            }
        }

        foreach (var header in _headers)
        {
            if (!header.Matches(request.Headers[header.Name]))
            {
                return false;
            }
        }

        return true;
    }
}
