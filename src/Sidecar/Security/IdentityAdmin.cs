// /admin/identity: the sidecar's SPIFFE ID, its leaf's serial, validity and source, and the trust bundle's subjects.
using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Nodes;
using Mesh.Sidecar.Security.Identity;

namespace Mesh.Sidecar.Security;

/// <summary>Answers <c>/admin/identity</c>.</summary>
internal sealed class IdentityAdmin(IdentityManager identity)
{
    public const string Path = "/admin/identity";

    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web) { WriteIndented = true, Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    public Task HandleAsync(HttpContext context)
    {
        var current = identity.Current;
        if (current is null)
        {
            context.Response.StatusCode = StatusCodes.Status404NotFound;
            context.Response.ContentType = "text/plain; charset=utf-8";
            return context.Response.WriteAsync("no identity: identity.source is not set\n");
        }

        var bundle = new JsonArray();
        foreach (var root in current.TrustBundle)
        {
            bundle.Add(root.Subject);
        }

        var body = new JsonObject
        {
            ["spiffeId"] = current.Id.Value,
            ["source"] = current.Source,
            ["serial"] = current.SerialNumber,
            ["notBefore"] = current.NotBefore.ToString("O", System.Globalization.CultureInfo.InvariantCulture),
            ["notAfter"] = current.NotAfter.ToString("O", System.Globalization.CultureInfo.InvariantCulture),
            ["subject"] = current.Certificate.Subject,
            ["rotations"] = identity.Rotations,
            ["trustBundle"] = bundle,
        };
        context.Response.StatusCode = StatusCodes.Status200OK;
        context.Response.ContentType = "application/json";
        return context.Response.WriteAsync(body.ToJsonString(Json));
    }
}
