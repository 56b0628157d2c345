using System.Runtime.CompilerServices;
using Mesh.Plugins.Loading;
using Mesh.Tests;

namespace Mesh.Plugins.Tests.Loading;

public sealed class PluginAssemblyLoaderTests : IDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("mesh-loader-").FullName;

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    private PluginLoadResult Load(string name, byte[] image)
    {
        var path = Path.Combine(_directory, name + ".dll");
        File.WriteAllBytes(path, image);
        return PluginAssemblyLoader.Load(path, path, image, PluginAssemblyLoader.Hash(image));
    }

    [Fact]
    public async Task Load_PluginBuiltAgainstContract10_LoadsAndRunsWithFlattenedSettings()
    {
        var result = Load("Legacy", PluginCompiler.Compile("Legacy", TestPlugins.Contract10, contract: PluginCompiler.Contract10()));

        var package = Assert.IsType<FilterPackage>(result.Package);
        Assert.Equal("1.0.0", package.ContractVersion);
        var factory = Assert.Single(package.RequestFactories);
        Assert.Equal("legacy", factory.Name);
        // The 1.1 host hands a JSON config to a 1.0 factory as the string pairs it expects.
        var filter = factory.Create(FilterSettings.FromJson("legacy", """{ "greeting": "hello", "targets": ["a", "b"] }"""));
        var context = new TestRequestContext();
        var decision = await filter.OnRequestAsync(context, CancellationToken.None);

        Assert.Equal("hello", context.GetHeader("x-greeting"));
        Assert.Equal(FilterResult.Reroute("b"), decision);
        context.SetHeader("x-deny", "1");
        Assert.Equal(FilterResult.Respond(403, "denied"), await filter.OnRequestAsync(context, CancellationToken.None));
        package.Retire();
    }

    [Fact]
    public void Load_CurrentContract_PublishesFactoriesWithVersions()
    {
        var result = Load("Stamp", PluginCompiler.Compile("Stamp", TestPlugins.Stamp("v7"), version: "3.2.1-beta"));

        var package = Assert.IsType<FilterPackage>(result.Package);
        Assert.Equal("3.2.1-beta", package.Version);
        Assert.Equal($"{PluginInspector.HostContract.Major}.{PluginInspector.HostContract.Minor}.0", package.ContractVersion);
        Assert.Equal(["stamp"], package.FactoryNames);
        Assert.Equal(PluginAssemblyLoader.SourceName, package.Source);
        // The factory is the host's interface type: the contract is shared, not loaded twice.
        Assert.IsAssignableFrom<IRequestFilterFactory>(package.RequestFactories[0]);
        package.Retire();
    }

    [Fact]
    public void Load_ConnectionFilterFactory_Published()
    {
        var result = Load("Conn", PluginCompiler.Compile("Conn", TestPlugins.Connection));

        var package = Assert.IsType<FilterPackage>(result.Package);
        Assert.Empty(package.RequestFactories);
        Assert.Equal("parity", Assert.Single(package.ConnectionFactories).Name);
        package.Retire();
    }

    [Fact]
    public void Load_NotDotNet_RefusedWithReason()
    {
        var result = Load("Garbage", [.. Enumerable.Range(0, 5000).Select(i => (byte)(i * 7))]);

        Assert.Null(result.Package);
        Assert.Contains("not a .NET assembly", result.Refusal);
    }

    [Fact]
    public void Load_ConstructorThrows_RefusedNamingTypeAndMessage()
    {
        var result = Load("Broken", PluginCompiler.Compile("Broken", TestPlugins.ConstructorThrows));

        Assert.Null(result.Package);
        Assert.Equal("constructor of Broken.BrokenFactory threw InvalidOperationException: no license file", result.Refusal);
    }

    [Fact]
    public void Load_NoFactory_Refused()
    {
        var result = Load("Nothing", PluginCompiler.Compile("Nothing", TestPlugins.NoFactory));

        Assert.Null(result.Package);

        Assert.Contains("no public IRequestFilterFactory or IConnectionFilterFactory", result.Refusal);
    }

    [Fact]
    public void Load_FactoryImplementingNoCreate_Refused()
    {
        var result = Load("Lazy", PluginCompiler.Compile("Lazy", TestPlugins.NoCreate));

        Assert.Contains("implements neither Create(FilterSettings) nor Create(IReadOnlyDictionary<string, string>)", result.Refusal);
    }

    [Fact]
    public void Load_InvalidFactoryName_Refused()
    {
        var result = Load("Bad", PluginCompiler.Compile("Bad", TestPlugins.BadName));

        Assert.Contains("invalid Name 'has spaces'", result.Refusal);
    }

    [Theory]
    [InlineData("2.0.0.0")]
    [InlineData("1.9.0.0")]
    [InlineData("0.9.0.0")]
    public void Load_IncompatibleContractVersion_RefusedWithBothVersions(string built)
    {
        var result = Load("Future", PluginCompiler.Compile("Future", TestPlugins.Contract10, contract: PluginCompiler.Contract10(built)));

        Assert.Null(result.Package);
        var version = Version.Parse(built);
        Assert.Contains($"built against Mesh.Plugins.Abstractions {version.Major}.{version.Minor}; this sidecar has {PluginInspector.HostContract.Major}.{PluginInspector.HostContract.Minor}", result.Refusal);
    }

    [Fact]
    public void Load_NoContractReference_Refused()
    {
        var result = Load("Plain", PluginCompiler.Compile("Plain", "namespace Plain; public sealed class C { }", contract: null!));

        Assert.Contains("does not reference Mesh.Plugins.Abstractions", result.Refusal);
    }

    [Fact]
    public void Load_TruncatedAssembly_ReportedIncompleteNotRefused()
    {
        var image = PluginCompiler.Compile("Stamp", TestPlugins.Stamp("v1"));

        var result = Load("Stamp", image[..(image.Length / 2)]);

        Assert.True(result.Incomplete);
        Assert.Null(result.Package);
    }

    [Fact]
    public void Retire_LastRequestEnds_LoadContextIsCollected()
    {
        var holder = new InstanceHolder();
        var package = LoadAndCreate(holder);
        Assert.True(Enter(holder));

        // Retired while a request still holds the filter: it keeps working and the context stays.
        Retire(holder, package);
        Assert.Equal(PackageState.Draining, package.State);
        Assert.True(RunsAndContinues(holder));
        Collect(package);
        Assert.True(package.LoadContext!.IsAlive);

        // The request ends: the filter closes, the package unloads and the runtime collects its context.
        Assert.True(LeaveAndDrop(holder));
        Assert.Equal(PackageState.Unloaded, package.State);
        Collect(package);
        Assert.False(package.LoadContext!.IsAlive);
    }

    // Plugin objects are only touched in these helpers (not inlined), so no stack slot of the test
    // method keeps the unloaded context alive.
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static bool Enter(InstanceHolder holder) => holder.Instance!.TryEnter();

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void Retire(InstanceHolder holder, FilterPackage package)
    {
        holder.Instance!.Retire();
        package.Retire();
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static bool LeaveAndDrop(InstanceHolder holder)
    {
        var instance = holder.Instance!;
        instance.Leave();
        holder.Instance = null;
        return instance.IsClosed && !instance.TryEnter();
    }

    private sealed class InstanceHolder
    {
        public FilterInstance? Instance { get; set; }
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private FilterPackage LoadAndCreate(InstanceHolder holder)
    {
        var package = Load("Stamp", PluginCompiler.Compile("Stamp", TestPlugins.Stamp("v1"))).Package!;
        var filter = package.RequestFactories[0].Create(FilterSettings.FromJson("stamp", "{}"));
        holder.Instance = new FilterInstance(filter, package, "k");
        return package;
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static bool RunsAndContinues(InstanceHolder holder)
    {
        var context = new TestRequestContext();
        var pending = ((IRequestFilter)holder.Instance!.Filter).OnRequestAsync(context, CancellationToken.None);
        return pending.IsCompletedSuccessfully && pending.Result.Action == FilterAction.Continue && context.GetHeader("x-stamp") == "v1";
    }

    // Bounded: the runtime collects an unloaded context within a few collections once nothing refers to it.
    private static void Collect(FilterPackage package)
    {
        for (var i = 0; i < 20 && package.LoadContext!.IsAlive; i++)
        {
            GC.Collect();
            GC.WaitForPendingFinalizers();
        }
    }
}
