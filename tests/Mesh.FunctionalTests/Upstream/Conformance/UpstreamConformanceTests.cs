// The conformance suite: every case of the table through Mesh's client, YARP's and straight to the upstream, with three kinds of client; then the request after it.
using System.Text;

namespace Mesh.FunctionalTests.Upstream.Conformance;

[Collection(ConformanceCollection.Name)]
public sealed class UpstreamConformanceTests(ConformanceFixture fixture)
{
    private static readonly RoutePath[] Proxies = [RoutePath.Mesh, RoutePath.Yarp];
    private static readonly Lock ReportLock = new();

    public static TheoryData<string> Cases => ConformanceCases.Names;

    /// <summary>
    /// For every client (HTTP/1.1 keep-alive, pipelined HTTP/1.1, HTTP/2): the proxies give what the
    /// upstream gives a direct client (or refuse as the case says), and the next request on the
    /// same connections gets its own response, never bytes left over from this one.
    /// </summary>
    [Theory]
    [MemberData(nameof(Cases))]
    public async Task Case_EveryPathAndClient_MatchesTheVerdictAndTheNextRequestGetsItsOwnResponse(string name)
    {
        var row = ConformanceCases.Get(name);
        var problems = new List<string>();
        var report = new StringBuilder($"case {name} ({row.Verdict}):\n");
        var results = new Dictionary<(RoutePath, ClientKind), Outcome>();

        if (row.Verdict == Verdict.Same)
        {
            foreach (var kind in new[] { ClientKind.KeepAlive, ClientKind.Pipelined })
            {
                var (outcome, _) = await RunAsync(row, RoutePath.Direct, kind);
                results[(RoutePath.Direct, kind)] = outcome;
                report.Append($"  direct {kind}: {outcome}\n");
                if (outcome.Failed)
                {
                    problems.Add($"direct {kind} failed: the case itself is wrong");
                }
            }
        }

        foreach (var path in Proxies)
        {
            foreach (var kind in Enum.GetValues<ClientKind>())
            {
                var (outcome, next) = await RunAsync(row, path, kind);
                results[(path, kind)] = outcome;
                report.Append($"  {path} {kind}: {outcome}; next: {next}\n");
                if (!next.expected)
                {
                    problems.Add($"{path} {kind}: the next request got {next.outcome}");
                }
            }
        }

        foreach (var kind in Enum.GetValues<ClientKind>())
        {
            var mesh = results[(RoutePath.Mesh, kind)];
            var yarp = results[(RoutePath.Yarp, kind)];
            switch (row.Verdict)
            {
                case Verdict.Same:
                    var direct = results[(RoutePath.Direct, kind == ClientKind.Pipelined ? ClientKind.Pipelined : ClientKind.KeepAlive)];
                    Check(mesh.SameAs(direct), $"mesh {kind} differs from direct");
                    Check(yarp.SameAs(direct), $"yarp {kind} differs from direct");
                    // Trailer is left out: Mesh's client drops trailers, so it does not announce them either (documented).
                    if (mesh.SameAs(yarp) && mesh.HeaderDifference(yarp, "trailer") is { } headers)
                    {
                        problems.Add($"{kind}: end-to-end headers differ between mesh and yarp: {headers}");
                    }

                    break;
                case Verdict.Refused:
                    Check(mesh.IsRefusal, $"mesh {kind} did not refuse");
                    Check(yarp.IsRefusal, $"yarp {kind} did not refuse");
                    break;
                case Verdict.MeshStricter:
                    Check(mesh.IsRefusal, $"mesh {kind} did not refuse");
                    break;
                case Verdict.Equal:
                    Check((mesh.IsRefusal && yarp.IsRefusal) || mesh.SameAs(yarp), $"mesh and yarp {kind} differ");
                    break;
                case Verdict.RefusedOrAnswer:
                    Check(mesh.IsRefusal || Answers(mesh, row.Answer), $"mesh {kind} neither refused nor gave the upstream's answer");
                    Check(yarp.IsRefusal || Answers(yarp, row.Answer), $"yarp {kind} neither refused nor gave the upstream's answer");
                    break;
            }
        }

        if (Environment.GetEnvironmentVariable("MESH_CONFORMANCE_REPORT") is { Length: > 0 } file)
        {
            // What every path gave, for docs/configuration.md's table of where Mesh is stricter than YARP.
            lock (ReportLock)
            {
                File.AppendAllText(file, report.ToString());
            }
        }

        Assert.True(problems.Count == 0, string.Join("\n", problems) + "\n" + report);

        void Check(bool holds, string problem)
        {
            if (!holds)
            {
                problems.Add(problem);
            }
        }
    }

    private static bool Answers(Outcome outcome, (int Status, string Body) answer) =>
        !outcome.Failed && outcome.Status == answer.Status && Encoding.Latin1.GetString(outcome.Body) == answer.Body;

    /// <summary>Runs the case once on <paramref name="path"/> with <paramref name="kind"/>, then a follow-up echo request on the same client.</summary>
    private async Task<(Outcome Outcome, (Outcome outcome, bool expected) Next)> RunAsync(ConformanceCase row, RoutePath path, ClientKind kind)
    {
        var nonce = Guid.NewGuid().ToString("N")[..12];
        var host = ConformanceFixture.HostOf(row.Upstream);
        var port = fixture.PortOf(path, row.Upstream);
        var spec = new RequestSpec(row.Method, host, row.Target(nonce), row.Body);
        var follow = new RequestSpec("GET", host, $"/echo/next-{nonce}");

        Outcome outcome;
        Outcome next;
        if (kind == ClientKind.Pipelined && !row.LateBytes)
        {
            // Both requests in one write: the follow-up waits in Kestrel's buffer while the case runs.
            var both = await ConformanceClients.PipelineAsync(port, spec, follow);
            outcome = both[0];
            next = both[1];
        }
        else
        {
            var client = kind == ClientKind.Pipelined ? null : fixture.Client(path, kind);
            outcome = client is null ? (await ConformanceClients.PipelineAsync(port, spec))[0] : await ConformanceClients.SendAsync(client, port, spec);
            if (row.Upstream == UpstreamKind.Scripted && fixture.Scripted.SeenWith(nonce).Count > 0)
            {
                // Late bytes are out (or the script is over) before the next request goes.
                await fixture.Scripted.FinishedAsync(nonce);
            }

            next = client is null ? (await ConformanceClients.PipelineAsync(port, follow))[0] : await ConformanceClients.SendAsync(client, port, follow);
        }

        if (next.Failed)
        {
            // Kestrel closes a client connection whose request body it did not read (a refused upload, an aborted
            // response): the check is about the upstream's pooled connection, so ask again on a new one.
            next = (await ConformanceClients.PipelineAsync(port, follow))[0];
        }

        var expected = path == RoutePath.Direct || (next.Status == 200 && Encoding.Latin1.GetString(next.Body) == follow.Target);
        return (outcome, (next, expected));
    }
}
