// One sandboxed Jint engine running one filter entry's script: hardened realm, view objects, limits per call.
using System.Diagnostics;
using System.Globalization;
using System.Text.RegularExpressions;
using Jint;
using Jint.Native;
using Jint.Native.Object;
using Jint.Runtime;
using Jint.Runtime.Interop;

namespace Mesh.Plugins.JavaScript;

/// <summary>
/// A Jint engine prepared for one filter entry (script, limits, <c>config</c>). An engine runs one call
/// at a time (pooled by <see cref="JsEnginePool"/>). Its realm is hardened once, when it is made:
/// <list type="bullet">
/// <item>no CLR interop, no <c>eval</c> or <c>new Function</c>, no timers, network, files or modules
/// (Jint has none unless a host adds them), and no <c>ShadowRealm</c>, <c>SharedArrayBuffer</c>,
/// <c>Atomics</c>, <c>WeakRef</c>, <c>FinalizationRegistry</c>, <c>Temporal</c>;</item>
/// <item>the global object and every built-in reachable from it are frozen, and <c>RegExp</c>'s legacy
/// statics (<c>RegExp.$1</c>, which would carry the last match to the next call) are gone;</item>
/// <item>the script's top level runs inside a function, never on the global object.</item>
/// </list>
/// Together with the script's shared-or-fresh top level (<see cref="JsScript"/>) this means a call can
/// leave nothing behind that the next call (on this engine or any other) could see.
/// </summary>
internal sealed class JsEngine : IDisposable
{
    private static readonly string[] RemovedGlobals = ["eval", "ShadowRealm", "SharedArrayBuffer", "Atomics", "WeakRef", "FinalizationRegistry", "Temporal"];
    private static readonly string[] RegExpLegacy = ["$1", "$2", "$3", "$4", "$5", "$6", "$7", "$8", "$9", "input", "$_", "lastMatch", "$&", "lastParen", "$+", "leftContext", "$`", "rightContext", "$'"];
    private static readonly string[] ManagedHeaders = ["content-length", "transfer-encoding", "connection", "keep-alive", "proxy-connection", "te", "trailer", "upgrade"];

    private readonly Engine _engine;
    private readonly JsScript _script;
    private readonly JsFilterHost _host;
    private readonly string _route;
    private readonly CallDeadline _deadline;
    private readonly JsCall _call = new();
    private readonly JsValue[] _handlerArgs = new JsValue[2];
    private readonly JsValue[] _wrapperArgs = new JsValue[3];
    private readonly HashSet<ObjectInstance> _tameGetters = new(ReferenceEqualityComparer.Instance);
    private readonly JsValue _request;
    private readonly JsValue _response;
    private readonly JsValue _context;
    private readonly JsValue _wrapper;
    private readonly JsValue _onRequest;
    private readonly JsValue _onResponse;
    private readonly GlobalSnapshot _clean;

    private JsEngine(JsScript script, JsFilterLimits limits, string configJson, JsFilterHost host, string route)
    {
        _script = script;
        _host = host;
        _route = route;
        _deadline = new CallDeadline(limits.Timeout);
        var deadline = _deadline;
        _engine = new Engine(options =>
        {
            options.Strict = true;
            options.Interop.Enabled = false;
            options.Host.StringCompilationAllowed = false;
            options.Culture = CultureInfo.InvariantCulture;
            options.TimeZone = TimeZoneInfo.Utc;
            options.Constraints.StackOverflowGuard = true;
            options.Constraints.RegexTimeout = limits.Timeout;
            options.Constraints.Constraints.Add(deadline);
            options.LimitRecursion(limits.RecursionLimit);
            options.MaxStatements(limits.MaxStatements);
            options.LimitMemory(limits.MemoryLimitBytes);
        });

        Harden();
        var parse = _engine.Global.Get("JSON").AsObject().Get("parse");
        var config = Freeze(_engine.Call(parse, JsValue.Undefined, [JsString.Create(configJson)]));
        _request = new JsRequestObject(_engine, _call, Function("setHeader", 2, (_, a) => SetHeader(response: false, a)), Function("removeHeader", 1, (_, a) => RemoveHeader(response: false, a)));
        _response = new JsResponseObject(_engine, _call, Function("setHeader", 2, (_, a) => SetHeader(response: true, a)), Function("removeHeader", 1, (_, a) => RemoveHeader(response: true, a)));
        _context = new JsContextObject(_engine, _call, config, new JsItemsObject(_engine, _call), this);
        _clean = _engine.Advanced.CaptureGlobalSnapshot();

        // The file itself: the wrapper function, then (shared top level) its declarations once, frozen.
        _deadline.Arm();
        try
        {
            _wrapper = _engine.Evaluate(script.Wrapped);
            _wrapperArgs[0] = 2;
            _wrapperArgs[1] = JsValue.Undefined;
            _wrapperArgs[2] = JsValue.Undefined;
            var loaded = _engine.Call(_wrapper, JsValue.Undefined, _wrapperArgs).AsArray();
            _onRequest = loaded.Get(0);
            _onResponse = loaded.Get(1);
            _engine.Advanced.ProcessTasks();
            if (!_onRequest.IsCallable())
            {
                throw new JsScriptException(script.Name, "onRequest is not a function");
            }

            if (script.SharedTopLevel)
            {
                Freeze(loaded);
            }
        }
        catch (Exception ex)
        {
            // Described here, not in an exception filter: Jint unwinds its own state in the second pass.
            if (Describe(ex) is not { } failure)
            {
                throw;
            }

            throw new JsScriptException(failure.Message + " (while running the file's top level)", ex);
        }
        finally
        {
            _deadline.Disarm();
        }
    }

    /// <summary>True when the file defines <c>onResponse</c>.</summary>
    public bool HasOnResponse => _onResponse.IsCallable();

    /// <summary>Makes an engine for <paramref name="script"/>; throws <see cref="JsScriptException"/> when the file's top level fails.</summary>
    public static JsEngine Create(JsScript script, JsFilterLimits limits, string configJson, JsFilterHost host, string route) =>
        new(script, limits, configJson, host, route);

    /// <summary>
    /// Runs <c>onRequest(req, ctx)</c> and the promise jobs it queued, within the limits. Throws
    /// <see cref="JsCallException"/> when the script throws or hits a limit.
    /// </summary>
    public FilterResult OnRequest(IRequestContext context)
    {
        _call.BeginRequest(context);
        return Run(_onRequest, 0, _request);
    }

    /// <summary>Runs <c>onResponse(res, ctx)</c> and the promise jobs it queued, within the limits.</summary>
    public void OnResponse(IResponseContext context)
    {
        _call.BeginResponse(context);
        Run(_onResponse, 1, _response);
    }

    // One call of a handler (kind 0: onRequest, 1: onResponse) with its view and ctx, then the promise
    // jobs it queued, within the limits; returns the decision, and the call's state is ended whatever happens.
    private FilterResult Run(JsValue handler, int kind, JsValue view)
    {
        _deadline.Arm();
        try
        {
            if (_script.SharedTopLevel)
            {
                _handlerArgs[0] = view;
                _handlerArgs[1] = _context;
                _engine.Call(handler, JsValue.Undefined, _handlerArgs);
            }
            else
            {
                _wrapperArgs[0] = kind;
                _wrapperArgs[1] = view;
                _wrapperArgs[2] = _context;
                _engine.Call(_wrapper, JsValue.Undefined, _wrapperArgs);
            }

            _engine.Advanced.ProcessTasks();
            return _call.Decision;
        }
        catch (Exception ex)
        {
            throw Describe(ex) ?? new JsCallException(null, $"{_script.Name}: {ex.GetType().Name}: {ex.Message}", ex);
        }
        finally
        {
            _deadline.Disarm();
            _call.End();
        }
    }

    /// <summary>
    /// After a call that threw a script error: unwinds the engine and drops promise jobs the call left
    /// queued, so the next call starts clean. (An engine stopped by a limit is not reused at all.)
    /// </summary>
    public void Recover()
    {
        _engine.Advanced.ResetCallStack();
        _engine.Advanced.RestoreGlobalSnapshot(_clean);
    }

    public void Dispose() => _engine.Dispose();

    // --- ctx and header functions (called by the script, inside its call) -------------------------

    internal JsValue Route(JsValue[] arguments)
    {
        RequireDeciding("route");
        var service = Argument(arguments, 0);
        if (!service.IsString() || service.ToString().Length == 0)
        {
            throw TypeError("ctx.route(service, subset): service must be a non-empty string");
        }

        var subset = Argument(arguments, 1);
        if (subset.IsNull() || subset.IsUndefined())
        {
            _call.Decision = FilterResult.Reroute(service.ToString());
        }
        else if (subset.IsString() && subset.ToString().Length > 0)
        {
            _call.Decision = FilterResult.Reroute(service.ToString(), subset.ToString());
        }
        else
        {
            throw TypeError("ctx.route(service, subset): subset must be a non-empty string when given");
        }

        return JsValue.Undefined;
    }

    internal JsValue Respond(JsValue[] arguments)
    {
        RequireDeciding("respond");
        var status = Argument(arguments, 0);
        if (!status.IsNumber() || status.AsNumber() is var number && (number != Math.Floor(number) || number < 200 || number > 599))
        {
            throw TypeError("ctx.respond(status, body, headers): status must be a whole number from 200 to 599");
        }

        var body = Argument(arguments, 1);
        string? text;
        if (body.IsNull() || body.IsUndefined())
        {
            text = null;
        }
        else if (body.IsString() || body.IsNumber() || body.IsBoolean())
        {
            text = TypeConverter.ToString(body);
        }
        else
        {
            throw TypeError("ctx.respond(status, body, headers): body must be a string (use JSON.stringify for objects)");
        }

        var headers = Argument(arguments, 2);
        if (headers.IsNull() || headers.IsUndefined())
        {
            _call.Decision = FilterResult.Respond((int)status.AsNumber(), text);
            return JsValue.Undefined;
        }

        if (headers is not ObjectInstance obj)
        {
            throw TypeError("ctx.respond(status, body, headers): headers must be an object of name: value");
        }

        var list = new List<KeyValuePair<string, string>>();
        foreach (var key in obj.GetOwnPropertyKeys(Types.String))
        {
            var property = obj.GetOwnProperty(key);
            if (!property.Enumerable)
            {
                continue;
            }

            var name = key.ToString();
            var value = HeaderValue(obj.Get(key), name);
            CheckHeader(name, value, "ctx.respond");
            list.Add(new(name, value));
        }

        _call.Decision = FilterResult.Respond((int)status.AsNumber(), text, list);
        return JsValue.Undefined;
    }

    internal JsValue Log(JsValue[] arguments)
    {
        var message = Argument(arguments, 0);
        _host.ScriptLog(_script.Name, _route, message is ObjectInstance ? "[object]" : TypeConverter.ToString(message));
        return JsValue.Undefined;
    }

    internal JsValue RateLimit(JsValue[] arguments)
    {
        var key = Argument(arguments, 0);
        if (!key.IsString() && !key.IsNumber())
        {
            throw TypeError("ctx.rateLimit(key, { rate, burst }): key must be a string");
        }

        if (Argument(arguments, 1) is not ObjectInstance options)
        {
            throw TypeError("ctx.rateLimit(key, { rate, burst }): give the limit as { rate, burst }");
        }

        var rate = TypeConverter.ToNumber(options.Get("rate"));
        if (!(rate > 0) || double.IsInfinity(rate))
        {
            throw TypeError("ctx.rateLimit(key, { rate, burst }): rate (tokens per second) must be a positive number");
        }

        var burstValue = options.Get("burst");
        var burst = burstValue.IsUndefined() ? Math.Max(1, rate) : TypeConverter.ToNumber(burstValue);
        if (!(burst >= 1) || double.IsInfinity(burst))
        {
            throw TypeError("ctx.rateLimit(key, { rate, burst }): burst must be a number of at least 1");
        }

        return _host.RateLimiter.TryTake(_script.Name, TypeConverter.ToString(key), rate, burst) ? JsBoolean.True : JsBoolean.False;
    }

    internal static JsValue Hash(JsValue[] arguments) =>
        JsNumber.Create(JsHash.Fnv1a(TypeConverter.ToString(Argument(arguments, 0))));

    private JsValue SetHeader(bool response, JsValue[] arguments)
    {
        var nameValue = Argument(arguments, 0);
        if (!nameValue.IsString())
        {
            throw TypeError("setHeader(name, value): name must be a string");
        }

        var name = nameValue.ToString();
        var value = HeaderValue(Argument(arguments, 1), name);
        CheckHeader(name, value, response ? "res.setHeader" : "req.setHeader");
        if (response)
        {
            (_call.Response ?? throw TypeError("res is only usable during onResponse")).SetHeader(name, value);
        }
        else
        {
            (_call.Request ?? throw TypeError("req is only usable during onRequest")).SetHeader(name, value);
        }

        return JsValue.Undefined;
    }

    private JsValue RemoveHeader(bool response, JsValue[] arguments)
    {
        var nameValue = Argument(arguments, 0);
        if (!nameValue.IsString())
        {
            throw TypeError("removeHeader(name): name must be a string");
        }

        var name = nameValue.ToString();
        CheckHeader(name, "", response ? "res.removeHeader" : "req.removeHeader");
        if (response)
        {
            (_call.Response ?? throw TypeError("res is only usable during onResponse")).RemoveHeader(name);
        }
        else
        {
            (_call.Request ?? throw TypeError("req is only usable during onRequest")).RemoveHeader(name);
        }

        return JsValue.Undefined;
    }

    private string HeaderValue(JsValue value, string name)
    {
        if (value.IsString() || value.IsNumber() || value.IsBoolean())
        {
            return TypeConverter.ToString(value);
        }

        throw TypeError($"header '{name}': the value must be a string");
    }

    // Header names are RFC 9110 tokens and values printable ASCII, so no filter can split a header
    // or a message; framing headers stay the sidecar's.
    private void CheckHeader(string name, string value, string where)
    {
        if (name.Length == 0)
        {
            throw TypeError($"{where}: a header name cannot be empty");
        }

        foreach (var c in name)
        {
            if (c > 0x7E || c <= 0x20 || "\"(),/:;<=>?@[\\]{}".Contains(c, StringComparison.Ordinal))
            {
                throw TypeError($"{where}: '{name}' is not a valid header name");
            }
        }

        foreach (var c in value)
        {
            if ((c < 0x20 && c != '\t') || c > 0x7E)
            {
                throw TypeError($"{where}: the value of '{name}' must be printable ASCII (no line breaks)");
            }
        }

        foreach (var managed in ManagedHeaders)
        {
            if (string.Equals(name, managed, StringComparison.OrdinalIgnoreCase))
            {
                throw TypeError($"{where}: '{name}' is managed by the sidecar");
            }
        }
    }

    private void RequireDeciding(string member)
    {
        if (!_call.Deciding)
        {
            throw TypeError($"ctx.{member} can only be called during onRequest");
        }
    }

    private static JsValue Argument(JsValue[] arguments, int index) => index < arguments.Length ? arguments[index] : JsValue.Undefined;

    private JavaScriptException TypeError(string message) => new(_engine.Intrinsics.TypeError, message);

    internal JsValue Function(string name, int length, Func<JsValue, JsValue[], JsValue> body) =>
        Freeze(new ClrFunction(_engine, name, body, length));

    // --- failures ------------------------------------------------------------------------------------

    // What a failed call tells the chain: which limit (if any), and file:line:column with the error.
    private JsCallException? Describe(Exception exception)
    {
        switch (exception)
        {
            case JsCallException or JsScriptException:
                return null;
            case TimeoutException or RegexMatchTimeoutException:
                return Limit(JsLimit.Time, $"ran past its time limit of {_deadline.Timeout.TotalMilliseconds.ToString(CultureInfo.InvariantCulture)} ms");
            case StatementsCountOverflowException:
                return Limit(JsLimit.Statements, "ran more statements than its limit allows");
            case MemoryLimitExceededException:
                return Limit(JsLimit.Memory, "allocated more memory than its limit allows");
            case RecursionDepthOverflowException or InsufficientExecutionStackException:
                return Limit(JsLimit.Recursion, "nested calls deeper than its recursion limit allows");
            case JavaScriptException script:
            {
                var error = ErrorText(script.Error);
                if (error.StartsWith("RangeError: Maximum call stack size exceeded", StringComparison.Ordinal))
                {
                    return Limit(JsLimit.Recursion, "exhausted the stack");
                }

                var at = script.Location.Start.Line > 0
                    ? JsScript.Position(_script.Name, JsScript.FileLine(script.Location.Start.Line), script.Location.Start.Column)
                    : _script.Name;
                return new JsCallException(null, $"{at}: {error}", exception);
            }

            case JintException:
                return new JsCallException(null, $"{_script.Name}: {exception.Message}", exception);
            default:
                return null;
        }

        JsCallException Limit(JsLimit limit, string what) => new(limit, $"{_script.Name} {what}", exception);
    }

    // "Name: message" of a thrown value, reading only data properties (and the built-in prototypes'
    // own accessors) so that no getter of the script runs outside its call.
    private string ErrorText(JsValue error)
    {
        if (error is not ObjectInstance obj)
        {
            return error.IsSymbol() ? "Symbol" : TypeConverter.ToString(error);
        }

        var name = Plain(obj, "name") ?? "Error";
        var message = Plain(obj, "message");
        return string.IsNullOrEmpty(message) ? name : name + ": " + message;
    }

    private string? Plain(ObjectInstance obj, string property)
    {
        for (var current = obj; current is not null; current = current.Prototype)
        {
            var descriptor = current.GetOwnProperty(property);
            if (descriptor == Jint.Runtime.Descriptors.PropertyDescriptor.Undefined)
            {
                continue;
            }

            if (descriptor.IsDataDescriptor())
            {
                return descriptor.Value.IsString() ? descriptor.Value.ToString() : null;
            }

            return descriptor.Get is ObjectInstance getter && _tameGetters.Contains(getter)
                ? _engine.Call(getter, current).ToString()
                : null;
        }

        return null;
    }

    // --- hardening -------------------------------------------------------------------------------------

    private void Harden()
    {
        var global = _engine.Global;
        foreach (var name in RemovedGlobals)
        {
            global.Delete(name);
        }

        var regExp = global.Get("RegExp").AsObject();
        foreach (var name in RegExpLegacy)
        {
            regExp.Delete(name);
        }

        // With the prototypes frozen, "obj.toString = f" or "this.name = 'MyError'" on an object that
        // inherits the member would fail (the "override mistake"); for the members code commonly sets,
        // an accessor does what the assignment would have done.
        var objectPrototype = _engine.Intrinsics.Object.Get("prototype").AsObject();
        foreach (var name in (string[])["constructor", "toString", "valueOf", "toLocaleString"])
        {
            Tame(objectPrototype, name);
        }

        foreach (var error in (string[])["Error", "EvalError", "RangeError", "ReferenceError", "SyntaxError", "TypeError", "URIError", "AggregateError"])
        {
            var prototype = global.Get(error).AsObject().Get("prototype").AsObject();
            foreach (var name in (string[])["name", "message", "constructor", "toString"])
            {
                Tame(prototype, name);
            }
        }

        Freeze(global);
    }

    private void Tame(ObjectInstance prototype, string name)
    {
        var descriptor = prototype.GetOwnProperty(name);
        if (descriptor == Jint.Runtime.Descriptors.PropertyDescriptor.Undefined || !descriptor.IsDataDescriptor())
        {
            return;
        }

        var value = descriptor.Value;
        var getter = new ClrFunction(_engine, "get " + name, (_, _) => value);
        var setter = new ClrFunction(_engine, "set " + name, (self, arguments) =>
        {
            if (self is not ObjectInstance target || ReferenceEquals(target, prototype)
                || !target.DefineOwnProperty(name, new Jint.Runtime.Descriptors.PropertyDescriptor(Argument(arguments, 0), writable: true, enumerable: true, configurable: true)))
            {
                throw TypeError($"Cannot assign to read only property '{name}'");
            }

            return JsValue.Undefined;
        });
        _tameGetters.Add(getter);
        var accessor = new JsObject(_engine);
        accessor.Set("get", getter);
        accessor.Set("set", setter);
        accessor.Set("enumerable", descriptor.Enumerable ? JsBoolean.True : JsBoolean.False);
        accessor.Set("configurable", JsBoolean.False);
        _engine.Call(_engine.Intrinsics.Object.Get("defineProperty"), JsValue.Undefined, [prototype, JsString.Create(name), accessor]);
    }

    /// <summary>Freezes <paramref name="root"/> and every object reachable from it (properties, accessors, prototypes).</summary>
    private JsValue Freeze(JsValue root)
    {
        var freeze = _engine.Intrinsics.Object.Get("freeze");
        var seen = new HashSet<ObjectInstance>(ReferenceEqualityComparer.Instance);
        var stack = new Stack<ObjectInstance>();
        if (root is ObjectInstance first)
        {
            stack.Push(first);
        }

        while (stack.Count > 0)
        {
            var obj = stack.Pop();
            if (obj is JsHostObject || !seen.Add(obj))
            {
                continue;
            }

            foreach (var key in obj.GetOwnPropertyKeys())
            {
                var descriptor = obj.GetOwnProperty(key);
                Push(descriptor.IsDataDescriptor() ? descriptor.Value : null);
                Push(descriptor.Get);
                Push(descriptor.Set);
            }

            if (obj.Prototype is { } prototype)
            {
                stack.Push(prototype);
            }

            _engine.Call(freeze, JsValue.Undefined, [obj]);
        }

        return root;

        void Push(JsValue? value)
        {
            if (value is ObjectInstance obj)
            {
                stack.Push(obj);
            }
        }
    }

    /// <summary>
    /// The call's time limit, checked between statements like Jint's own but spanning the whole call:
    /// the handler and the promise jobs it queued (Jint would start a new budget for each).
    /// </summary>
    private sealed class CallDeadline(TimeSpan timeout) : Constraint
    {
        private readonly long _ticks = (long)(timeout.TotalSeconds * Stopwatch.Frequency);
        private long _deadline;

        public TimeSpan Timeout => timeout;

        public override bool IsAmortizable => true;

        public void Arm() => _deadline = Stopwatch.GetTimestamp() + _ticks;

        public void Disarm() => _deadline = 0;

        public override void Check()
        {
            var deadline = _deadline;
            if (deadline != 0 && Stopwatch.GetTimestamp() >= deadline)
            {
                throw new TimeoutException();
            }
        }

        public override void Reset()
        {
        }
    }
}

/// <summary><c>ctx</c>: config, items and the functions that decide, log, rate-limit and hash.</summary>
internal sealed class JsContextObject : JsHostObject
{
    private static readonly string[] Names = ["config", "items", "route", "respond", "log", "rateLimit", "hash"];
    private readonly JsValue _config;
    private readonly JsValue _items;
    private readonly JsValue _route;
    private readonly JsValue _respond;
    private readonly JsValue _log;
    private readonly JsValue _rateLimit;
    private readonly JsValue _hash;

    public JsContextObject(Engine engine, JsCall call, JsValue config, JsValue items, JsEngine owner)
        : base(engine, call)
    {
        _config = config;
        _items = items;
        _route = owner.Function("route", 2, (_, a) => owner.Route(a));
        _respond = owner.Function("respond", 3, (_, a) => owner.Respond(a));
        _log = owner.Function("log", 1, (_, a) => owner.Log(a));
        _rateLimit = owner.Function("rateLimit", 2, (_, a) => owner.RateLimit(a));
        _hash = owner.Function("hash", 1, static (_, a) => JsEngine.Hash(a));
    }

    protected override bool TryGetValue(string name, out JsValue value)
    {
        value = name switch
        {
            "config" => _config,
            "items" => _items,
            "route" => _route,
            "respond" => _respond,
            "log" => _log,
            "rateLimit" => _rateLimit,
            "hash" => _hash,
            _ => Undefined,
        };
        return !value.IsUndefined();
    }

    protected override IEnumerable<string> Keys() => Names;
}

/// <summary>A call that failed: the script threw, or (with <see cref="Limit"/>) a hard limit stopped it.</summary>
internal sealed class JsCallException : Exception
{
    public JsCallException(JsLimit? limit, string message, Exception? inner)
        : base(message, inner)
    {
        Limit = limit;
    }

    public JsCallException()
    {
    }

    public JsCallException(string message)
        : base(message)
    {
    }

    public JsCallException(string message, Exception innerException)
        : base(message, innerException)
    {
    }

    /// <summary>The limit hit; null for an error the script threw.</summary>
    public JsLimit? Limit { get; }
}
