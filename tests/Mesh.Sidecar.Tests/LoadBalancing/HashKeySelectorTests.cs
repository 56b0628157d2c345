using System.Net;
using Mesh.Sidecar.Configuration;
using Mesh.Sidecar.LoadBalancing;

namespace Mesh.Sidecar.Tests.LoadBalancing;

public class HashKeySelectorTests
{
    [Fact]
    public void Compute_HeaderPresent_HashesFirstValue()
    {
        var selector = new HashKeySelector(new HashKeyOptions { Source = HashSources.Header, Name = "x-user-id" });
        var context = new DefaultHttpContext();
        context.Request.Headers["X-User-Id"] = new(["42", "43"]);

        Assert.Equal(StableHash.Of("42"), selector.Compute(context));
    }

    [Fact]
    public void Compute_HeaderMissingOrEmpty_ReturnsNull()
    {
        var selector = new HashKeySelector(new HashKeyOptions { Source = HashSources.Header, Name = "x-user-id" });
        var context = new DefaultHttpContext();

        Assert.Null(selector.Compute(context));

        context.Request.Headers["x-user-id"] = "";
        Assert.Null(selector.Compute(context));
    }

    [Fact]
    public void Compute_DifferentHeaderValues_GiveDifferentHashes()
    {
        var selector = new HashKeySelector(new HashKeyOptions { Source = HashSources.Header, Name = "x-user-id" });
        var first = new DefaultHttpContext();
        first.Request.Headers["x-user-id"] = "42";
        var second = new DefaultHttpContext();
        second.Request.Headers["x-user-id"] = "43";

        Assert.NotEqual(selector.Compute(first), selector.Compute(second));
    }

    [Fact]
    public void Compute_CookiePresent_HashesCookieValue()
    {
        var selector = new HashKeySelector(new HashKeyOptions { Source = HashSources.Cookie, Name = "session" });
        var context = new DefaultHttpContext();
        context.Request.Headers.Cookie = "theme=dark; session=abc123";

        Assert.Equal(StableHash.Of("abc123"), selector.Compute(context));
    }

    [Fact]
    public void Compute_CookieMissingOrEmpty_ReturnsNull()
    {
        var selector = new HashKeySelector(new HashKeyOptions { Source = HashSources.Cookie, Name = "session" });
        var context = new DefaultHttpContext();
        context.Request.Headers.Cookie = "theme=dark";

        Assert.Null(selector.Compute(context));

        var empty = new DefaultHttpContext();
        empty.Request.Headers.Cookie = "session=";
        Assert.Null(selector.Compute(empty));
    }

    [Fact]
    public void Compute_ClientAddress_HashesAddressBytes()
    {
        var selector = new HashKeySelector(new HashKeyOptions { Source = HashSources.ClientAddress });
        var context = new DefaultHttpContext();
        context.Connection.RemoteIpAddress = IPAddress.Parse("127.0.0.5");

        Assert.Equal(StableHash.Of(IPAddress.Parse("127.0.0.5")), selector.Compute(context));
        Assert.Equal(StableHash.Of(new byte[] { 127, 0, 0, 5 }), selector.Compute(context));
    }

    [Fact]
    public void Compute_ClientAddressIpv4MappedToIpv6_HashesAsIpv4()
    {
        var selector = new HashKeySelector(new HashKeyOptions { Source = HashSources.ClientAddress });
        var mapped = new DefaultHttpContext();
        mapped.Connection.RemoteIpAddress = IPAddress.Parse("::ffff:127.0.0.5");
        var plain = new DefaultHttpContext();
        plain.Connection.RemoteIpAddress = IPAddress.Parse("127.0.0.5");

        Assert.Equal(selector.Compute(plain), selector.Compute(mapped));
    }

    [Fact]
    public void Compute_NoClientAddress_ReturnsNull()
    {
        var selector = new HashKeySelector(new HashKeyOptions { Source = HashSources.ClientAddress });

        Assert.Null(selector.Compute(new DefaultHttpContext()));
    }

    [Fact]
    public void Compute_ClientAddressSource_IgnoresHeaders()
    {
        var selector = new HashKeySelector(new HashKeyOptions { Source = HashSources.ClientAddress, Name = "x-user-id" });
        var context = new DefaultHttpContext();
        context.Request.Headers["x-user-id"] = "42";
        context.Connection.RemoteIpAddress = IPAddress.Loopback;

        Assert.Equal(StableHash.Of(IPAddress.Loopback), selector.Compute(context));
    }
}
