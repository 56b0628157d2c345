// Loads sidecar.json, applies MESH__ environment and command-line overrides, and returns options or every problem.
using System.Buffers;
using System.Collections;
using System.Text.Json;
using System.Text.Unicode;

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
        if (json.AsSpan().StartsWith(Utf8Bom))
        {
            // Editors on Windows start UTF-8 files with a byte-order mark; JSON readers of streams skip it too.
            json = json[Utf8Bom.Length..];
        }

        // Null, wrong kinds and duplicate keys are only visible in the JSON itself.
        var fileShape = new List<ConfigError>();
        if (!Utf8.IsValid(json))
        {
            // The JSON reader only notices bad UTF-8 when a string is read, deep inside the loading.
            return Fail(source, $"the file is not UTF-8 text: {InvalidUtf8At(json)}");
        }

        try
        {
            using var document = JsonDocument.Parse(json, new JsonDocumentOptions { CommentHandling = JsonCommentHandling.Skip, AllowTrailingCommas = true });
            if (document.RootElement.ValueKind != JsonValueKind.Object)
            {
                return Fail(source, "the config must be a JSON object");
            }

            if (!ConfigSchema.CheckJson(document.RootElement, fileShape))
            {
                // A key twice, or a key holding ':', cannot become a configuration tree like the file's.
                return new ConfigLoadResult(null, fileShape);
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
        return FilterConfigJson.Attach(FromConfiguration(root, fileShape), json, environmentValues.Keys.Concat(commandLineValues.Select(pair => pair.Key)));
    }

    /// <summary>Checks shape, binds and validates an already built configuration.</summary>
    public static ConfigLoadResult FromConfiguration(IConfiguration root) => FromConfiguration(root, []);

    private static ConfigLoadResult FromConfiguration(IConfiguration root, List<ConfigError> fileShape)
    {
        ArgumentNullException.ThrowIfNull(root);
        var errors = fileShape;
        var shape = new List<ConfigError>();
        ConfigSchema.Check(root, shape);
        ConfigSchema.Merge(errors, shape);
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
        // The reader appends its own position (" LineNumber: 0 | BytePositionInLine: 3.") and a path; ours comes first.
        foreach (var tail in (string[])[" Path:", " LineNumber:"])
        {
            var cut = message.IndexOf(tail, StringComparison.Ordinal);
            if (cut > 0)
            {
                message = message[..cut];
            }
        }

        return message;
    }

    private static ReadOnlySpan<byte> Utf8Bom => [0xEF, 0xBB, 0xBF];

    private static string InvalidUtf8At(byte[] json)
    {
        Span<char> scratch = stackalloc char[256];
        var offset = 0;
        while (true)
        {
            var status = Utf8.ToUtf16(json.AsSpan(offset), scratch, out var read, out _, replaceInvalidSequences: false);
            offset += read;
            if (status != OperationStatus.DestinationTooSmall)
            {
                break;
            }
        }

        var line = 1 + json.AsSpan(0, offset).Count((byte)'\n');
        var column = offset - json.AsSpan(0, offset).LastIndexOf((byte)'\n');
        return $"invalid byte 0x{json[offset]:X2} at line {line}, column {column}";
    }
}
