// Plain messages for a command line that cannot be understood: unknown commands and options name what exists.
using System.CommandLine;

namespace Mesh.Sidecar.Cli;

/// <summary>
/// Turns System.CommandLine's parse errors into messages that say what was typed, what exists,
/// and the nearest match; every one exits with <see cref="Program.UsageError"/>.
/// </summary>
internal static class CommandLineErrors
{
    /// <summary>Writes every parse error of <paramref name="parsed"/> and returns the exit code.</summary>
    public static int Report(ParseResult parsed, TextWriter error)
    {
        var command = parsed.CommandResult.Command;
        var isRoot = ReferenceEquals(command, parsed.RootCommandResult.Command);
        var unmatched = parsed.UnmatchedTokens;
        var afterUnknownOption = false;
        foreach (var token in unmatched)
        {
            if (token.StartsWith('-'))
            {
                var options = OptionNames(command);
                error.WriteLine($"mesh-sidecar: unknown option '{token}' for {Describe(command, isRoot)}; its options are: {string.Join(", ", options)}.{Suggest(token, options)}");
                afterUnknownOption = true;
                continue;
            }

            if (afterUnknownOption)
            {
                // Most likely the value of the unknown option just reported.
                afterUnknownOption = false;
                continue;
            }

            if (isRoot)
            {
                WriteUnknownCommand(command, token, error);
            }
            else
            {
                error.WriteLine($"mesh-sidecar: unexpected argument '{token}' for {Describe(command, isRoot)}.");
            }
        }

        foreach (var problem in parsed.Errors)
        {
            if (!unmatched.Any(token => problem.Message.Contains($"'{token}'", StringComparison.Ordinal)))
            {
                error.WriteLine($"mesh-sidecar: {problem.Message}");
            }
        }

        error.WriteLine($"Run '{CommandPath(parsed)} --help' for usage.");
        return Program.UsageError;
    }

    /// <summary>Reports a word that names no command.</summary>
    public static int UnknownCommand(Command root, string word, TextWriter error)
    {
        WriteUnknownCommand(root, word, error);
        error.WriteLine("Run 'mesh-sidecar --help' for usage.");
        return Program.UsageError;
    }

    /// <summary>Reports a problem found after parsing (such as a malformed <c>--set</c> value).</summary>
    public static int Report(string problem, string command, TextWriter error)
    {
        error.WriteLine($"mesh-sidecar: {problem}");
        error.WriteLine($"Run 'mesh-sidecar {command} --help' for usage.");
        return Program.UsageError;
    }

    private static void WriteUnknownCommand(Command root, string word, TextWriter error)
    {
        var commands = root.Subcommands.Select(c => c.Name).ToList();
        error.WriteLine($"mesh-sidecar: unknown command '{word}'; the commands are: {string.Join(", ", commands)}.{Suggest(word, commands)}");
    }

    private static List<string> OptionNames(Command command)
    {
        var names = new List<string>();
        foreach (var option in command.Options)
        {
            names.Add(option.Name);
        }

        // --help is inherited from the root, so subcommands do not list it themselves.
        if (!names.Contains("--help"))
        {
            names.Add("--help");
        }

        return names;
    }

    private static string Describe(Command command, bool isRoot) => isRoot ? "mesh-sidecar" : $"'{command.Name}'";

    // "mesh-sidecar ca init": the words that led to the command, for the help hint.
    private static string CommandPath(ParseResult parsed)
    {
        var words = new List<string>();
        for (var result = parsed.CommandResult; result is not null; result = result.Parent as System.CommandLine.Parsing.CommandResult)
        {
            words.Insert(0, result.Command.Name);
        }

        return string.Join(' ', words);
    }

    // The nearest candidate within a couple of edits: "valdiate" → "validate", "--confg" → "--config".
    private static string Suggest(string typed, IReadOnlyList<string> candidates)
    {
        string? best = null;
        var bestDistance = int.MaxValue;
        foreach (var candidate in candidates)
        {
            var distance = Distance(typed.Split('=')[0], candidate);
            if (distance < bestDistance)
            {
                best = candidate;
                bestDistance = distance;
            }
        }

        return best is not null && bestDistance <= Math.Max(2, best.Length / 3) ? $" Did you mean '{best}'?" : "";
    }

    // Optimal string alignment distance: a swap of two neighbours counts as one edit.
    private static int Distance(string a, string b)
    {
        var d = new int[a.Length + 1, b.Length + 1];
        for (var i = 0; i <= a.Length; i++)
        {
            d[i, 0] = i;
        }

        for (var j = 0; j <= b.Length; j++)
        {
            d[0, j] = j;
        }

        for (var i = 1; i <= a.Length; i++)
        {
            for (var j = 1; j <= b.Length; j++)
            {
                var cost = a[i - 1] == b[j - 1] ? 0 : 1;
                d[i, j] = Math.Min(Math.Min(d[i - 1, j] + 1, d[i, j - 1] + 1), d[i - 1, j - 1] + cost);
                if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1])
                {
                    d[i, j] = Math.Min(d[i, j], d[i - 2, j - 2] + 1);
                }
            }
        }

        return d[a.Length, b.Length];
    }
}
