// Path conditions: prefix, exact, or a segment pattern with {name} and {**rest}.
using Mesh.Sidecar.Configuration;

namespace Mesh.Sidecar.Routing;

/// <summary>Matches a request path. Prefix and exact compare case-sensitively, as Envoy does.</summary>
internal abstract class PathMatcher
{
    public abstract bool Matches(string path);

    public static PathMatcher Create(PathMatchOptions options)
    {
        if (options.Exact is not null)
        {
            return new Exact(options.Exact);
        }

        if (options.Pattern is not null)
        {
            return new Pattern(options.Pattern);
        }

        return new Prefix(options.Prefix ?? "/");
    }

    /// <summary>Checks a pattern's syntax; returns the problem or null.</summary>
    public static string? Validate(string pattern)
    {
        if (!pattern.StartsWith('/'))
        {
            return "must start with '/'";
        }

        var segments = pattern.Split('/');
        for (var i = 1; i < segments.Length; i++)
        {
            var segment = segments[i];
            var open = segment.IndexOf('{', StringComparison.Ordinal);
            var close = segment.IndexOf('}', StringComparison.Ordinal);
            if (open < 0 && close < 0)
            {
                continue;
            }

            if (open != 0 || close != segment.Length - 1 || segment.Length < 3)
            {
                return $"segment '{segment}' must be a literal, '{{name}}' or '{{**name}}'";
            }

            if (segment.StartsWith("{**", StringComparison.Ordinal) && i != segments.Length - 1)
            {
                return $"catch-all '{segment}' must be the last segment";
            }
        }

        return null;
    }

    private sealed class Prefix(string prefix) : PathMatcher
    {
        public override bool Matches(string path) => path.StartsWith(prefix, StringComparison.Ordinal);
    }

    private sealed class Exact(string exact) : PathMatcher
    {
        public override bool Matches(string path) => string.Equals(path, exact, StringComparison.Ordinal);
    }

    private sealed class Pattern : PathMatcher
    {
        // A null entry is a {name} parameter; a trailing catch-all is recorded separately.
        private readonly string?[] _segments;
        private readonly bool _catchAll;

        public Pattern(string pattern)
        {
            var parts = pattern.Split('/')[1..];
            _catchAll = parts.Length > 0 && parts[^1].StartsWith("{**", StringComparison.Ordinal);
            if (_catchAll)
            {
                parts = parts[..^1];
            }

            _segments = new string?[parts.Length];
            for (var i = 0; i < parts.Length; i++)
            {
                _segments[i] = parts[i].StartsWith('{') ? null : parts[i];
            }
        }

        public override bool Matches(string path)
        {
            var rest = path.AsSpan();
            foreach (var literal in _segments)
            {
                if (rest.Length == 0 || rest[0] != '/')
                {
                    return false;
                }

                rest = rest[1..];
                var end = rest.IndexOf('/');
                var segment = end < 0 ? rest : rest[..end];
                rest = end < 0 ? [] : rest[end..];
                if (literal is null ? segment.Length == 0 : !segment.SequenceEqual(literal))
                {
                    return false;
                }
            }

            // A catch-all takes whatever is left (possibly nothing); otherwise nothing may be left but one trailing slash.
            return _catchAll || rest.Length == 0 || (rest.Length == 1 && rest[0] == '/');
        }
    }
}
