// One version of a JavaScript filter file: parsed once (Engine.PrepareScript), checked, wrapped, ready for any engine.
using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using Acornima;
using Acornima.Ast;
using Jint;

namespace Mesh.Plugins.JavaScript;

/// <summary>
/// A filter file parsed once and shared by every engine that runs it (a prepared script is immutable).
/// The file's top level becomes the body of a function, so nothing it declares lands on the global
/// object, and each call can get a fresh top level when it needs one:
/// <list type="bullet">
/// <item>A <em>shared</em> top level declares only functions and constants of plain data. It runs once
/// per engine; its values are then frozen, and no code can reassign its functions (checked here), so a
/// call cannot leave anything behind for the next.</item>
/// <item>Any other top level (<c>let</c>, <c>var</c>, <c>new Set(...)</c>, classes, calls) runs again
/// for every call, so whatever one call changes is gone before the next.</item>
/// </list>
/// </summary>
internal sealed class JsScript
{
    /// <summary>Names of the wrapper's parameters; a file cannot use them as top-level names.</summary>
    private const string Prefix = "(function (__mesh_phase, __mesh_a, __mesh_b) {\n";

    private JsScript(string name, string path, string hash, Prepared<Script> wrapped, string? freshReason, bool declaresOnResponse)
    {
        Name = name;
        Path = path;
        Hash = hash;
        Wrapped = wrapped;
        FreshReason = freshReason;
        DeclaresOnResponse = declaresOnResponse;
    }

    /// <summary>The file name, extension included: the filter's name.</summary>
    public string Name { get; }

    /// <summary>The file's full path.</summary>
    public string Path { get; }

    /// <summary>SHA-256 of the file's bytes, hex.</summary>
    public string Hash { get; }

    /// <summary>The file wrapped in a function of (phase, a, b): phase 0 runs <c>onRequest(a, b)</c>, 1 <c>onResponse(a, b)</c>, 2 returns the handlers and top-level values.</summary>
    public Prepared<Script> Wrapped { get; }

    /// <summary>Null when the top level is shared (runs once per engine, then frozen); otherwise why it runs again per call.</summary>
    public string? FreshReason { get; }

    /// <summary>True when the top level runs once per engine.</summary>
    public bool SharedTopLevel => FreshReason is null;

    /// <summary>True when the top level declares <c>onResponse</c>.</summary>
    public bool DeclaresOnResponse { get; }

    /// <summary>The file's lines are one further down in <see cref="Wrapped"/>: a position there, as the file's.</summary>
    public static int FileLine(int wrappedLine) => Math.Max(1, wrappedLine - 1);

    /// <summary>
    /// Parses the file (<paramref name="content"/>, UTF-8) on its own (so errors carry the file's own positions, and a file
    /// that is not a complete script cannot reach outside the wrapper), checks what it declares, and
    /// prepares the wrapped program. Throws <see cref="JsScriptException"/> with <c>file:line:column: message</c>.
    /// </summary>
    public static JsScript Load(string path, byte[] content)
    {
        ArgumentNullException.ThrowIfNull(path);
        ArgumentNullException.ThrowIfNull(content);
        var name = System.IO.Path.GetFileName(path);
        var hash = Convert.ToHexString(SHA256.HashData(content));
        string text;
        try
        {
            text = new UTF8Encoding(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true).GetString(content);
        }
        catch (DecoderFallbackException)
        {
            throw new JsScriptException(name, "is not UTF-8 text");
        }

        if (text.Length > 0 && text[0] == '\uFEFF')
        {
            text = text[1..];
        }

        Script program;
        try
        {
            program = Engine.PrepareScript(text, name, strict: true).Program ?? throw new JsScriptException(name, "could not be parsed");
        }
        catch (ScriptPreparationException ex) when (ex.InnerException is ParseErrorException parse)
        {
            throw new JsScriptException(Position(name, parse.LineNumber, parse.Column) + ": " + parse.Description);
        }

        var names = new List<string>();
        var declared = Declarations(program, out var declaresOnResponse);
        if (!declared.Contains("onRequest"))
        {
            throw new JsScriptException(name, "defines no onRequest: write function onRequest(req, ctx) { ... } at the top level");
        }

        var freshReason = WhyFresh(program, names);
        foreach (var reserved in declared)
        {
            if (reserved.StartsWith("__mesh", StringComparison.Ordinal))
            {
                throw new JsScriptException(name, $"declares '{reserved}'; names starting with __mesh are reserved");
            }
        }

        var wrapped = new StringBuilder(text.Length + 400)
            .Append(Prefix)
            .Append(text)
            .Append("\n;if (__mesh_phase === 0) return onRequest(__mesh_a, __mesh_b);")
            .Append("\nif (__mesh_phase === 1) return onResponse(__mesh_a, __mesh_b);")
            .Append("\nreturn [typeof onRequest === 'function' ? onRequest : undefined, typeof onResponse === 'function' ? onResponse : undefined, [")
            .AppendJoin(", ", freshReason is null ? names : [])
            .Append("]];\n})")
            .ToString();
        try
        {
            var prepared = Engine.PrepareScript(wrapped, name, strict: true);
            return new JsScript(name, path, hash, prepared, freshReason, declaresOnResponse);
        }
        catch (ScriptPreparationException ex) when (ex.InnerException is ParseErrorException parse)
        {
            // Valid on its own but not as a function body (a top-level name clashing with the wrapper's).
            throw new JsScriptException(Position(name, FileLine(parse.LineNumber), parse.Column) + ": " + parse.Description);
        }
    }

    /// <summary><c>file:line:column</c>, the column 1-based as editors show it.</summary>
    public static string Position(string name, int line, int column) =>
        string.Create(CultureInfo.InvariantCulture, $"{name}:{line}:{column + 1}");

    // Names the top level binds (functions, variables, classes), and whether one is onResponse.
    private static HashSet<string> Declarations(Script program, out bool declaresOnResponse)
    {
        var names = new HashSet<string>(StringComparer.Ordinal);
        foreach (var statement in program.Body)
        {
            switch (statement)
            {
                case FunctionDeclaration { Id: { } id }:
                    names.Add(id.Name);
                    break;
                case ClassDeclaration { Id: { } id }:
                    names.Add(id.Name);
                    break;
                case VariableDeclaration declaration:
                    foreach (var declarator in declaration.Declarations)
                    {
                        CollectIdentifiers(declarator.Id, names);
                    }

                    break;
            }
        }

        declaresOnResponse = names.Contains("onResponse");
        return names;
    }

    /// <summary>
    /// Null when the top level can be shared: only function declarations and <c>const</c>s of plain data
    /// (literals, object and array literals of them, functions), no code that reassigns a top-level
    /// function, no use of the top level's <c>arguments</c>. Otherwise the reason it cannot.
    /// </summary>
    private static string? WhyFresh(Script program, List<string> names)
    {
        var functions = new HashSet<string>(StringComparer.Ordinal);
        foreach (var statement in program.Body)
        {
            switch (statement)
            {
                case Directive or EmptyStatement:
                    break;
                case FunctionDeclaration { Id: { } id }:
                    functions.Add(id.Name);
                    names.Add(id.Name);
                    break;
                case VariableDeclaration { Kind: VariableDeclarationKind.Const } declaration:
                    foreach (var declarator in declaration.Declarations)
                    {
                        if (declarator.Id is not Identifier id)
                        {
                            return "a top-level const destructures";
                        }

                        if (!IsPlainData(declarator.Init))
                        {
                            return $"top-level const '{id.Name}' is computed";
                        }

                        names.Add(id.Name);
                    }

                    break;
                case VariableDeclaration declaration:
                    return $"the top level declares with {declaration.Kind.ToString().ToLowerInvariant()}";
                case ClassDeclaration:
                    return "the top level declares a class";
                default:
                    return "the top level runs statements";
            }
        }

        return FindUnsafeUse(program, functions, insideFunction: false);
    }

    // Assignments to top-level functions, and the top level's own arguments object, anywhere in the file.
    private static string? FindUnsafeUse(Node node, HashSet<string> functions, bool insideFunction)
    {
        switch (node)
        {
            case Identifier { Name: "arguments" } when !insideFunction:
                return "it uses the top level's arguments";
            case AssignmentExpression assignment when Targets(assignment.Left, functions) is { } name:
                return $"it assigns to the top-level function '{name}'";
            case UpdateExpression { Argument: Identifier id } when functions.Contains(id.Name):
                return $"it assigns to the top-level function '{id.Name}'";
            case ForInStatement loop when loop.Left is not VariableDeclaration && Targets(loop.Left, functions) is { } name:
                return $"it assigns to the top-level function '{name}'";
            case ForOfStatement loop when loop.Left is not VariableDeclaration && Targets(loop.Left, functions) is { } name:
                return $"it assigns to the top-level function '{name}'";
        }

        var inside = insideFunction || node is FunctionDeclaration or FunctionExpression;
        foreach (var child in node.ChildNodes)
        {
            if (FindUnsafeUse(child, functions, inside) is { } reason)
            {
                return reason;
            }
        }

        return null;
    }

    // The first top-level function name among the identifiers of an assignment target (conservative: a
    // local that shadows the name also counts, which only costs the shared top level).
    private static string? Targets(Node target, HashSet<string> functions)
    {
        var identifiers = new HashSet<string>(StringComparer.Ordinal);
        CollectIdentifiers(target, identifiers);
        foreach (var identifier in identifiers)
        {
            if (functions.Contains(identifier))
            {
                return identifier;
            }
        }

        return null;
    }

    private static void CollectIdentifiers(Node node, HashSet<string> names)
    {
        if (node is Identifier id)
        {
            names.Add(id.Name);
            return;
        }

        if (node is MemberExpression)
        {
            // obj.x = ... assigns a property, not a binding.
            return;
        }

        foreach (var child in node.ChildNodes)
        {
            CollectIdentifiers(child, names);
        }
    }

    // Values that run no code of the file when the top level runs and that freezing makes immutable.
    private static bool IsPlainData(Node? node) => node switch
    {
        null => true,
        Literal literal => !IsStatefulRegex(literal),
        FunctionExpression or ArrowFunctionExpression => true,
        Identifier => true,
        ArrayExpression array => AllPlain(array.Elements),
        ObjectExpression obj => AllPlainProperties(obj),
        _ => IsPrimitive(node),
    };

    private static bool AllPlain(in NodeList<Expression?> elements)
    {
        foreach (var element in elements)
        {
            if (element is SpreadElement || !IsPlainData(element))
            {
                return false;
            }
        }

        return true;
    }

    private static bool AllPlainProperties(ObjectExpression obj)
    {
        foreach (var property in obj.Properties)
        {
            if (property is not Property { } p || (p.Computed && !IsPrimitive(p.Key)) || !IsPlainData(p.Value))
            {
                return false;
            }
        }

        return true;
    }

    // Expressions whose value is a primitive computed without calling any code of the file.
    private static bool IsPrimitive(Node? node) => node switch
    {
        Literal literal => literal.Kind != TokenKind.RegExpLiteral,
        Identifier { Name: "undefined" or "NaN" or "Infinity" } => true,
        TemplateLiteral template => AllPrimitive(template.Expressions),
        UnaryExpression unary when unary is not UpdateExpression && unary.Operator != Operator.Delete => IsPrimitive(unary.Argument),
        BinaryExpression binary => IsPrimitive(binary.Left) && IsPrimitive(binary.Right),
        ConditionalExpression conditional => IsPrimitive(conditional.Test) && IsPrimitive(conditional.Consequent) && IsPrimitive(conditional.Alternate),
        _ => false,
    };

    private static bool AllPrimitive(in NodeList<Expression> expressions)
    {
        foreach (var expression in expressions)
        {
            if (!IsPrimitive(expression))
            {
                return false;
            }
        }

        return true;
    }

    // A frozen global or sticky regular expression cannot update lastIndex, so it would fail when used.
    private static bool IsStatefulRegex(Literal literal) =>
        literal.Kind == TokenKind.RegExpLiteral && literal.Raw is { } raw && raw[(raw.LastIndexOf('/') + 1)..].AsSpan().IndexOfAny('g', 'y') >= 0;
}

/// <summary>A filter file that cannot be loaded: the message starts with <c>file:line:column</c> when there is a position.</summary>
internal sealed class JsScriptException : Exception
{
    public JsScriptException(string message)
        : base(message)
    {
    }

    public JsScriptException(string file, string problem)
        : base(file + ": " + problem)
    {
    }

    public JsScriptException()
    {
    }

    public JsScriptException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}
