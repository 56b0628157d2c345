using System.Text.Json.Nodes;
using static Mesh.Sidecar.Tests.Configuration.TestConfigs;

namespace Mesh.Sidecar.Tests.Configuration;

public class ConfigSchemaTests
{
    [Fact]
    public void Check_UnknownKeyAtRoot_ListsRootKeys()
    {
        var result = With(c => c["bogus"] = 1);

        var error = SingleError(result, "bogus", "unknown key; known keys here: ");
        Assert.StartsWith("unknown key; known keys here: ", error.Message, StringComparison.Ordinal);
        foreach (var key in new[] { "service", "admin", "listeners", "routes", "services", "logging", "performance" })
        {
            Assert.Contains(key, KnownKeys(error.Message));
        }
    }

    [Fact]
    public void Check_UnknownKeyInListElement_ReportsIndexedPathAndListenerKeys()
    {
        var result = With(c => Listener(0, c)["bogus"] = "x");

        var error = SingleError(result, "listeners[0].bogus", "unknown key; known keys here: ");
        var known = KnownKeys(error.Message);
        foreach (var key in new[] { "name", "address", "port", "direction", "protocol" })
        {
            Assert.Contains(key, known);
        }

        Assert.DoesNotContain("routes", known);
    }

    [Fact]
    public void Check_UnknownKeyDeepInRoute_ReportsFullPath()
    {
        var result = With(c => Match(c)["path"]!["suffix"] = "/x");

        var error = SingleError(result, "routes[0].match.path.suffix", "unknown key; known keys here: ");
        Assert.Equal(["prefix", "exact", "pattern"], KnownKeys(error.Message));
    }

    [Fact]
    public void Check_UnknownKeyInService_ReportsServicePath()
    {
        var result = With(c => Api(c)["weight"] = 3);

        var error = SingleError(result, "services.api.weight", "unknown key; known keys here: ");
        Assert.Contains("endpoints", KnownKeys(error.Message));
    }

    [Fact]
    public void Check_KeyInOtherCase_ReportsCamelCasePath()
    {
        var result = With(c =>
        {
            c.Remove("admin");
            c["Admin"] = new JsonObject { ["Port"] = "abc" };
        });

        SingleError(result, "admin.port", "'abc' is not a whole number");
    }

    [Fact]
    public void Check_TextWhereWholeNumberBelongs_ReportsNotAWholeNumber()
    {
        var result = With(c => c["admin"]!["port"] = "abc");

        var error = SingleError(result, "admin.port", "'abc' is not a whole number");
        Assert.Equal("admin.port: 'abc' is not a whole number", error.ToString());
    }

    [Fact]
    public void Check_FractionWhereWholeNumberBelongs_ReportsNotAWholeNumber()
    {
        var result = With(c => Endpoint(c)["weight"] = 1.5);

        SingleError(result, "services.api.endpoints[0].weight", "'1.5' is not a whole number");
    }

    [Fact]
    public void Check_TextWhereBooleanBelongs_ReportsNotTrueOrFalse()
    {
        var result = With(c => c["logging"] = new JsonObject { ["accessLog"] = "yes" });

        var error = SingleError(result, "logging.accessLog", "'yes' is not true or false");
        Assert.Equal("logging.accessLog: 'yes' is not true or false", error.ToString());
    }

    [Fact]
    public void Check_NumberWhereNullableBooleanBelongs_ReportsNotTrueOrFalse()
    {
        var result = With(c => Match(c)["headers"] = new JsonArray(new JsonObject { ["name"] = "x-a", ["present"] = 1 }));

        SingleError(result, "routes[0].match.headers[0].present", "'1' is not true or false");
    }

    [Fact]
    public void Check_ObjectWhereWholeNumberBelongs_ReportsFoundObject()
    {
        var result = With(c => c["admin"]!["port"] = new JsonObject { ["value"] = 1 });

        var error = SingleError(result, "admin.port", "expected a whole number, found an object or list");
        Assert.Equal("admin.port: expected a whole number, found an object or list", error.ToString());
    }

    [Fact]
    public void Check_ListWhereStringBelongs_ReportsFoundList()
    {
        var result = With(c => c["service"]!["name"] = new JsonArray("a", "b"));

        SingleError(result, "service.name", "expected a string, found an object or list");
    }

    [Fact]
    public void Check_ObjectWhereListBelongs_ReportsListExpected()
    {
        var result = With(c => c["listeners"] = new JsonObject { ["out"] = new JsonObject { ["name"] = "out", ["port"] = 15001 } });

        var error = SingleError(result, "listeners.out", "expected a list, found an object");
        Assert.Equal("listeners.out: expected a list, found an object", error.ToString());
    }

    [Fact]
    public void Check_TextWhereListBelongs_ReportsListExpected()
    {
        var result = With(c => Match(c)["methods"] = "GET");

        var error = SingleError(result, "routes[0].match.methods", "expected a list, found 'GET'");
        Assert.Equal("routes[0].match.methods: expected a list, found 'GET'", error.ToString());
    }

    [Fact]
    public void Check_TextWhereObjectBelongs_ReportsObjectExpected()
    {
        var result = With(c => c["admin"] = "localhost");

        var error = SingleError(result, "admin", "expected an object, found 'localhost'");
        Assert.Equal("admin: expected an object, found 'localhost'", error.ToString());
    }

    [Fact]
    public void Check_EmptyObjectsAndLists_MeanDefaults()
    {
        var result = With(c =>
        {
            c["logging"] = new JsonObject();
            c["performance"] = new JsonObject();
            Match(c)["methods"] = new JsonArray();
            Route(c)["transforms"] = new JsonObject();
        });

        Assert.True(result.IsValid, string.Join("\n", result.Errors));
        Assert.Equal("Information", result.Options!.Logging.Level);
        Assert.Empty(result.Options.Routes[0].Match.Methods);
    }

    private static string[] KnownKeys(string message) =>
        message["unknown key; known keys here: ".Length..].Split(", ");
}
