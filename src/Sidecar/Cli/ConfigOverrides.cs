// Config overrides on the command line: `--set admin:port=19001`, and its shorthand `--admin:port=19001`.
namespace Mesh.Sidecar.Cli;

/// <summary>
/// Every config value sits at least two levels deep (<c>admin:port</c>, <c>listeners:0:port</c>), so
/// an override key always holds a <c>:</c>. That tells the shorthand <c>--admin:port=19001</c> apart
/// from a mistyped option such as <c>--confg</c>, which stays an error instead of becoming a config key.
/// </summary>
internal static class ConfigOverrides
{
    /// <summary>The option that carries one override as <c>KEY=VALUE</c>.</summary>
    public const string SetOption = "--set";

    /// <summary>
    /// Rewrites each shorthand override (<c>--a:b=value</c>, or <c>--a:b value</c>) into
    /// <c>--set a:b=value</c>, so that the command line parser sees only options it knows.
    /// Tokens after <c>--</c> are left alone.
    /// </summary>
    public static string[] Normalise(IReadOnlyList<string> args)
    {
        ArgumentNullException.ThrowIfNull(args);
        var result = new List<string>(args.Count);
        for (var i = 0; i < args.Count; i++)
        {
            var token = args[i];
            if (token == "--")
            {
                for (; i < args.Count; i++)
                {
                    result.Add(args[i]);
                }

                break;
            }

            if (!IsShorthand(token))
            {
                result.Add(token);
                continue;
            }

            var body = token[2..];
            if (!body.Contains('=', StringComparison.Ordinal) && i + 1 < args.Count && !args[i + 1].StartsWith('-'))
            {
                // `--admin:port 19001`: the value is the next word.
                body = body + "=" + args[++i];
            }

            result.Add(SetOption);
            result.Add(body);
        }

        return [.. result];
    }

    /// <summary>
    /// Turns <c>KEY=VALUE</c> values of <c>--set</c> into the <c>--KEY=VALUE</c> form the config
    /// loader reads; returns a message for the first value that is not <c>KEY=VALUE</c>.
    /// </summary>
    public static string? ToLoaderForm(IReadOnlyList<string>? values, out IReadOnlyList<string> overrides)
    {
        var result = new List<string>();
        overrides = result;
        foreach (var value in values ?? [])
        {
            var equals = value.IndexOf('=', StringComparison.Ordinal);
            if (equals <= 0)
            {
                return $"{SetOption} '{value}': expected KEY=VALUE with ':' between levels, for example {SetOption} admin:port=19001";
            }

            result.Add("--" + value);
        }

        return null;
    }

    private static bool IsShorthand(string token)
    {
        if (!token.StartsWith("--", StringComparison.Ordinal) || token.Length < 4)
        {
            return false;
        }

        var end = token.IndexOf('=', StringComparison.Ordinal);
        var key = end < 0 ? token.AsSpan(2) : token.AsSpan(2, end - 2);
        var colon = key.IndexOf(':');
        return colon > 0 && colon < key.Length - 1;
    }
}
