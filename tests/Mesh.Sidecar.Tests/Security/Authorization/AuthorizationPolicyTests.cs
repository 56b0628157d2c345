// Authorization decisions: first matching rule, from (IDs, *, unauthenticated), listeners, HTTP matches, TCP ignoring HTTP rules.
using Mesh.Sidecar.Configuration;
using Mesh.Sidecar.Security;
using Mesh.Sidecar.Security.Authorization;
using Microsoft.AspNetCore.Http;

namespace Mesh.Sidecar.Tests.Security.Authorization;

public sealed class AuthorizationPolicyTests
{
    private static readonly SpiffeId Web = Id("spiffe://mesh.local/ns/default/svc/web");
    private static readonly SpiffeId Billing = Id("spiffe://mesh.local/ns/default/svc/billing");

    private static SpiffeId Id(string text) => SpiffeId.TryParse(text, out var id, out _) ? id : throw new ArgumentException(text);

    private static HttpRequest Request(string method, string path, params (string Name, string Value)[] headers)
    {
        var context = new DefaultHttpContext();
        context.Request.Method = method;
        context.Request.Path = path;
        foreach (var (name, value) in headers)
        {
            context.Request.Headers[name] = value;
        }

        return context.Request;
    }

    private static readonly AuthorizationPolicy Policy = AuthorizationPolicy.Compile(new AuthorizationOptions
    {
        DefaultAction = AuthorizationActions.Deny,
        Rules =
        [
            new AuthorizationRuleOptions { Name = "deny-admin", From = ["*"], Match = new AuthorizationMatchOptions { Path = new PathMatchOptions { Prefix = "/admin" } }, Action = "deny" },
            new AuthorizationRuleOptions { Name = "web-reads", Listeners = ["inbound"], From = ["spiffe://mesh.local/ns/default/svc/web"], Match = new AuthorizationMatchOptions { Path = new PathMatchOptions { Prefix = "/api/" }, Methods = ["GET"] } },
            new AuthorizationRuleOptions { Name = "canary", From = ["spiffe://mesh.local/ns/default/dc/dc1/svc/billing"], Match = new AuthorizationMatchOptions { Headers = [new ValueMatchOptions { Name = "x-canary", Exact = "1" }] } },
            new AuthorizationRuleOptions { Name = "health", From = ["unauthenticated"], Match = new AuthorizationMatchOptions { Path = new PathMatchOptions { Exact = "/health" } } },
            new AuthorizationRuleOptions { Name = "billing-tcp", Listeners = ["db"], From = ["spiffe://mesh.local/ns/default/svc/billing"] },
        ],
    })!;

    [Theory]
    [InlineData("GET", "/api/orders", "web", "inbound", true, "web-reads")]
    [InlineData("POST", "/api/orders", "web", "inbound", false, "default")]
    [InlineData("GET", "/api/orders", "web", "inbound2", false, "default")]
    [InlineData("GET", "/admin/users", "web", "inbound", false, "deny-admin")]
    [InlineData("GET", "/api/orders", "billing", "inbound", false, "default")]
    [InlineData("GET", "/health", null, "inbound", true, "health")]
    [InlineData("GET", "/health", "web", "inbound", false, "default")]
    [InlineData("GET", "/admin", null, "inbound", false, "default")]
    public void Decide_Http_FirstMatchingRuleWins(string method, string path, string? caller, string listener, bool allowed, string rule)
    {
        var peer = caller switch { "web" => Web, "billing" => Billing, _ => null };

        var decision = Policy.Decide(listener, peer, Request(method, path));

        Assert.Equal(new AuthorizationDecision(allowed, rule), decision);
    }

    [Fact]
    public void Decide_ConsulFormInRule_MatchesMeshFormPeerAndHeader()
    {
        Assert.Equal(new AuthorizationDecision(true, "canary"), Policy.Decide("inbound", Billing, Request("DELETE", "/x", ("x-canary", "1"))));
        Assert.Equal(new AuthorizationDecision(false, "default"), Policy.Decide("inbound", Billing, Request("DELETE", "/x", ("x-canary", "2"))));
    }

    [Fact]
    public void Decide_Tcp_OnlyRulesWithoutHttpMatchApply()
    {
        Assert.Equal(new AuthorizationDecision(true, "billing-tcp"), Policy.Decide("db", Billing));
        // deny-admin has an HTTP match: it does not turn every TCP connection from anyone away.
        Assert.Equal(new AuthorizationDecision(false, "default"), Policy.Decide("db", Web));
        Assert.Equal(new AuthorizationDecision(false, "default"), Policy.Decide("db", null));
    }

    [Fact]
    public void Compile_NoRulesDefaultAllow_NothingToDecide()
    {
        Assert.Null(AuthorizationPolicy.Compile(new AuthorizationOptions()));
        Assert.NotNull(AuthorizationPolicy.Compile(new AuthorizationOptions { DefaultAction = "deny" }));
    }

    [Fact]
    public void Decide_EmptyFrom_MatchesAnyoneAuthenticatedOrNot()
    {
        var open = AuthorizationPolicy.Compile(new AuthorizationOptions { DefaultAction = "deny", Rules = [new AuthorizationRuleOptions { Name = "all" }] })!;

        Assert.True(open.Decide("in", null).Allowed);
        Assert.True(open.Decide("in", Web, Request("GET", "/")).Allowed);
    }
}
