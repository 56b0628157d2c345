namespace Mesh.Plugins.Abstractions.Tests.Filters;

/// <summary>A view written against contract 1.0 (the original members only) still works with every 1.1 member.</summary>
public class RequestContextDefaultsTests
{
    [Fact]
    public void NewMembers_OnA10View_HaveHarmlessDefaults()
    {
        IRequestContext context = new Contract10View();

        Assert.Equal("http", context.Scheme);
        Assert.Equal("", context.QueryString);
        Assert.Null(context.GetQuery("a"));
        Assert.Null(context.GetCookie("a"));
        Assert.Null(context.PeerIdentity);
        Assert.Null(context.Subset);
        Assert.Equal("outbound", context.Direction);
        Assert.Equal(["v"], context.GetHeaderValues("x"));
        Assert.Empty(context.GetHeaderValues("missing"));
        Assert.Empty(context.Headers);
    }

    [Fact]
    public void Items_OnA10View_OneBagPerView()
    {
        IRequestContext first = new Contract10View();
        IRequestContext second = new Contract10View();

        first.Items["user"] = "alice";

        Assert.Equal("alice", first.Items["user"]);
        Assert.Empty(second.Items);
    }

    [Fact]
    public void Factory10_CreateWithSettings_GetsFlattenedPairs()
    {
        IRequestFilterFactory factory = new Factory10();

        factory.Create(FilterSettings.FromJson("f", """{ "a": { "b": 1 } }"""));

        Assert.Equal("1", ((Factory10)factory).Seen!["a:b"]);
    }

    [Fact]
    public void FactoryWithNeitherCreate_Throws()
    {
        IRequestFilterFactory factory = new NoCreate();

        Assert.Throws<NotSupportedException>(() => factory.Create(new Dictionary<string, string>()));
    }

    private sealed class Contract10View : IRequestContext
    {
        public string Method => "GET";

        public string Host => "h";

        public string Path => "/";

        public string Route => "r";

        public string Service => "s";

        public string ClientAddress => "127.0.0.1";

        public string? GetHeader(string name) => name == "x" ? "v" : null;

        public void SetHeader(string name, string value)
        {
        }

        public void RemoveHeader(string name)
        {
        }
    }

    private sealed class Factory10 : IRequestFilterFactory
    {
        public IReadOnlyDictionary<string, string>? Seen { get; private set; }

        public string Name => "f";

        public IRequestFilter Create(IReadOnlyDictionary<string, string> settings)
        {
            Seen = settings;
            return null!;
        }
    }

    private sealed class NoCreate : IRequestFilterFactory
    {
        public string Name => "n";
    }
}
