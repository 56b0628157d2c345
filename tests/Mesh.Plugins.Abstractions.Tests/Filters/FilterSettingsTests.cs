using System.Text.Json;

namespace Mesh.Plugins.Abstractions.Tests.Filters;

public class FilterSettingsTests
{
    private static FilterSettings Settings(string json) => FilterSettings.FromJson("f", json);

    [Fact]
    public void Readers_TypedValues_Read()
    {
        var settings = Settings("""{ "keys": ["a", "b"], "limit": 10, "rate": 2.5, "strict": true, "header": "x-key", "nested": { "a": 1 } }""");

        Assert.Equal(["a", "b"], settings.GetStrings("keys"));
        Assert.Equal(10, settings.GetInt64("limit", 0, 1, 100));
        Assert.Equal(2.5, settings.GetDouble("rate", 0));
        Assert.True(settings.GetBoolean("strict", false));
        Assert.Equal("x-key", settings.GetRequiredString("header"));
        Assert.Equal(JsonValueKind.Object, settings.Config.GetProperty("nested").ValueKind);
    }

    [Fact]
    public void Readers_Absent_Fallbacks()
    {
        var settings = Settings("{}");

        Assert.Empty(settings.GetStrings("keys"));
        Assert.Equal(7, settings.GetInt64("limit", 7));
        Assert.Equal("d", settings.GetString("x", "d"));
        Assert.False(settings.Has("x"));
    }

    [Fact]
    public void GetStrings_NonStringElement_ErrorNamesTheElement()
    {
        var error = Assert.Throws<FilterConfigException>(() => Settings("""{ "keys": ["a", 3] }""").GetStrings("keys"));

        Assert.Equal("keys[1]", error.Setting);
        Assert.Equal("expected a string, found a number", error.Message);
    }

    [Fact]
    public void GetInt64_OutOfRange_ErrorNamesTheSetting()
    {
        var error = Assert.Throws<FilterConfigException>(() => Settings("""{ "limit": 0 }""").GetInt64("limit", 1, min: 1));

        Assert.Equal("limit", error.Setting);
        Assert.Contains("out of range", error.Message);
    }

    [Fact]
    public void GetRequiredString_Missing_Error()
    {
        var error = Assert.Throws<FilterConfigException>(() => Settings("{}").GetRequiredString("header"));

        Assert.Equal(("header", "is required"), (error.Setting, error.Message));
    }

    [Fact]
    public void Constructor_NotAnObject_Throws()
    {
        Assert.Throws<FilterConfigException>(() => Settings("[1]"));
    }

    [Fact]
    public void Constructor_UndefinedConfig_IsEmptyObject()
    {
        var settings = new FilterSettings("f", default, "routes[0].filters[0].config");

        Assert.Equal(JsonValueKind.Object, settings.Config.ValueKind);
        Assert.Equal("routes[0].filters[0].config", settings.Path);
    }

    [Fact]
    public void ToDictionary_FlattensLikeConfiguration()
    {
        var flat = Settings("""{ "a": { "b": "x", "n": 2 }, "list": ["p", "q"], "on": true, "none": null }""").ToDictionary();

        Assert.Equal("x", flat["a:b"]);
        Assert.Equal("2", flat["A:N"]);
        Assert.Equal("q", flat["list:1"]);
        Assert.Equal("true", flat["on"]);
        Assert.Equal("", flat["none"]);
    }

    [Fact]
    public void FilterConfigException_IsAFormatException()
    {
        Assert.IsAssignableFrom<FormatException>(new FilterConfigException("x", "bad"));
    }
}
