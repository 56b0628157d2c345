// The differential fuzz test: the same random, valid responses through Mesh's client and YARP's, compared with each other and with what the upstream sent.
using System.Globalization;
using System.Text;
using Mesh.FunctionalTests.Upstream.Conformance;

namespace Mesh.FunctionalTests.Upstream.Fuzz;

/// <summary>
/// A scripted upstream answers case n with <see cref="FuzzResponse.Generate"/>(seed, n): a random
/// status, framing, field set, body, interim responses, write splits and pauses. Each case goes
/// through both sidecars of the conformance fixture with the same client kind; the status, the
/// body bytes and the end-to-end fields must be the same on both paths, and the status and body
/// what the upstream sent. The pooled connections carry every case, so a response left in the
/// stream shows up as a later case's wrong answer. CI runs a fixed seed and 2,000 cases; set
/// MESH_FUZZ_SEED and MESH_FUZZ_CASES for a longer run (docs/testing.md).
/// </summary>
[Collection(ConformanceCollection.Name)]
public sealed class DifferentialFuzzTests
{
    /// <summary>The seed CI runs; any other value of MESH_FUZZ_SEED explores new cases.</summary>
    public const int DefaultSeed = 20_260_901;

    /// <summary>Cases CI runs: about 4,000 exchanges, well under a minute on two cores.</summary>
    public const int DefaultCases = 2_000;

    private readonly ConformanceFixture _fixture;
    private readonly int _seed;

    public DifferentialFuzzTests(ConformanceFixture fixture)
    {
        _fixture = fixture;
        _seed = Setting("MESH_FUZZ_SEED", DefaultSeed);
        var seed = _seed;
        fixture.Scripted.Register("fuzz", new Script(request => FuzzResponse.Generate(seed, CaseOf(request.Target)).Steps));
    }

    [Fact]
    public async Task RandomValidResponses_BothClients_DeliverTheSameBytesAsTheUpstreamSent()
    {
        var cases = Setting("MESH_FUZZ_CASES", DefaultCases);
        var failures = new List<string>();
        for (var index = 0; index < cases && failures.Count < 5; index++)
        {
            var response = FuzzResponse.Generate(_seed, index);
            var kind = response.Http2 ? ClientKind.Http2 : ClientKind.KeepAlive;
            var mesh = await SendAsync(RoutePath.Mesh, kind, response, index);
            var yarp = await SendAsync(RoutePath.Yarp, kind, response, index);

            var problems = new List<string>();
            if (!Delivered(mesh, response))
            {
                problems.Add("mesh did not deliver the upstream's status and body");
            }

            if (!Delivered(yarp, response))
            {
                problems.Add("yarp did not deliver the upstream's status and body");
            }

            if (mesh.HeaderDifference(yarp) is { } fields)
            {
                problems.Add($"fields differ: {fields}");
            }

            if (problems.Count > 0)
            {
                failures.Add($"case {index} ({response.Description}): {string.Join("; ", problems)}\n    mesh: {mesh}\n    yarp: {yarp}");
            }
        }

        Assert.True(failures.Count == 0, $"seed {_seed} (set MESH_FUZZ_SEED={_seed} to replay):\n" + string.Join("\n", failures));
    }

    private static bool Delivered(Outcome outcome, FuzzResponse response) =>
        !outcome.Failed && outcome.Status == response.Status && outcome.Body.AsSpan().SequenceEqual(response.Body);

    private async Task<Outcome> SendAsync(RoutePath path, ClientKind kind, FuzzResponse response, int index)
    {
        var nonce = $"{index.ToString(CultureInfo.InvariantCulture)}-{path}-{Guid.NewGuid():N}";
        var spec = new RequestSpec(response.Method, ConformanceFixture.HostOf(UpstreamKind.Scripted), $"/case/fuzz/{nonce}");
        var outcome = await ConformanceClients.SendAsync(_fixture.Client(path, kind), _fixture.PortOf(path, UpstreamKind.Scripted), spec);
        if (_fixture.Scripted.SeenWith(nonce).Count > 0)
        {
            await _fixture.Scripted.FinishedAsync(nonce);
        }

        return outcome;
    }

    private static int CaseOf(string target) => int.Parse(target.Split('/')[3].Split('-')[0], CultureInfo.InvariantCulture);

    private static int Setting(string name, int fallback) =>
        int.TryParse(Environment.GetEnvironmentVariable(name), CultureInfo.InvariantCulture, out var value) ? value : fallback;

    /// <summary>Self-check of the generator: same seed and index, same response; it covers every framing.</summary>
    [Fact]
    public void Generate_SameSeedAndIndex_SameResponse()
    {
        var framings = new HashSet<string>();
        for (var i = 0; i < 500; i++)
        {
            var first = FuzzResponse.Generate(DefaultSeed, i);
            var again = FuzzResponse.Generate(DefaultSeed, i);
            Assert.Equal(first.Description, again.Description);
            Assert.Equal(first.Body, again.Body);
            Assert.Equal(Encoding.Latin1.GetBytes(string.Concat(first.Steps.OfType<Send>().Select(s => s.Bytes))), Encoding.Latin1.GetBytes(string.Concat(again.Steps.OfType<Send>().Select(s => s.Bytes))));
            framings.Add(first.Description.Split(", ")[1]);
        }

        Assert.Equal(["chunked", "close", "length"], framings.Order());
    }
}
