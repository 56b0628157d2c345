namespace Mesh.Plugins.Tests.Sources;

public sealed class FilterCatalogTests
{
    private static FilterPackage Package(string id, params string[] names) =>
        new("csharp", id, id + ".dll", [.. names.Select(n => (IRequestFilterFactory)new Named(n))], []);

    [Fact]
    public void Accept_NewPackage_ItsFactoriesInTheRegistry()
    {
        var catalog = new FilterCatalog();
        var package = Package("a", "auth", "limit");

        Assert.NotNull(catalog.Propose(package, out _));
        catalog.Accept(package);

        Assert.True(catalog.Registry.TryGet("AUTH", out _));
        Assert.Same(package, catalog.Registry.PackageOf("limit"));
        Assert.Equal(PackageState.Loaded, package.State);
    }

    [Fact]
    public void Accept_NewVersionOfAUnit_OldVersionRetiredAndUnloaded()
    {
        var catalog = new FilterCatalog();
        var unloaded = 0;
        var v1 = new FilterPackage("csharp", "a", "a.dll", [new Named("auth")], [], () => unloaded++);
        catalog.Accept(v1);
        var v2 = Package("a", "auth");

        catalog.Accept(v2);

        Assert.Same(v2, catalog.Registry.PackageOf("auth"));
        Assert.Equal(PackageState.Unloaded, v1.State);
        Assert.Equal(1, unloaded);
        Assert.Same(v1, Assert.Single(catalog.Retired()));
    }

    [Fact]
    public void Propose_NameAnotherUnitPublishes_ConflictNamingThatFile()
    {
        var catalog = new FilterCatalog();
        catalog.Accept(Package("a", "auth"));

        Assert.Null(catalog.Propose(Package("b", "Auth"), out var conflict));
        Assert.Equal("filter name 'Auth' is already published by a.dll", conflict);
    }

    [Fact]
    public void Refuse_UnitWithServingVersion_KeepsServingAndShowsRefusal()
    {
        var catalog = new FilterCatalog();
        var v1 = Package("a", "auth");
        catalog.Accept(v1);
        var v2 = Package("a", "auth");

        catalog.Refuse(new FilterRefusal("csharp", "a", "a.dll", "constructor threw", DateTimeOffset.UtcNow), v2);

        Assert.Same(v1, catalog.Registry.PackageOf("auth"));
        var unit = Assert.Single(catalog.Units());
        Assert.Same(v1, unit.Loaded);
        Assert.Equal("constructor threw", unit.Refusal!.Reason);
        Assert.Equal(PackageState.Unloaded, v2.State);
    }

    [Fact]
    public void Remove_Unit_GoneFromRegistryAndRetired()
    {
        var catalog = new FilterCatalog();
        var package = Package("a", "auth");
        catalog.Accept(package);
        package.AddInstance();

        catalog.Remove("a");

        Assert.False(catalog.Registry.TryGet("auth", out _));
        Assert.Empty(catalog.Units());
        Assert.Equal(PackageState.Draining, package.State);
        package.ReleaseInstance();
        Assert.Equal(PackageState.Unloaded, package.State);
    }

    [Fact]
    public void ProposeRemoval_LeavesCatalogUnchangedUntilRemoved()
    {
        var catalog = new FilterCatalog([new Named("builtin")]);
        catalog.Accept(Package("a", "auth"));

        var without = catalog.ProposeRemoval("a");

        Assert.False(without.TryGet("auth", out _));
        Assert.True(without.TryGet("builtin", out _));
        Assert.True(catalog.Registry.TryGet("auth", out _));
    }

    private sealed class Named(string name) : IRequestFilterFactory
    {
        public string Name => name;

        public IRequestFilter Create(FilterSettings settings) => throw new NotSupportedException();
    }
}
