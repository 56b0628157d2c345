// deploy/consul.json and deploy/consul/api.service.json work as shipped (only ports and the agent's address changed).
using System.Net;
using System.Text.Json.Nodes;
using Mesh.FunctionalTests.Infrastructure;
using Mesh.Tests;
using Mesh.Tests.Consul;

namespace Mesh.FunctionalTests.Consul;

public sealed class ConsulDeployExampleTests
{
    [Fact]
    public async Task DeployExamples_SidecarRegistersWebAndRoutesToTheDefinedApi()
    {
        await using var consul = await ConsulTestServer.StartAsync();
        await using var app = await TestBackend.StartAsync("web-app");
        await using var api = await TestBackend.StartAsync("api");

        // The service definition, as `consul services register` would send it, on this test's port.
        var definition = JsonNode.Parse(await File.ReadAllTextAsync(Path.Combine(TestFixtures.RepositoryRoot, "deploy", "consul", "api.service.json")))!["service"]!.AsObject();
        definition["port"] = api.Port;
        definition["check"]!["http"] = $"http://127.0.0.1:{api.Port}/healthz";
        using var http = new HttpClient(new SocketsHttpHandler { UseProxy = false });
        using var registered = await http.PutAsync(new Uri(consul.Address, "/v1/agent/service/register"), new StringContent(definition.ToJsonString()));
        Assert.Equal(HttpStatusCode.OK, registered.StatusCode);
        await consul.WaitUntilAsync(s => s.Check("api-1-http")?.Status == "passing", TestSidecar.Deadline, "the api's HTTP check passes");

        // The sidecar config as shipped, on ephemeral ports and this test's agent.
        var config = JsonNode.Parse(await File.ReadAllTextAsync(Path.Combine(TestFixtures.RepositoryRoot, "deploy", "consul.json")))!.AsObject();
        foreach (var listener in config["listeners"]!.AsArray())
        {
            listener!["port"] = 0;
        }

        config["admin"]!["port"] = 0;
        config["service"]!["port"] = app.Port;
        config["consul"]!["address"] = consul.Address.ToString();
        config["consul"]!["deregisterGraceMs"] = 0;
        await using var sidecar = await TestSidecar.StartFromJsonAsync(config.ToJsonString());

        await consul.WaitUntilAsync(s => s.Services().Any(x => x.Name == "web" && x.Tags.Contains("v1") && x.Meta["team"] == "storefront"), TestSidecar.Deadline, "web registered");
        Assert.Equal(10, sidecar.State.Current.Clusters["api"].Endpoints.Single().Weight);
        using var client = Clients.Http1();
        using var response = await client.SendAsync(Clients.Get(sidecar.Listener(), "/", host: "api"));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("api", response.Headers.GetValues("x-backend").Single());
    }
}
