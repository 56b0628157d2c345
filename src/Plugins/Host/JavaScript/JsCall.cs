// What one engine is running now: the request (or response) the views read, and the decision ctx.route / ctx.respond record.
namespace Mesh.Plugins.JavaScript;

/// <summary>
/// The current call of one engine. Set when a call starts and cleared when it ends, so the engine's
/// view objects (which live as long as the engine) see nothing between calls. Only the thread that
/// holds the engine touches it.
/// </summary>
internal sealed class JsCall
{
    /// <summary>The request of the call (in <c>onResponse</c>: the request the response answers).</summary>
    public IRequestContext? Request { get; private set; }

    /// <summary>The response in <c>onResponse</c>; null in <c>onRequest</c>.</summary>
    public IResponseContext? Response { get; private set; }

    /// <summary>The request's item bag, created only when a script touches <c>ctx.items</c>.</summary>
    public IDictionary<string, object?>? Items => Request?.Items;

    /// <summary>True during <c>onRequest</c>: the only place <c>ctx.route</c> and <c>ctx.respond</c> decide anything.</summary>
    public bool Deciding { get; private set; }

    /// <summary>What the script decided so far: continue, respond or reroute (the last call wins).</summary>
    public FilterResult Decision { get; set; }

    public void BeginRequest(IRequestContext request)
    {
        Request = request;
        Response = null;
        Deciding = true;
        Decision = FilterResult.Continue;
    }

    public void BeginResponse(IResponseContext response)
    {
        Request = response.Request;
        Response = response;
        Deciding = false;
        Decision = FilterResult.Continue;
    }

    public void End()
    {
        Request = null;
        Response = null;
        Deciding = false;
        Decision = FilterResult.Continue;
    }
}
