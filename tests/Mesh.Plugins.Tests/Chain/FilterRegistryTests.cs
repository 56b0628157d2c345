namespace Mesh.Plugins.Tests.Chain;

public class FilterRegistryTests
{
    [Theory]
    [InlineData("rate-limit")]
    [InlineData("RATE-LIMIT")]
    [InlineData("Rate-Limit")]
    public void TryGet_NameInAnyCase_FindsFactory(string name)
    {
        var factory = new NamedFactory("rate-limit");
        var registry = new FilterRegistry([factory, new NamedFactory("auth")]);

        Assert.True(registry.TryGet(name, out var found));
        Assert.Same(factory, found);
    }

    [Fact]
    public void TryGet_UnknownName_ReturnsFalse()
    {
        var registry = new FilterRegistry([new NamedFactory("auth")]);

        Assert.False(registry.TryGet("rate-limit", out _));
    }

    [Fact]
    public void TryGet_EmptyRegistry_ReturnsFalse()
    {
        var registry = new FilterRegistry([]);

        Assert.False(registry.TryGet("auth", out _));
        Assert.Empty(registry.Names);
    }

    [Fact]
    public void Names_ListsEveryRegisteredFactory()
    {
        var registry = new FilterRegistry([new NamedFactory("auth"), new NamedFactory("rate-limit")]);

        Assert.Equal(["auth", "rate-limit"], registry.Names.Order(StringComparer.Ordinal));
    }

    [Fact]
    public void Constructor_SameNameInOtherCase_LaterFactoryWins()
    {
        var builtIn = new NamedFactory("auth");
        var plugin = new NamedFactory("AUTH");

        var registry = new FilterRegistry([builtIn, plugin]);

        Assert.True(registry.TryGet("auth", out var found));
        Assert.Same(plugin, found);
        Assert.Single(registry.Names);
    }

    [Fact]
    public void TryGet_Null_Throws()
    {
        Assert.Throws<ArgumentNullException>(() => new FilterRegistry([]).TryGet(null!, out _));
    }

    [Fact]
    public void Constructor_NullFactories_Throws()
    {
        Assert.Throws<ArgumentNullException>(() => new FilterRegistry(null!));
    }

    [Fact]
    public void TryGet_FoundFactory_CreatesFilter()
    {
        var registry = new FilterRegistry([new NamedFactory("auth")]);

        Assert.True(registry.TryGet("auth", out var factory));
        Assert.IsType<NoopFilter>(factory.Create(new Dictionary<string, string>()));
    }

    private sealed class NamedFactory(string name) : IRequestFilterFactory
    {
        public string Name => name;

        public IRequestFilter Create(IReadOnlyDictionary<string, string> settings) => new NoopFilter();
    }

    private sealed class NoopFilter : IRequestFilter
    {
        public ValueTask<FilterResult> OnRequestAsync(IRequestContext context, CancellationToken cancellationToken) => ValueTask.FromResult(FilterResult.Continue);
    }
}
