// What may be written upstream: tokens, field values, the first invalid request header, and queries made valid origin-form.
using System.Text;
using Mesh.Sidecar.Upstream;
using Microsoft.AspNetCore.Http;

namespace Mesh.Sidecar.Tests.Upstream;

public class HttpSyntaxTests
{
    [Theory]
    [InlineData("x-custom", true)]
    [InlineData("!#$%&'*+-.^_`|~09AZaz", true)]
    [InlineData("", false)]
    [InlineData("bad name", false)]
    [InlineData("bad:name", false)]
    [InlineData("bad\r\nx-injected", false)]
    [InlineData("caf\u00e9", false)]
    [InlineData("a\"b", false)]
    [InlineData("(comment)", false)]
    public void IsToken_CharsAndBytes_AgreeWithRfc9110(string name, bool expected)
    {
        Assert.Equal(expected, HttpSyntax.IsToken(name));
        Assert.Equal(expected, HttpSyntax.IsToken(Encoding.UTF8.GetBytes(name)));
    }

    [Theory]
    [InlineData("plain value, with spaces; and=signs", true)]
    [InlineData("", true)]
    [InlineData("a\rb", false)]
    [InlineData("a\nb", false)]
    [InlineData("a\0b", false)]
    [InlineData("tab\tis fine", true)]
    public void IsFieldValue_RefusesOnlyCrLfAndNul(string value, bool expected)
    {
        Assert.Equal(expected, HttpSyntax.IsFieldValue(value));
    }

    [Fact]
    public void FindInvalidRequestHeader_AllValid_ReturnsNull()
    {
        var headers = new HeaderDictionary
        {
            ["x-a"] = "1",
            [":authority"] = "example.test",
            [":path"] = "/",
            [":method"] = "GET",
            [":scheme"] = "http",
            [":protocol"] = "websocket",
            ["x-many"] = new(["1", "2"]),
        };

        Assert.Null(HttpSyntax.FindInvalidRequestHeader(headers));
    }

    [Theory]
    [InlineData("bad name", "v")]
    [InlineData(":unknown", "v")]
    [InlineData("x-crlf", "a\r\nx-injected: 1")]
    [InlineData("x-nul", "a\0b")]
    public void FindInvalidRequestHeader_BadNameOrValue_NamesIt(string name, string value)
    {
        var headers = new HeaderDictionary { ["x-fine"] = "ok", [name] = value };

        Assert.Equal(name, HttpSyntax.FindInvalidRequestHeader(headers));
    }

    [Fact]
    public void FindInvalidRequestHeader_BadSecondValue_NamesIt()
    {
        var headers = new HeaderDictionary { ["x-list"] = new(["fine", "a\nb"]) };

        Assert.Equal("x-list", HttpSyntax.FindInvalidRequestHeader(headers));
    }

    [Theory]
    [InlineData("?a=1&b=%20")]
    [InlineData("?path=/x/y&q=a:b@c,d;e=f!$'()*+~._-")]
    [InlineData("?ids[]=1&ids[]=2")]
    [InlineData("?e=%C3%A9%41")]
    [InlineData("")]
    public void OriginFormQuery_AlreadyValid_ReturnsTheSameString(string query)
    {
        Assert.Same(query, HttpSyntax.OriginFormQuery(query));
    }

    [Theory]
    [InlineData("?q=a b", "?q=a%20b")]
    [InlineData("?q=\"x\"", "?q=%22x%22")]
    [InlineData("?q=<x>{y}|z\\^`", "?q=%3Cx%3E%7By%7D%7Cz%5C%5E%60")]
    [InlineData("?q=a#b", "?q=a%23b")]
    [InlineData("?q=100%", "?q=100%25")]
    [InlineData("?q=%4", "?q=%254")]
    [InlineData("?q=%G1", "?q=%25G1")]
    [InlineData("?q=%41 %zz", "?q=%41%20%25zz")]
    [InlineData("?q=%41%42 ", "?q=%41%42%20")]
    [InlineData("?q=caf\u00e9", "?q=caf%C3%A9")]
    [InlineData("?q=\u65e5", "?q=%E6%97%A5")]
    [InlineData("?q=\ud83d\ude00x", "?q=%F0%9F%98%80x")]
    public void OriginFormQuery_CharactersAQueryCannotHold_ArePercentEncodedAsUtf8(string query, string expected)
    {
        Assert.Equal(expected, HttpSyntax.OriginFormQuery(query));
    }

    [Fact]
    public void OriginFormQuery_LoneSurrogate_BecomesTheReplacementCharacter()
    {
        // As System.Uri encodes it on the YARP path.
        Assert.Equal("?q=%EF%BF%BDx", HttpSyntax.OriginFormQuery("?q=" + '\ud83d' + "x"));
    }
}
