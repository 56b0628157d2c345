namespace Mesh.Plugins.Abstractions.Tests.Filters;

public class FilterResultTests
{
    [Fact]
    public void Continue_IsTheDefaultValue()
    {
        var result = FilterResult.Continue;

        Assert.Equal(FilterAction.Continue, result.Action);
        Assert.Equal(default, result);
        Assert.Equal(0, result.StatusCode);
        Assert.Null(result.Body);
        Assert.Null(result.Service);
    }

    [Fact]
    public void Respond_WithBody_CarriesStatusAndBody()
    {
        var result = FilterResult.Respond(403, "forbidden");

        Assert.Equal(FilterAction.Respond, result.Action);
        Assert.Equal(403, result.StatusCode);
        Assert.Equal("forbidden", result.Body);
        Assert.Null(result.Service);
    }

    [Fact]
    public void Respond_WithoutBody_HasNullBody()
    {
        var result = FilterResult.Respond(204);

        Assert.Equal(FilterAction.Respond, result.Action);
        Assert.Equal(204, result.StatusCode);
        Assert.Null(result.Body);
    }

    [Fact]
    public void Reroute_Service_CarriesServiceOnly()
    {
        var result = FilterResult.Reroute("api-canary");

        Assert.Equal(FilterAction.Reroute, result.Action);
        Assert.Equal("api-canary", result.Service);
        Assert.Equal(0, result.StatusCode);
        Assert.Null(result.Body);
    }

    [Fact]
    public void Reroute_EmptyService_Throws()
    {
        var error = Assert.Throws<ArgumentException>(() => FilterResult.Reroute(""));

        Assert.Equal("service", error.ParamName);
    }

    [Fact]
    public void Reroute_NullService_Throws()
    {
        var error = Assert.Throws<ArgumentNullException>(() => FilterResult.Reroute(null!));

        Assert.Equal("service", error.ParamName);
    }

    [Fact]
    public void Equality_SameDecision_IsEqual()
    {
        Assert.Equal(FilterResult.Respond(429, "slow down"), FilterResult.Respond(429, "slow down"));
        Assert.NotEqual(FilterResult.Respond(429, "slow down"), FilterResult.Respond(429));
        Assert.Equal(FilterResult.Reroute("a"), FilterResult.Reroute("a"));
        Assert.NotEqual(FilterResult.Reroute("a"), FilterResult.Reroute("b"));
    }
}

public class FilterResultContract11Tests
{
    [Fact]
    public void Reroute_ServiceAndSubset_CarriesBoth()
    {
        var result = FilterResult.Reroute("api", "v2");

        Assert.Equal(FilterAction.Reroute, result.Action);
        Assert.Equal(("api", "v2"), (result.Service, result.Subset));
    }

    [Fact]
    public void Reroute_EmptySubset_Throws()
    {
        Assert.Throws<ArgumentException>(() => FilterResult.Reroute("api", ""));
    }

    [Fact]
    public void Respond_WithHeaders_CarriesThemInOrder()
    {
        var result = FilterResult.Respond(429, "slow down", [new("Retry-After", "2"), new("x-limit", "10")]);

        Assert.Equal(429, result.StatusCode);
        Assert.Equal([new KeyValuePair<string, string>("Retry-After", "2"), new("x-limit", "10")], result.Headers);
    }

    [Fact]
    public void Respond_HeadersFromADictionary_Copied()
    {
        var headers = new Dictionary<string, string> { ["WWW-Authenticate"] = "ApiKey" };

        var result = FilterResult.Respond(401, null, headers);
        headers.Clear();

        Assert.Equal("ApiKey", Assert.Single(result.Headers!).Value);
    }

    [Fact]
    public void Continue_HasNoSubsetOrHeaders()
    {
        Assert.Null(FilterResult.Continue.Subset);
        Assert.Null(FilterResult.Continue.Headers);
    }
}
