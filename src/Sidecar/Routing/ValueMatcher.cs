// Matchers for one route condition: host, path, and named header/query/cookie values.
using System.Text.RegularExpressions;
using Mesh.Sidecar.Configuration;
using Microsoft.Extensions.Primitives;

namespace Mesh.Sidecar.Routing;

/// <summary>Matches a named value (header, query parameter or cookie) by exact, prefix, regex or presence.</summary>
internal sealed class ValueMatcher
{
    private enum Kind { Exact, Prefix, Regex, Present, Absent }

    private readonly Kind _kind;
    private readonly string _text;
    private readonly Regex? _regex;

    public ValueMatcher(ValueMatchOptions options)
    {
        Name = options.Name;
        _text = options.Exact ?? options.Prefix ?? "";
        if (options.Exact is not null)
        {
            _kind = Kind.Exact;
        }
        else if (options.Prefix is not null)
        {
            _kind = Kind.Prefix;
        }
        else if (options.Regex is not null)
        {
            _kind = Kind.Regex;
            _regex = new Regex(options.Regex, RegexOptions.CultureInvariant | RegexOptions.Compiled, TimeSpan.FromMilliseconds(100));
        }
        else
        {
            _kind = options.Present == false ? Kind.Absent : Kind.Present;
        }
    }

    public string Name { get; }

    /// <summary>True when any of <paramref name="values"/> satisfies the condition (for absent: when there is none).</summary>
    public bool Matches(StringValues values)
    {
        if (_kind == Kind.Absent)
        {
            return values.Count == 0;
        }

        if (_kind == Kind.Present)
        {
            return values.Count > 0;
        }

        for (var i = 0; i < values.Count; i++)
        {
            if (Matches(values[i]))
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>Checks one value; null means the name is absent.</summary>
    public bool Matches(string? value) => _kind switch
    {
        Kind.Absent => value is null,
        Kind.Present => value is not null,
        _ when value is null => false,
        Kind.Exact => string.Equals(value, _text, StringComparison.Ordinal),
        Kind.Prefix => value.StartsWith(_text, StringComparison.Ordinal),
        _ => _regex!.IsMatch(value),
    };
}

/// <summary>Matches the Host (without port): exact, <c>*.suffix</c> (any subdomain) or <c>*</c>, case-insensitive.</summary>
internal sealed class HostMatcher
{
    private readonly string _exactOrSuffix;
    private readonly bool _wildcard;
    private readonly bool _any;

    public HostMatcher(string pattern)
    {
        _any = pattern == "*";
        _wildcard = pattern.StartsWith("*.", StringComparison.Ordinal);
        _exactOrSuffix = _wildcard ? pattern[1..] : pattern;
    }

    public bool Matches(ReadOnlySpan<char> host)
    {
        if (_any)
        {
            return true;
        }

        return _wildcard
            ? host.Length > _exactOrSuffix.Length && host.EndsWith(_exactOrSuffix, StringComparison.OrdinalIgnoreCase)
            : host.Equals(_exactOrSuffix, StringComparison.OrdinalIgnoreCase);
    }
}
