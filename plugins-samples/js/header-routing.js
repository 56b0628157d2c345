// header-routing.js: the first filter most teams write.
//   x-canary: 1        -> the "v2" endpoints (a subset: endpoints tagged v2) of the request's service
//   x-tenant: <name>   -> that tenant's service, looked up in the route entry's config
//   anything else      -> unchanged
//
// Route entry:
//   { "name": "header-routing.js", "config": { "tenants": { "acme": "acme-api", "globex": "globex-api" } } }
//
// @ts-check
/// <reference path="./mesh-filters.d.ts" />

/** @type {MeshOnRequest<{ tenants?: Record<string, string> }>} */
function onRequest(req, ctx) {
  let service = req.service;

  const tenant = req.headers['x-tenant'];
  if (tenant !== undefined) {
    const tenants = ctx.config.tenants ?? {};
    if (!Object.hasOwn(tenants, tenant)) {
      ctx.respond(403, `unknown tenant '${tenant}'\n`);
      return;
    }
    service = tenants[tenant];
  }

  if (req.headers['x-canary'] === '1') {
    ctx.route(service, 'v2');
  } else if (service !== req.service) {
    ctx.route(service);
  }
}
