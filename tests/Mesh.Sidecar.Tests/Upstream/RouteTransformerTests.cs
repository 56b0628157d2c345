// A route's transforms as the upstream sees them: the stripped path, request headers set, added and removed, response headers.
using Mesh.Sidecar.Configuration;
using Mesh.Sidecar.Upstream;
using Microsoft.AspNetCore.Http;

namespace Mesh.Sidecar.Tests.Upstream;

public class RouteTransformerTests
{
    [Theory]
    [InlineData("/api", "/api", "/")]
    [InlineData("/api", "/api/", "/")]
    [InlineData("/api", "/api/orders/7", "/orders/7")]
    [InlineData("/api", "/apix", "/apix")]
    [InlineData("/api", "/apix/orders", "/apix/orders")]
    [InlineData("/api", "/other/api", "/other/api")]
    [InlineData("/api/", "/api/orders", "/orders")]
    [InlineData("/api/", "/api", "/")]
    [InlineData("/api/v1", "/api/v1/users", "/users")]
    [InlineData("/api/v1", "/api/v2/users", "/api/v2/users")]
    [InlineData("/", "/api/orders", "/api/orders")]
    [InlineData("", "/api/orders", "/api/orders")]
    [InlineData(null, "/api/orders", "/api/orders")]
    public void UpstreamPath_StripPrefix_RemovesOnlyAWholeLeadingSegment(string? prefix, string path, string expected)
    {
        var transformer = new RouteTransformer(new TransformOptions { StripPrefix = prefix });

        Assert.Equal(expected, transformer.UpstreamPath(Request(path)).Value);
    }

    [Fact]
    public void UpstreamPath_StripPrefixIsCaseSensitive()
    {
        var transformer = new RouteTransformer(new TransformOptions { StripPrefix = "/api" });

        Assert.Equal("/API/orders", transformer.UpstreamPath(Request("/API/orders")).Value);
    }

    [Fact]
    public async Task TransformRequestAsync_StripPrefix_SendsTheRestOfThePathAndTheQuery()
    {
        var transformer = new RouteTransformer(new TransformOptions { StripPrefix = "/api" });
        var context = Context("/api/orders/7", "?page=2");
        using var proxyRequest = new HttpRequestMessage();

        await transformer.TransformRequestAsync(context, proxyRequest, "http://127.0.0.1:8081", CancellationToken.None);

        Assert.Equal("http://127.0.0.1:8081/orders/7?page=2", proxyRequest.RequestUri!.OriginalString);
    }

    // A request with a body has two header collections, and HttpHeaders.Remove throws for a name
    // of the other one: removing Authorization (or setting Content-Type) failed every such request
    // on the YARP path before.
    [Fact]
    public async Task TransformRequestAsync_RequestHeaders_SetReplacesAddAppendsRemoveDrops()
    {
        var transformer = new RouteTransformer(new TransformOptions
        {
            RequestHeaders = new HeaderTransformOptions
            {
                Set = new Dictionary<string, string> { ["x-env"] = "prod", ["Content-Language"] = "en" },
                Add = new Dictionary<string, string> { ["x-tag"] = "mesh", ["Content-Encoding"] = "identity" },
                Remove = ["x-secret", "Content-Location", "Authorization"],
            },
        });
        var context = Context("/orders", "");
        context.Request.Headers["x-env"] = "dev";
        context.Request.Headers["x-tag"] = "client";
        context.Request.Headers["x-secret"] = "s3cr3t";
        context.Request.Headers["x-kept"] = "yes";
        context.Request.Headers.Authorization = "Bearer client-token";
        using var proxyRequest = new HttpRequestMessage { Method = HttpMethod.Post, Content = new ByteArrayContent([1]) };
        proxyRequest.Content.Headers.TryAddWithoutValidation("Content-Language", "fr");
        proxyRequest.Content.Headers.TryAddWithoutValidation("Content-Location", "/secret");

        await transformer.TransformRequestAsync(context, proxyRequest, "http://127.0.0.1:8081", CancellationToken.None);

        Assert.Equal(["prod"], proxyRequest.Headers.GetValues("x-env"));
        Assert.Equal(["client", "mesh"], proxyRequest.Headers.GetValues("x-tag"));
        Assert.False(proxyRequest.Headers.Contains("x-secret"));
        Assert.False(proxyRequest.Headers.Contains("Authorization"));
        Assert.Equal(["yes"], proxyRequest.Headers.GetValues("x-kept"));
        // Content headers travel on the content: set, added and removed there too.
        Assert.Equal(["en"], proxyRequest.Content.Headers.GetValues("Content-Language"));
        Assert.Equal(["identity"], proxyRequest.Content.Headers.GetValues("Content-Encoding"));
        Assert.False(proxyRequest.Content.Headers.Contains("Content-Location"));
        // Without a strip prefix the forwarder builds the address from the client's path.
        Assert.Null(proxyRequest.RequestUri);
    }

    [Fact]
    public void ChangesRequestHeaders_TrueOnlyWhenTheRouteSetsAddsOrRemoves()
    {
        Assert.False(RouteTransformer.None.ChangesRequestHeaders);
        Assert.False(new RouteTransformer(new TransformOptions
        {
            ResponseHeaders = new HeaderTransformOptions { Set = new Dictionary<string, string> { ["x"] = "1" } },
        }).ChangesRequestHeaders);
        Assert.True(RequestTransforms(set: ("x", "1")).ChangesRequestHeaders);
        Assert.True(RequestTransforms(add: ("x", "1")).ChangesRequestHeaders);
        Assert.True(RequestTransforms(remove: "x").ChangesRequestHeaders);
    }

    [Fact]
    public void DropsRequestHeader_RemovedOrSetNames_AnyCase()
    {
        var transformer = new RouteTransformer(new TransformOptions
        {
            RequestHeaders = new HeaderTransformOptions
            {
                Set = new Dictionary<string, string> { ["X-Env"] = "prod" },
                Add = new Dictionary<string, string> { ["x-tag"] = "mesh" },
                Remove = ["X-Secret"],
            },
        });

        Assert.True(transformer.DropsRequestHeader("x-secret"));
        Assert.True(transformer.DropsRequestHeader("X-SECRET"));
        Assert.True(transformer.DropsRequestHeader("x-env"));
        Assert.False(transformer.DropsRequestHeader("x-tag"));
        Assert.False(transformer.DropsRequestHeader("x-other"));
        Assert.False(RouteTransformer.None.DropsRequestHeader("x-secret"));
    }

    [Fact]
    public void ApplyResponseHeaders_SetReplacesAddAppendsRemoveDrops()
    {
        var transformer = new RouteTransformer(new TransformOptions
        {
            ResponseHeaders = new HeaderTransformOptions
            {
                Set = new Dictionary<string, string> { ["x-served-by"] = "mesh" },
                Add = new Dictionary<string, string> { ["x-tag"] = "mesh" },
                Remove = ["Server"],
            },
        });
        var headers = new HeaderDictionary
        {
            ["x-served-by"] = "app",
            ["x-tag"] = "app",
            ["Server"] = "Kestrel",
            ["x-kept"] = "yes",
        };

        transformer.ApplyResponseHeaders(headers);

        Assert.Equal("mesh", headers["x-served-by"].ToString());
        Assert.Equal("app,mesh", headers["x-tag"].ToString());
        Assert.False(headers.ContainsKey("Server"));
        Assert.Equal("yes", headers["x-kept"].ToString());
    }

    [Theory]
    [InlineData("set")]
    [InlineData("add")]
    [InlineData("remove")]
    public void ApplyResponseHeaders_EachKindAlone_IsApplied(string kind)
    {
        var options = kind switch
        {
            "set" => new HeaderTransformOptions { Set = new Dictionary<string, string> { ["x-a"] = "mesh" } },
            "add" => new HeaderTransformOptions { Add = new Dictionary<string, string> { ["x-a"] = "mesh" } },
            _ => new HeaderTransformOptions { Remove = ["x-a"] },
        };
        var transformer = new RouteTransformer(new TransformOptions { ResponseHeaders = options });
        var headers = new HeaderDictionary { ["x-a"] = "app" };

        transformer.ApplyResponseHeaders(headers);

        var expected = kind switch { "set" => "mesh", "add" => "app,mesh", _ => "" };
        Assert.Equal(expected, headers["x-a"].ToString());
        Assert.Equal(kind != "remove", headers.ContainsKey("x-a"));
    }

    [Fact]
    public void ApplyResponseHeaders_NoResponseTransforms_LeavesHeadersAlone()
    {
        var transformer = RequestTransforms(set: ("x-a", "mesh"), remove: "x-b");
        var headers = new HeaderDictionary { ["x-a"] = "app", ["x-b"] = "app" };

        transformer.ApplyResponseHeaders(headers);

        Assert.Equal("app", headers["x-a"]);
        Assert.Equal("app", headers["x-b"]);
    }

    private static RouteTransformer RequestTransforms((string, string)? set = null, (string, string)? add = null, string? remove = null) =>
        new(new TransformOptions
        {
            RequestHeaders = new HeaderTransformOptions
            {
                Set = set is { } s ? new Dictionary<string, string> { [s.Item1] = s.Item2 } : new Dictionary<string, string>(),
                Add = add is { } a ? new Dictionary<string, string> { [a.Item1] = a.Item2 } : new Dictionary<string, string>(),
                Remove = remove is null ? [] : [remove],
            },
        });

    private static HttpRequest Request(string path) => Context(path, "").Request;

    private static DefaultHttpContext Context(string path, string query)
    {
        var context = new DefaultHttpContext();
        context.Request.Method = "GET";
        context.Request.Scheme = "http";
        context.Request.Host = new HostString("example.test");
        context.Request.Path = path;
        context.Request.QueryString = new QueryString(query);
        return context;
    }

    [Fact]
    public async Task TransformResponseAsync_ResponseHeaderTransforms_ApplyOnTheYarpPath()
    {
        var transformer = new RouteTransformer(new TransformOptions
        {
            ResponseHeaders = new HeaderTransformOptions { Set = new Dictionary<string, string> { ["x-served-by"] = "mesh" } },
        });
        var context = new DefaultHttpContext();
        using var upstream = new HttpResponseMessage(System.Net.HttpStatusCode.OK) { Content = new ByteArrayContent([]) };
        upstream.Headers.TryAddWithoutValidation("x-served-by", "app");

        var copyBody = await transformer.TransformResponseAsync(context, upstream, CancellationToken.None);

        Assert.True(copyBody);
        Assert.Equal("mesh", context.Response.Headers["x-served-by"].ToString());
    }
}
