// What a peek at the first bytes of a TLS connection found: more needed, a ClientHello (name, ALPN), not TLS, or malformed.
namespace Mesh.Sidecar.L4.Tls;

/// <summary>The outcome of <see cref="ClientHelloParser.Parse(System.ReadOnlySpan{byte})"/>.</summary>
internal enum ClientHelloStatus
{
    /// <summary>The bytes so far are a valid prefix of a ClientHello flight; read more and parse again.</summary>
    NeedMoreData,

    /// <summary>A complete, well-formed ClientHello: <see cref="ClientHelloResult.ServerName"/> and <see cref="ClientHelloResult.Alpn"/> are set.</summary>
    Success,

    /// <summary>The first record is not a TLS handshake record (content type 22, version 0x03xx).</summary>
    NotTls,

    /// <summary>A TLS handshake record whose contents are not a well-formed ClientHello (or exceed the limits).</summary>
    Invalid,
}

/// <summary>The result of parsing the first flight of a TLS client; values are only meaningful on <see cref="ClientHelloStatus.Success"/>.</summary>
internal readonly struct ClientHelloResult
{
    private readonly IReadOnlyList<string>? _alpn;

    private ClientHelloResult(ClientHelloStatus status, string? serverName, IReadOnlyList<string>? alpn)
    {
        Status = status;
        ServerName = serverName;
        _alpn = alpn;
    }

    /// <summary>Whether the ClientHello is complete, incomplete, not TLS or malformed.</summary>
    public ClientHelloStatus Status { get; }

    /// <summary>True when <see cref="Status"/> is <see cref="ClientHelloStatus.Success"/>.</summary>
    public bool IsSuccess => Status == ClientHelloStatus.Success;

    /// <summary>The host_name of the server_name extension, ASCII lower-cased; null when the client sent none.</summary>
    public string? ServerName { get; }

    /// <summary>The ALPN protocol names in the client's order (each byte as one Latin-1 char); empty when absent.</summary>
    public IReadOnlyList<string> Alpn => _alpn ?? [];

    /// <summary>A result without values: <see cref="ClientHelloStatus.NeedMoreData"/>, <see cref="ClientHelloStatus.NotTls"/> or <see cref="ClientHelloStatus.Invalid"/>.</summary>
    internal static ClientHelloResult FromStatus(ClientHelloStatus status) => new(status, null, null);

    /// <summary>A parsed ClientHello.</summary>
    internal static ClientHelloResult Succeeded(string? serverName, IReadOnlyList<string> alpn) =>
        new(ClientHelloStatus.Success, serverName, alpn);

    /// <inheritdoc />
    public override string ToString() => Status == ClientHelloStatus.Success
        ? $"Success(sni={ServerName ?? "<none>"}, alpn=[{string.Join(",", Alpn)}])"
        : Status.ToString();
}
