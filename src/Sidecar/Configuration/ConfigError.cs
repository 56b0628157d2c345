// A configuration problem with the JSON path it is found at.
namespace Mesh.Sidecar.Configuration;

/// <summary>One problem in the configuration, printed as <c>path: message</c>.</summary>
/// <param name="Path">JSON path such as <c>listeners[1].port</c>; the file name for syntax errors.</param>
/// <param name="Message">What is wrong.</param>
public sealed record ConfigError(string Path, string Message)
{
    /// <inheritdoc />
    public override string ToString() => $"{Path}: {Message}";
}

/// <summary>The outcome of loading a config: options when valid, otherwise every problem found.</summary>
public sealed record ConfigLoadResult(MeshOptions? Options, IReadOnlyList<ConfigError> Errors)
{
    /// <summary>True when the config can be applied.</summary>
    public bool IsValid => Options is not null && Errors.Count == 0;
}
