// The shape check on the JSON file itself, where null, {} and [] are still told apart and duplicate keys are visible.
using System.Reflection;
using System.Text.Json;

namespace Mesh.Sidecar.Configuration;

/// <summary>
/// Walks the config file's JSON against the option records before anything is bound. The
/// configuration system flattens <c>null</c>, <c>{}</c> and <c>[]</c> into one empty value and throws
/// on duplicate keys, so those are caught here, each with its JSON path: null where the record does
/// not allow it, an object, list or plain value of the wrong kind, duplicate keys. Unknown keys and
/// values that do not parse are left to the configuration check, which also sees the overrides.
/// A property marked <see cref="RawJsonAttribute"/>, or whose type is <see cref="JsonElement"/> or a
/// <see cref="System.Text.Json.Nodes.JsonNode"/>, is opaque: any JSON goes there and it is not walked.
/// </summary>
internal static partial class ConfigSchema
{
    private static readonly NullabilityInfoContext Nullability = new();

    private const string DuplicateKey = "duplicate key (keys are case-insensitive)";
    private const string ColonInKey = "':' cannot be part of a key (it separates levels in overrides)";

    /// <summary>
    /// Checks a config file's root object against <see cref="MeshOptions"/>. Returns false when the
    /// file cannot be loaded into a configuration at all (a key twice, a key with ':'), so that no
    /// other check runs on a tree that would not match the file.
    /// </summary>
    public static bool CheckJson(JsonElement root, List<ConfigError> errors) => CheckJson(root, typeof(MeshOptions), errors);

    /// <summary>Checks <paramref name="root"/> against the options type <paramref name="type"/>.</summary>
    internal static bool CheckJson(JsonElement root, Type type, List<ConfigError> errors)
    {
        ArgumentNullException.ThrowIfNull(errors);
        var before = errors.Count;
        CheckElement(root, type, nullable: false, element: false, "", errors);
        for (var i = before; i < errors.Count; i++)
        {
            if (errors[i].Message is DuplicateKey or ColonInKey)
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>
    /// Adds <paramref name="later"/> to <paramref name="first"/>, leaving out problems at or below a
    /// path <paramref name="first"/> already reports (both checks see a list where a string belongs).
    /// </summary>
    public static void Merge(List<ConfigError> first, IReadOnlyList<ConfigError> later)
    {
        var reported = first.Count;
        foreach (var error in later)
        {
            var covered = false;
            for (var i = 0; i < reported && !covered; i++)
            {
                var path = first[i].Path;
                covered = error.Path == path
                    || (error.Path.StartsWith(path, StringComparison.Ordinal) && error.Path.Length > path.Length && error.Path[path.Length] is '.' or '[');
            }

            if (!covered)
            {
                first.Add(error);
            }
        }
    }

    // An empty {} or [] of the other kind still means "the default" for a property, as the docs
    // promise; a list element or dictionary value must be of its own kind.
    private static void CheckElement(JsonElement value, Type type, bool nullable, bool element, string path, List<ConfigError> errors)
    {
        if (Nullable.GetUnderlyingType(type) is { } underlying)
        {
            type = underlying;
            nullable = true;
        }

        if (IsOpaque(type))
        {
            return;
        }

        var where = path.Length == 0 ? "config" : path;
        switch (value.ValueKind)
        {
            case JsonValueKind.Null:
                if (!nullable)
                {
                    errors.Add(new ConfigError(where, $"expected {Describe(type)}, found null"));
                }

                return;

            case JsonValueKind.Object:
                if (IsScalar(type) || (ListElement(type) is not null && (element || value.EnumerateObject().Any())))
                {
                    errors.Add(new ConfigError(where, $"expected {Describe(type)}, found an object"));
                    return;
                }

                CheckObject(value, type, path, errors);
                return;

            case JsonValueKind.Array:
                if (ListElement(type) is { } itemType)
                {
                    var i = 0;
                    foreach (var item in value.EnumerateArray())
                    {
                        CheckElement(item, itemType, nullable: false, element: true, $"{path}[{i}]", errors);
                        i++;
                    }
                }
                else if (IsScalar(type) || element || value.GetArrayLength() > 0)
                {
                    errors.Add(new ConfigError(where, $"expected {Describe(type)}, found a list"));
                }

                return;

            default:
                // Strings, numbers and booleans: whether "15001" may stand for 15001 is the configuration check's call.
                if (!IsScalar(type))
                {
                    errors.Add(new ConfigError(where, $"expected {Describe(type)}, found {Show(value)}"));
                }

                return;
        }
    }

    private static void CheckObject(JsonElement value, Type type, string path, List<ConfigError> errors)
    {
        // Keys are case-insensitive once loaded, so "port" and "Port" in one object are the same key twice.
        var seen = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
        var dictionaryValue = DictionaryValue(type);
        foreach (var property in value.EnumerateObject())
        {
            var key = property.Name;
            if (!seen.Add(key))
            {
                errors.Add(new ConfigError(Join(path, key), DuplicateKey));
                continue;
            }

            if (key.Contains(':', StringComparison.Ordinal))
            {
                errors.Add(new ConfigError(Join(path, key), ColonInKey));
                continue;
            }

            if (dictionaryValue is not null)
            {
                CheckElement(property.Value, dictionaryValue, nullable: false, element: true, Join(path, key), errors);
                continue;
            }

            var member = type.GetProperty(key, BindingFlags.Public | BindingFlags.Instance | BindingFlags.IgnoreCase);
            if (member is null || member.SetMethod is null)
            {
                // Reported by the configuration check, with the same words for the file and the overrides.
                continue;
            }

            if (member.IsDefined(typeof(RawJsonAttribute)))
            {
                // Any JSON: kept as the file wrote it for its reader (a filter's config).
                continue;
            }

            var nullable = !member.PropertyType.IsValueType && Nullability.Create(member).WriteState == NullabilityState.Nullable;
            CheckElement(property.Value, member.PropertyType, nullable, element: false, Join(path, CamelCase(member.Name)), errors);
        }
    }

    // Quoted as the configuration check quotes values: found 'x', found '5'.
    private static string Show(JsonElement value) =>
        $"'{Shorten(value.ValueKind == JsonValueKind.String ? value.GetString() ?? "" : value.GetRawText())}'";

    private static string Shorten(string text) => text.Length <= 40 ? text : text[..37] + "...";
}
