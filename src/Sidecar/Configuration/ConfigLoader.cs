// Loads sidecar.json, applies MESH__ environment and command-line overrides, and returns options or every problem.
using System.Collections;
using System.Text.Json;

namespace Mesh.Sidecar.Configuration;

/// <summary>
/// Reads configuration the options-pattern way (JSON file, then <c>MESH__</c> environment
/// variables, then command-line <c>--key=value</c> overrides) but reports every problem instead
/// of the first: JSON syntax with line and column, unknown keys, wrong types, then semantics.
/// </summary>
public static class ConfigLoader
{
    /// <summary>Environment variables with this prefix override config keys (<c>MESH__ADMIN__PORT=19001</c>).</summary>
    public const string EnvironmentPrefix = "MESH__";

    /// <summary>The file read when none is named.</summary>
    public const string DefaultFile = "sidecar.json";

    /// <summary>Loads and validates <paramref name="path"/>.</summary>
    public static ConfigLoadResult Load(string path, IReadOnlyList<string>? commandLine = null, IDictionary? environment = null)
    {
        ArgumentNullException.ThrowIfNull(path);
        byte[] bytes;
        try
        {
            bytes = File.ReadAllBytes(path);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return Fail(path, $"cannot read the config file: {ex.Message}");
        }

        return Parse(bytes, path, commandLine, environment);
    }

    /// <summary>Validates JSON text as if it were a config file named <paramref name="source"/>.</summary>
    public static ConfigLoadResult Parse(byte[] json, string source, IReadOnlyList<string>? commandLine = null, IDictionary? environment = null)
    {
        ArgumentNullException.ThrowIfNull(json);
        try
        {
            using var document = JsonDocument.Parse(json, new JsonDocumentOptions { CommentHandling = JsonCommentHandling.Skip, AllowTrailingCommas = true });
            if (document.RootElement.ValueKind != JsonValueKind.Object)
            {
                return Fail(source, "the config must be a JSON object");
            }
        }
        catch (JsonException ex)
        {
            return Fail(source, $"invalid JSON at line {(ex.LineNumber ?? 0) + 1}, column {(ex.BytePositionInLine ?? 0) + 1}: {FirstSentence(ex.Message)}");
        }

        var file = new ConfigurationBuilder().AddJsonStream(new MemoryStream(json)).Build();
        var commandLineValues = new ConfigurationBuilder().AddCommandLine([.. commandLine ?? []]).Build().AsEnumerable().Where(pair => pair.Value is not null).ToList();
        var environmentValues = EnvironmentOverrides(environment ?? Environment.GetEnvironmentVariables());
        var root = new ConfigurationBuilder()
            // The JSON again rather than AddConfiguration(file): a chained configuration reports "" as missing.
            .AddJsonStream(new MemoryStream(json))
            .AddInMemoryCollection(MatchFileCasing(file, environmentValues))
            .AddInMemoryCollection(MatchFileCasing(file, commandLineValues))
            .Build();
        // Filter config objects come from the file's own JSON, which binding would flatten to strings.
        return FilterConfigJson.Attach(FromConfiguration(root), json, environmentValues.Keys.Concat(commandLineValues.Select(pair => pair.Key)));
    }

    /// <summary>Checks shape, binds and validates an already built configuration.</summary>
    public static ConfigLoadResult FromConfiguration(IConfiguration root)
    {
        ArgumentNullException.ThrowIfNull(root);
        var errors = new List<ConfigError>();
        ConfigSchema.Check(root, errors);
        if (errors.Count > 0)
        {
            return new ConfigLoadResult(null, errors);
        }

        MeshOptions options;
        try
        {
            options = root.Get<MeshOptions>() ?? new MeshOptions();
            options = ResilienceConfigDefaults.Apply(root, options);
        }
        catch (InvalidOperationException ex)
        {
            return new ConfigLoadResult(null, [new ConfigError("config", ex.Message)]);
        }

        // "consul": {} means "a local agent with every default"; the binder leaves an empty object null.
        if (options.Consul is null && root.GetChildren().Any(c => string.Equals(c.Key, "consul", StringComparison.OrdinalIgnoreCase)))
        {
            options = options with { Consul = new ConsulOptions() };
        }

        ConfigValidator.Validate(options, errors);
        return new ConfigLoadResult(errors.Count == 0 ? options : null, errors);
    }

    private static Dictionary<string, string?> EnvironmentOverrides(IDictionary environment)
    {
        var overrides = new Dictionary<string, string?>(StringComparer.OrdinalIgnoreCase);
        foreach (DictionaryEntry entry in environment)
        {
            if (entry.Key is string key && key.StartsWith(EnvironmentPrefix, StringComparison.OrdinalIgnoreCase))
            {
                overrides[key[EnvironmentPrefix.Length..].Replace("__", ":", StringComparison.Ordinal)] = entry.Value as string;
            }
        }

        return overrides;
    }

    // Configuration keys are case-insensitive but dictionary keys (service names) keep the casing of
    // whoever wrote them; MESH__SERVICES__API__... must land on the file's "api", not create "API".
    private static Dictionary<string, string?> MatchFileCasing(IConfiguration file, IEnumerable<KeyValuePair<string, string?>> overrides)
    {
        var result = new Dictionary<string, string?>(StringComparer.OrdinalIgnoreCase);
        foreach (var (key, value) in overrides)
        {
            var segments = key.Split(':');
            IConfiguration level = file;
            for (var i = 0; i < segments.Length; i++)
            {
                var existing = level.GetChildren().FirstOrDefault(c => string.Equals(c.Key, segments[i], StringComparison.OrdinalIgnoreCase));
                if (existing is null)
                {
                    break;
                }

                segments[i] = existing.Key;
                level = existing;
            }

            result[string.Join(':', segments)] = value;
        }

        return result;
    }

    private static ConfigLoadResult Fail(string path, string message) => new(null, [new ConfigError(path, message)]);

    private static string FirstSentence(string message)
    {
        var cut = message.IndexOf(" Path:", StringComparison.Ordinal);
        return cut > 0 ? message[..cut] : message;
    }
}
