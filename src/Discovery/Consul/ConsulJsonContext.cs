// Source-generated System.Text.Json metadata for every Consul body the client reads or writes.
using System.Text.Json.Serialization;

namespace Mesh.Discovery.Consul;

/// <summary>
/// Consul's JSON: PascalCase keys (read case-insensitively, since the agent accepts either and
/// tagged addresses are lower case), nulls left out of requests.
/// </summary>
[JsonSourceGenerationOptions(
    PropertyNameCaseInsensitive = true,
    DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    ReadCommentHandling = System.Text.Json.JsonCommentHandling.Skip,
    AllowTrailingCommas = true)]
[JsonSerializable(typeof(AgentServiceRegistration))]
[JsonSerializable(typeof(AgentCheckRegistration))]
[JsonSerializable(typeof(CheckUpdate))]
[JsonSerializable(typeof(AgentService))]
[JsonSerializable(typeof(Dictionary<string, AgentService>))]
[JsonSerializable(typeof(List<ServiceEntry>))]
[JsonSerializable(typeof(List<CatalogService>))]
[JsonSerializable(typeof(Dictionary<string, List<string>>))]
[JsonSerializable(typeof(CaRootList))]
[JsonSerializable(typeof(LeafCert))]
[JsonSerializable(typeof(AuthorizeRequest))]
[JsonSerializable(typeof(AuthorizeResponse))]
[JsonSerializable(typeof(Intention))]
[JsonSerializable(typeof(List<Intention>))]
[JsonSerializable(typeof(Dictionary<string, List<Intention>>))]
[JsonSerializable(typeof(IntentionCheck))]
public sealed partial class ConsulJsonContext : JsonSerializerContext;
