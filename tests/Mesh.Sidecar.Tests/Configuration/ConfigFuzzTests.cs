// Thousands of mutations of the deploy/*.json examples (fixed seed): loading and validating never throws, and every rejection explains itself.
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Mesh.Discovery;
using Mesh.Sidecar.Cli;
using System.Diagnostics.Metrics;
using Mesh.Sidecar.Configuration;
using Mesh.Sidecar.Metrics;
using Mesh.Sidecar.Security;
using Mesh.Sidecar.Security.Identity;
using Mesh.Sidecar.Security.Tls;
using Mesh.Sidecar.Translation;
using Microsoft.Extensions.Logging.Abstractions;
using Mesh.Sidecar.Upstream;

namespace Mesh.Sidecar.Tests.Configuration;

public class ConfigFuzzTests
{
    // Fixed, so a failure here is a failure on every machine; change it locally to explore further.
    private const int Seed = 16_2026;
    private const int MutationsPerFile = 1_000;

    private static readonly JsonDocumentOptions Lenient = new() { CommentHandling = JsonCommentHandling.Skip, AllowTrailingCommas = true };

    [Fact]
    public async Task Validate_MutatedDeployExamples_AlwaysExitsZeroOrTwoWithMessagesAndNeverThrows()
    {
        var random = new Random(Seed);
        var failures = new List<string>();
        var valid = 0;
        var invalid = 0;
        var directory = Directory.CreateTempSubdirectory("mesh-fuzz-").FullName;
        using var clients = new UpstreamClients();
        var services = new ServiceCollection();
        services.AddMetrics();
        using var provider = services.BuildServiceProvider();
        var securityMetrics = new SecurityMetrics(new MeshMetrics(provider.GetRequiredService<IMeterFactory>()));
        await using var identity = new IdentityManager([], new IdentityClock(TimeProvider.System), securityMetrics, NullLoggerFactory.Instance);
        using var tlsClients = new UpstreamTlsClients(identity, securityMetrics, NullLoggerFactory.Instance);
        var translator = new StateTranslator(clients, tlsClients);
        var examples = Directory.GetFiles(Path.Combine(Mesh.Tests.TestFixtures.RepositoryRoot, "deploy"), "*.json").Order(StringComparer.Ordinal).ToArray();
        Assert.True(examples.Length >= 3, "the deploy examples are missing");

        foreach (var example in examples)
        {
            var original = JsonNode.Parse(await File.ReadAllTextAsync(example), documentOptions: Lenient)!;
            for (var n = 0; n < MutationsPerFile; n++)
            {
                var bytes = new Mutator(random).Mutate(original);
                var sample = $"{Path.GetFileName(example)} #{n}";

                // In process against the loader and validator: thousands per second.
                ConfigLoadResult result;
                try
                {
                    result = ConfigLoader.Parse(bytes, "fuzz.json", [], new Dictionary<string, string>());
                }
                catch (Exception ex)
                {
                    failures.Add($"{sample}: {ex.GetType().Name}: {ex.Message}\n{Show(bytes)}");
                    continue;
                }

                if (result.IsValid)
                {
                    valid++;
                    try
                    {
                        // What run does next with a config validate accepted: prepare upstream TLS (reporting
                        // problems such as missing files as config errors), then translate.
                        if (tlsClients.Prepare(result.Options!).Count == 0)
                        {
                            translator.Build(result.Options!, new Dictionary<string, IServiceCatalog>(), null, 1);
                        }
                    }
                    catch (Exception ex)
                    {
                        failures.Add($"{sample}: valid, but translating it threw {ex.GetType().Name}: {ex.Message}\n{Show(bytes)}");
                    }
                }
                else
                {
                    invalid++;
                    if (result.Errors.Count == 0 || result.Errors.Any(e => string.IsNullOrWhiteSpace(e.Path) || string.IsNullOrWhiteSpace(e.Message)))
                    {
                        failures.Add($"{sample}: rejected without a path and message for each problem: [{string.Join(" | ", result.Errors)}]\n{Show(bytes)}");
                    }
                }

                // Every 25th through the command itself: exit code and output, as a user sees them.
                if (n % 25 == 0)
                {
                    var path = Path.Combine(directory, "fuzz.json");
                    await File.WriteAllBytesAsync(path, bytes);
                    using var output = new StringWriter();
                    using var error = new StringWriter();
                    int exit;
                    try
                    {
                        exit = await Program.InvokeAsync(["validate", "--config", path], output, error);
                    }
                    catch (Exception ex)
                    {
                        failures.Add($"{sample}: validate threw {ex.GetType().Name}: {ex.Message}\n{Show(bytes)}");
                        continue;
                    }

                    var expected = result.IsValid ? 0 : 2;
                    var said = result.IsValid ? output.ToString().Contains("configuration is valid", StringComparison.Ordinal) : error.ToString().Contains("in the configuration:", StringComparison.Ordinal);
                    if (exit != expected || !said)
                    {
                        failures.Add($"{sample}: validate exited {exit} (expected {expected}); stdout: {output}; stderr: {error}\n{Show(bytes)}");
                    }
                }
            }
        }

        Assert.True(failures.Count == 0, $"{failures.Count} of {examples.Length * MutationsPerFile} mutations failed; the first ones:\n\n{string.Join("\n\n", failures.Take(5))}");

        // The mutations reach both outcomes, so both paths were exercised.
        Assert.True(valid > 100, $"only {valid} mutations stayed valid");
        Assert.True(invalid > 1_000, $"only {invalid} mutations were rejected");
    }

    private static string Show(byte[] bytes)
    {
        var text = Encoding.UTF8.GetString(bytes);
        return text.Length <= 2_000 ? text : text[..2_000] + "...";
    }

    /// <summary>Changes a config tree in one to three ways, then sometimes its text or bytes.</summary>
    private sealed class Mutator(Random random)
    {
        private const string DeepMarker = "__mesh_fuzz_deep__";

        private static readonly string[] Strings =
        [
            "", " ", "\t", "\u0000", "💥", "é", "a:b", "a.b", "*", "*.", "*.*", "**", "/", "//", "/{**x}/y", "/{x", "/{}", "{x}", "(", "[", "\\",
            "%", "%zz", "${x}", "0x10", "1e3", "-0", "NaN", "Infinity", "127.0.0.1", "::1", "[::1]", "0.0.0.0", "localhost", "999.1.1.1",
            "inbound", "outbound", "http", "tcp", "udp", "auto", "tls-passthrough", "http1", "http2", "round-robin", "consistent-hash",
            "least-requests", "least-connections", "header", "cookie", "client-address", "static", "consul", "Trace", "None",
            "x-user-id", "GET", "G E T", "api", "web", "web-frontend", "users", "default", "refuse", "true", "null",
        ];

        private static readonly string[] Keys =
        [
            "name", "port", "address", "service", "services", "routes", "listeners", "match", "hosts", "path", "prefix", "exact", "pattern",
            "methods", "headers", "query", "cookies", "regex", "present", "transforms", "stripPrefix", "requestHeaders", "set", "add", "remove",
            "endpoints", "weight", "tags", "metadata", "loadBalancing", "policy", "hash", "source", "tls", "serverNames", "alpn", "noSni",
            "tcp", "udp", "bogus", "", "a:b", "Name", "PORT", "shutdown", "drainTimeoutMs", "logging", "level", "performance",
        ];

        private readonly Random _random = random;

        public byte[] Mutate(JsonNode original)
        {
            var root = original.DeepClone();
            var deep = new List<string>();
            var count = 1 + _random.Next(3);
            for (var i = 0; i < count; i++)
            {
                MutateNode(root, deep);
            }

            var text = root.ToJsonString();
            foreach (var replacement in deep)
            {
                text = ReplaceFirst(text, $"\"{DeepMarker}\"", replacement);
            }

            text = MutateText(text);
            var bytes = Encoding.UTF8.GetBytes(text);
            return MutateBytes(bytes);
        }

        private void MutateNode(JsonNode root, List<string> deep)
        {
            var nodes = new List<JsonNode>();
            Collect(root, nodes);
            var target = nodes[_random.Next(nodes.Count)];
            switch (_random.Next(9))
            {
                case 0:
                case 1:
                    Replace(target, RandomValue(deep));
                    break;
                case 2:
                    Delete(target);
                    break;
                case 3:
                    Replace(target, SwapType(target));
                    break;
                case 4:
                    if (target is JsonArray array && array.Count > 0)
                    {
                        array.Add(array[_random.Next(array.Count)]?.DeepClone());
                    }
                    else if (target.Parent is JsonArray parent)
                    {
                        parent.Add(RandomValue(deep));
                    }

                    break;
                case 5:
                    if (target is JsonObject obj)
                    {
                        var key = Keys[_random.Next(Keys.Length)];
                        if (!obj.ContainsKey(key))
                        {
                            obj[key] = RandomValue(deep);
                        }
                    }

                    break;
                case 6:
                    Rename(target);
                    break;
                case 7:
                    if (target is JsonArray items && items.Count > 1)
                    {
                        var first = items[0];
                        items.RemoveAt(0);
                        items.Add(first);
                    }
                    else
                    {
                        Replace(target, RandomValue(deep));
                    }

                    break;
                default:
                    // Keep the kind, change the content: the likeliest edit a person makes.
                    Replace(target, target.GetValueKind() switch
                    {
                        JsonValueKind.String => JsonValue.Create(Strings[_random.Next(Strings.Length)]),
                        JsonValueKind.Number => JsonValue.Create(new[] { -1, 0, 1, 2, 65535, 65536, 10_000, 10_001, int.MaxValue, int.MinValue }[_random.Next(10)]),
                        JsonValueKind.True or JsonValueKind.False => JsonValue.Create(_random.Next(2) == 0),
                        _ => RandomValue(deep),
                    });
                    break;
            }
        }

        private JsonNode? RandomValue(List<string> deep)
        {
            switch (_random.Next(14))
            {
                case 0:
                    return null;
                case 1:
                    return new JsonObject();
                case 2:
                    return new JsonArray();
                case 3:
                    return new JsonArray(_random.Next(3) switch { 0 => null, 1 => new JsonObject(), _ => new JsonArray() });
                case 4:
                    return new JsonObject { [Keys[_random.Next(Keys.Length)]] = null };
                case 5:
                    return JsonValue.Create(new long[] { 0, -1, 1, 2_147_483_648, -2_147_483_649, long.MaxValue }[_random.Next(6)]);
                case 6:
                    // Numbers no integer holds, and forms JSON allows.
                    return JsonNode.Parse(new[] { "1e308", "1e400", "-1e400", "1.5", "0.0000001", "99999999999999999999999999", "-0", "1E2" }[_random.Next(8)]);
                case 7:
                    return JsonValue.Create(_random.Next(2) == 0);
                case 8:
                case 9:
                    return JsonValue.Create(Strings[_random.Next(Strings.Length)]);
                case 10:
                    return JsonValue.Create(new string("a/*.:{}"[_random.Next(7)], 1 + _random.Next(20_000)));
                case 11:
                {
                    // Nested past what any reader accepts (64) or just under it.
                    var depth = 10 + _random.Next(70);
                    var open = _random.Next(2) == 0 ? "[" : "{\"a\":";
                    var close = open == "[" ? "]" : "}";
                    deep.Add(string.Concat(Enumerable.Repeat(open, depth)) + "1" + string.Concat(Enumerable.Repeat(close, depth)));
                    return JsonValue.Create(DeepMarker);
                }

                case 12:
                    return new JsonArray(JsonValue.Create(Strings[_random.Next(Strings.Length)]), JsonValue.Create(1), null);
                default:
                    return new JsonObject { ["name"] = Strings[_random.Next(Strings.Length)], ["port"] = _random.Next(70_000) };
            }
        }

        private JsonNode? SwapType(JsonNode node) => node.GetValueKind() switch
        {
            JsonValueKind.String => JsonValue.Create(node.GetValue<string>().Length),
            JsonValueKind.Number => JsonValue.Create(node.ToJsonString()),
            JsonValueKind.True or JsonValueKind.False => JsonValue.Create(_random.Next(2) == 0 ? "yes" : "1"),
            JsonValueKind.Object => new JsonArray([.. node.AsObject().Select(p => p.Value?.DeepClone())]),
            JsonValueKind.Array => new JsonObject(node.AsArray().Select((v, i) => KeyValuePair.Create(i.ToString(System.Globalization.CultureInfo.InvariantCulture), v?.DeepClone()))),
            _ => JsonValue.Create("x"),
        };

        private void Rename(JsonNode node)
        {
            if (node.Parent is not JsonObject parent)
            {
                return;
            }

            var name = node.GetPropertyName();
            var renamed = _random.Next(4) switch
            {
                0 => name.ToUpperInvariant(),
                1 => name + "s",
                2 => name.Length > 1 ? name[1..] : "x",
                _ => Keys[_random.Next(Keys.Length)],
            };
            if (renamed == name || parent.ContainsKey(renamed))
            {
                return;
            }

            parent.Remove(name);
            parent[renamed] = node;
        }

        private static void Replace(JsonNode node, JsonNode? value)
        {
            switch (node.Parent)
            {
                case JsonObject obj:
                    obj[node.GetPropertyName()] = value;
                    break;
                case JsonArray array:
                    array[node.GetElementIndex()] = value;
                    break;
            }
        }

        private static void Delete(JsonNode node)
        {
            switch (node.Parent)
            {
                case JsonObject obj:
                    obj.Remove(node.GetPropertyName());
                    break;
                case JsonArray array:
                    array.RemoveAt(node.GetElementIndex());
                    break;
            }
        }

        private string MutateText(string text)
        {
            switch (_random.Next(30))
            {
                case 0:
                    // The same key twice, in another case: a JSON object may hold it, the configuration system may not.
                    var at = text.IndexOf("\"name\":", StringComparison.Ordinal);
                    return at < 0 ? text : text[..at] + "\"Name\":\"dup\"," + text[at..];
                case 1:
                    return "// edited by hand\n" + text.Replace(",", ",\n", StringComparison.Ordinal);
                case 2:
                    return text.Replace("]", ",]", StringComparison.Ordinal);
                default:
                    return text;
            }
        }

        private byte[] MutateBytes(byte[] bytes)
        {
            switch (_random.Next(40))
            {
                case 0:
                    return bytes[..(bytes.Length == 0 ? 0 : _random.Next(bytes.Length))];
                case 1:
                {
                    var at = _random.Next(bytes.Length + 1);
                    return [.. bytes[..at], (byte)_random.Next(256), .. bytes[at..]];
                }

                case 2:
                    return [0xEF, 0xBB, 0xBF, .. bytes];
                case 3:
                    return [.. bytes, .. "\n{}"u8];
                default:
                    return bytes;
            }
        }

        private static void Collect(JsonNode? node, List<JsonNode> nodes)
        {
            if (node is null)
            {
                return;
            }

            if (node.Parent is not null)
            {
                nodes.Add(node);
            }

            switch (node)
            {
                case JsonObject obj:
                    foreach (var (_, value) in obj)
                    {
                        Collect(value, nodes);
                    }

                    break;
                case JsonArray array:
                    foreach (var item in array)
                    {
                        Collect(item, nodes);
                    }

                    break;
            }

            if (node.Parent is null && nodes.Count == 0)
            {
                nodes.Add(node);
            }
        }

        private static string ReplaceFirst(string text, string marker, string replacement)
        {
            var at = text.IndexOf(marker, StringComparison.Ordinal);
            return at < 0 ? text : text[..at] + replacement + text[(at + marker.Length)..];
        }
    }
}
