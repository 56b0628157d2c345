// The objects a script sees (req, req.headers, req.query, req.cookies, res, ctx.items): live, read-only views of the current call.
using Jint;
using Jint.Native;
using Jint.Native.Object;
using Jint.Runtime;
using Jint.Runtime.Descriptors;

namespace Mesh.Plugins.JavaScript;

/// <summary>
/// A view object of one engine: made once, it reads whatever request (or response) the engine is
/// running now, only when a property is read. Scripts cannot add, change or delete its properties
/// (assigning throws in strict mode), so it cannot carry anything from one call to the next; outside a
/// call it has no properties.
/// </summary>
internal abstract class JsHostObject : ObjectInstance
{
    protected JsHostObject(Engine engine, JsCall call)
        : base(engine)
    {
        Call = call;
    }

    protected JsCall Call { get; }

    /// <summary>The value of own property <paramref name="name"/>, read now; false when there is none.</summary>
    protected abstract bool TryGetValue(string name, out JsValue value);

    /// <summary>Names of the own properties now (only enumeration asks).</summary>
    protected abstract IEnumerable<string> Keys();

    public override bool Extensible => false;

    public override JsValue Get(JsValue property, JsValue receiver)
    {
        if (property is JsString name && TryGetValue(name.ToString(), out var value))
        {
            return value;
        }

        return base.Get(property, receiver);
    }

    public override PropertyDescriptor GetOwnProperty(JsValue property) =>
        property is JsString name && TryGetValue(name.ToString(), out var value)
            ? new PropertyDescriptor(value, writable: false, enumerable: true, configurable: true)
            : PropertyDescriptor.Undefined;

    public override bool HasProperty(JsValue property) =>
        (property is JsString name && TryGetValue(name.ToString(), out _)) || base.HasProperty(property);

    public override List<JsValue> GetOwnPropertyKeys(Types types = Types.String | Types.Symbol)
    {
        var keys = new List<JsValue>();
        if ((types & Types.String) != 0)
        {
            foreach (var key in Keys())
            {
                keys.Add(JsString.Create(key));
            }
        }

        return keys;
    }

    public override IEnumerable<KeyValuePair<JsValue, PropertyDescriptor>> GetOwnProperties()
    {
        foreach (var key in Keys())
        {
            if (TryGetValue(key, out var value))
            {
                yield return new(JsString.Create(key), new PropertyDescriptor(value, writable: false, enumerable: true, configurable: true));
            }
        }
    }

    public override bool Set(JsValue property, JsValue value, JsValue receiver) => false;

    public override bool Delete(JsValue property) => property is not JsString name || !TryGetValue(name.ToString(), out _);

    public override bool DefineOwnProperty(JsValue property, PropertyDescriptor desc) => false;

    public override bool PreventExtensions() => true;

    protected static JsValue Text(string? value) => value is null ? Null : JsString.Create(value);
}

/// <summary><c>req</c>: the request as the filter chain sees it so far (earlier filters' header changes and reroutes included).</summary>
internal sealed class JsRequestObject : JsHostObject
{
    private static readonly string[] Names = ["method", "scheme", "host", "path", "query", "headers", "cookies", "clientAddress", "peer", "listener", "route", "service", "setHeader", "removeHeader"];
    private readonly JsHeadersObject _headers;
    private readonly JsQueryObject _query;
    private readonly JsCookiesObject _cookies;
    private readonly JsValue _setHeader;
    private readonly JsValue _removeHeader;

    public JsRequestObject(Engine engine, JsCall call, JsValue setHeader, JsValue removeHeader)
        : base(engine, call)
    {
        _headers = new JsHeadersObject(engine, call, response: false);
        _query = new JsQueryObject(engine, call);
        _cookies = new JsCookiesObject(engine, call);
        _setHeader = setHeader;
        _removeHeader = removeHeader;
    }

    protected override bool TryGetValue(string name, out JsValue value)
    {
        var request = Call.Request;
        if (request is null)
        {
            value = Undefined;
            return false;
        }

        switch (name)
        {
            case "method":
                value = JsString.Create(request.Method);
                return true;
            case "scheme":
                value = JsString.Create(request.Scheme);
                return true;
            case "host":
                value = JsString.Create(request.Host);
                return true;
            case "path":
                value = JsString.Create(request.Path);
                return true;
            case "query":
                value = _query;
                return true;
            case "headers":
                value = _headers;
                return true;
            case "cookies":
                value = _cookies;
                return true;
            case "clientAddress":
                value = JsString.Create(request.ClientAddress);
                return true;
            case "peer":
                value = Text(request.PeerIdentity);
                return true;
            case "listener":
                value = JsString.Create(request.Listener);
                return true;
            case "route":
                value = JsString.Create(request.Route);
                return true;
            case "service":
                value = JsString.Create(request.Service);
                return true;
            case "setHeader":
                value = _setHeader;
                return true;
            case "removeHeader":
                value = _removeHeader;
                return true;
            default:
                value = Undefined;
                return false;
        }
    }

    protected override IEnumerable<string> Keys() => Call.Request is null ? [] : Names;
}

/// <summary><c>res</c> in <c>onResponse</c>: status and headers of the response about to be sent.</summary>
internal sealed class JsResponseObject : JsHostObject
{
    private static readonly string[] Names = ["status", "headers", "setHeader", "removeHeader"];
    private readonly JsHeadersObject _headers;
    private readonly JsValue _setHeader;
    private readonly JsValue _removeHeader;

    public JsResponseObject(Engine engine, JsCall call, JsValue setHeader, JsValue removeHeader)
        : base(engine, call)
    {
        _headers = new JsHeadersObject(engine, call, response: true);
        _setHeader = setHeader;
        _removeHeader = removeHeader;
    }

    protected override bool TryGetValue(string name, out JsValue value)
    {
        var response = Call.Response;
        if (response is null)
        {
            value = Undefined;
            return false;
        }

        switch (name)
        {
            case "status":
                value = JsNumber.Create(response.StatusCode);
                return true;
            case "headers":
                value = _headers;
                return true;
            case "setHeader":
                value = _setHeader;
                return true;
            case "removeHeader":
                value = _removeHeader;
                return true;
            default:
                value = Undefined;
                return false;
        }
    }

    protected override IEnumerable<string> Keys() => Call.Response is null ? [] : Names;
}

/// <summary><c>req.headers</c> or <c>res.headers</c>: lower-case name → value (repeated headers joined with <c>", "</c>).</summary>
internal sealed class JsHeadersObject(Engine engine, JsCall call, bool response) : JsHostObject(engine, call)
{
    protected override bool TryGetValue(string name, out JsValue value)
    {
        string? text;
        if (response)
        {
            text = Call.Response is { } r ? JoinValues(r.Headers, name) : null;
        }
        else if (Call.Request is { } request)
        {
            var values = request.GetHeaderValues(name);
            text = values.Count switch
            {
                0 => null,
                1 => values[0],
                _ => string.Join(", ", values),
            };
        }
        else
        {
            text = null;
        }

        value = text is null ? Undefined : JsString.Create(text);
        return text is not null;
    }

    protected override IEnumerable<string> Keys()
    {
        var headers = response ? Call.Response?.Headers : Call.Request?.Headers;
        if (headers is null)
        {
            return [];
        }

        var names = new List<string>();
        foreach (var (name, _) in headers)
        {
            var lower = name.ToLowerInvariant();
            if (!names.Contains(lower))
            {
                names.Add(lower);
            }
        }

        return names;
    }

    private static string? JoinValues(IEnumerable<KeyValuePair<string, string>> headers, string name)
    {
        string? result = null;
        foreach (var (key, value) in headers)
        {
            if (string.Equals(key, name, StringComparison.OrdinalIgnoreCase))
            {
                result = result is null ? value : result + ", " + value;
            }
        }

        return result;
    }
}

/// <summary><c>req.query</c>: parameter name → its first value, decoded.</summary>
internal sealed class JsQueryObject(Engine engine, JsCall call) : JsHostObject(engine, call)
{
    protected override bool TryGetValue(string name, out JsValue value)
    {
        var text = Call.Request?.GetQuery(name);
        value = text is null ? Undefined : JsString.Create(text);
        return text is not null;
    }

    protected override IEnumerable<string> Keys()
    {
        var query = Call.Request?.QueryString;
        if (string.IsNullOrEmpty(query))
        {
            return [];
        }

        var names = new List<string>();
        foreach (var (name, _) in Microsoft.AspNetCore.WebUtilities.QueryHelpers.ParseQuery(query))
        {
            names.Add(name);
        }

        return names;
    }
}

/// <summary><c>req.cookies</c>: cookie name → value.</summary>
internal sealed class JsCookiesObject(Engine engine, JsCall call) : JsHostObject(engine, call)
{
    protected override bool TryGetValue(string name, out JsValue value)
    {
        var text = Call.Request?.GetCookie(name);
        value = text is null ? Undefined : JsString.Create(text);
        return text is not null;
    }

    protected override IEnumerable<string> Keys()
    {
        var names = new List<string>();
        if (Call.Request is not { } request)
        {
            return names;
        }

        foreach (var header in request.GetHeaderValues("cookie"))
        {
            foreach (var part in header.Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
            {
                var equals = part.IndexOf('=', StringComparison.Ordinal);
                var name = equals < 0 ? part : part[..equals].Trim();
                if (name.Length > 0 && !names.Contains(name) && request.GetCookie(name) is not null)
                {
                    names.Add(name);
                }
            }
        }

        return names;
    }
}

/// <summary>
/// <c>ctx.items</c>: the request's item bag, shared with C# filters of the same chain. It holds strings,
/// numbers, booleans and null; values of other types that C# filters store read as <c>undefined</c>.
/// </summary>
internal sealed class JsItemsObject(Engine engine, JsCall call) : JsHostObject(engine, call)
{
    protected override bool TryGetValue(string name, out JsValue value)
    {
        value = Undefined;
        if (Call.Items is not { } items || !items.TryGetValue(name, out var item))
        {
            return false;
        }

        value = item switch
        {
            null => Null,
            string text => JsString.Create(text),
            bool flag => flag ? JsBoolean.True : JsBoolean.False,
            double number => JsNumber.Create(number),
            int number => JsNumber.Create(number),
            long number => JsNumber.Create(number),
            float number => JsNumber.Create(number),
            decimal number => JsNumber.Create(number),
            _ => Undefined,
        };
        return true;
    }

    protected override IEnumerable<string> Keys() => Call.Items is { } items ? [.. items.Keys] : [];

    public override bool Set(JsValue property, JsValue value, JsValue receiver)
    {
        if (Call.Items is not { } items || property is not JsString name)
        {
            return false;
        }

        items[name.ToString()] = value.Type switch
        {
            Types.String => value.ToString(),
            Types.Number => value.AsNumber(),
            Types.Boolean => value.AsBoolean(),
            Types.Null or Types.Undefined => null,
            _ => throw new JavaScriptException(Engine.Intrinsics.TypeError, $"ctx.items.{name} must be a string, number, boolean or null (store JSON.stringify(value) for more)"),
        };
        return true;
    }

    public override bool DefineOwnProperty(JsValue property, PropertyDescriptor desc) =>
        desc.IsDataDescriptor() && Set(property, desc.Value, this);

    public override bool Delete(JsValue property)
    {
        if (Call.Items is { } items && property is JsString name)
        {
            items.Remove(name.ToString());
        }

        return true;
    }
}
