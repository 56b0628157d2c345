// Walks raw configuration against the option records: unknown keys and values of the wrong type are errors.
using System.Collections;
using System.Globalization;
using System.Reflection;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Mesh.Sidecar.Configuration;

/// <summary>
/// Checks an <see cref="IConfiguration"/> tree against the shape of <see cref="MeshOptions"/> before
/// binding, because the binder silently ignores unknown keys and stops at the first bad value.
/// </summary>
internal static partial class ConfigSchema
{
    public static void Check(IConfiguration root, List<ConfigError> errors) => Check(root, typeof(MeshOptions), errors);

    /// <summary>Checks <paramref name="root"/> against the options type <paramref name="type"/>.</summary>
    internal static void Check(IConfiguration root, Type type, List<ConfigError> errors)
    {
        ArgumentNullException.ThrowIfNull(root);
        foreach (var child in root.GetChildren())
        {
            CheckProperty(child, type, "", errors);
        }
    }

    /// <summary>
    /// True for properties that hold raw JSON for someone else to read (a plugin's <c>config</c>):
    /// declare them as <see cref="JsonElement"/>, <see cref="JsonNode"/> or <see cref="JsonObject"/>
    /// and neither shape check walks into them.
    /// </summary>
    internal static bool IsOpaque(Type type) => type == typeof(JsonElement) || typeof(JsonNode).IsAssignableFrom(type);

    private static void CheckProperty(IConfigurationSection section, Type owner, string parentPath, List<ConfigError> errors)
    {
        var property = owner.GetProperty(section.Key, BindingFlags.Public | BindingFlags.Instance | BindingFlags.IgnoreCase);
        if (property is null || property.SetMethod is null)
        {
            errors.Add(new ConfigError(Join(parentPath, section.Key), $"unknown key; known keys here: {KnownKeys(owner)}"));
            return;
        }

        if (property.IsDefined(typeof(RawJsonAttribute)))
        {
            // Kept as the file's JSON (FilterConfigJson), not walked as typed options.
            return;
        }

        CheckValue(section, property.PropertyType, Join(parentPath, CamelCase(property.Name)), errors);
    }

    private static void CheckValue(IConfigurationSection section, Type type, string path, List<ConfigError> errors)
    {
        type = Nullable.GetUnderlyingType(type) ?? type;
        if (IsOpaque(type))
        {
            return;
        }

        var children = section.GetChildren().ToList();
        if (IsScalar(type))
        {
            if (children.Count > 0)
            {
                errors.Add(new ConfigError(path, $"expected {Describe(type)}, found an object or list"));
                return;
            }

            CheckScalar(section.Value, type, path, errors);
            return;
        }

        if (children.Count == 0)
        {
            // An empty object or list binds to its default; a plain value where a structure belongs is an error.
            if (!string.IsNullOrEmpty(section.Value))
            {
                errors.Add(new ConfigError(path, $"expected {Describe(type)}, found '{section.Value}'"));
            }

            return;
        }

        if (ListElement(type) is { } element)
        {
            foreach (var child in children)
            {
                if (!int.TryParse(child.Key, NumberStyles.None, CultureInfo.InvariantCulture, out _))
                {
                    errors.Add(new ConfigError(Join(path, child.Key), "expected a list, found an object"));
                    continue;
                }

                CheckItem(child, element, $"{path}[{child.Key}]", errors);
            }

            return;
        }

        if (DictionaryValue(type) is { } value)
        {
            foreach (var child in children)
            {
                CheckItem(child, value, Join(path, child.Key), errors);
            }

            return;
        }

        foreach (var child in children)
        {
            CheckProperty(child, type, path, errors);
        }
    }

    // A list element or dictionary value with nothing in it would bind to null (a null string in a
    // list of hosts, say) and reach code that never expects one.
    private static void CheckItem(IConfigurationSection section, Type type, string path, List<ConfigError> errors)
    {
        if (IsScalar(Nullable.GetUnderlyingType(type) ?? type) && section.Value is null && !section.GetChildren().Any())
        {
            errors.Add(new ConfigError(path, $"expected {Describe(type)}, found nothing"));
            return;
        }

        CheckValue(section, type, path, errors);
    }

    private static void CheckScalar(string? value, Type type, string path, List<ConfigError> errors)
    {
        if (type == typeof(string) || value is null)
        {
            return;
        }

        var ok = type == typeof(int) ? int.TryParse(value, NumberStyles.Integer, CultureInfo.InvariantCulture, out _)
            : type == typeof(bool) ? bool.TryParse(value, out _)
            : type == typeof(double) && double.TryParse(value, NumberStyles.Float, CultureInfo.InvariantCulture, out _);
        if (!ok)
        {
            errors.Add(new ConfigError(path, $"'{value}' is not {Describe(type)}"));
        }
    }

    private static bool IsScalar(Type type) => type == typeof(string) || type.IsPrimitive || type.IsEnum;

    private static Type? ListElement(Type type)
    {
        if (type.IsGenericType && type.GetGenericTypeDefinition() is var definition
            && (definition == typeof(IReadOnlyList<>) || definition == typeof(List<>) || definition == typeof(IList<>)))
        {
            return type.GetGenericArguments()[0];
        }

        return type.IsArray ? type.GetElementType() : null;
    }

    private static Type? DictionaryValue(Type type) =>
        type.IsGenericType && typeof(IEnumerable).IsAssignableFrom(type) && type.GetGenericArguments() is { Length: 2 } arguments && arguments[0] == typeof(string)
            ? arguments[1]
            : null;

    private static string Describe(Type type) =>
        type == typeof(int) ? "a whole number"
        : type == typeof(bool) ? "true or false"
        : type == typeof(double) ? "a number"
        : type == typeof(string) ? "a string"
        : ListElement(type) is not null ? "a list"
        : "an object";

    private static string KnownKeys(Type owner) =>
        string.Join(", ", owner.GetProperties(BindingFlags.Public | BindingFlags.Instance).Where(p => p.SetMethod is not null).Select(p => CamelCase(p.Name)));

    internal static string CamelCase(string name) => name.Length == 0 ? name : char.ToLowerInvariant(name[0]) + name[1..];

    private static string Join(string parent, string key) => parent.Length == 0 ? key : parent + "." + key;
}
