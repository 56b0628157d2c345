// percentage-split.js: a fixed share of users (10% unless configured) to the "v2" endpoints, the rest to "v1".
//
// Route entry:
//   { "name": "percentage-split.js", "config": { "cookie": "user", "percent": 10, "subset": "v2", "stable": "v1" } }
//
// Tag the service's endpoints "v1" and "v2" (static endpoints: "tags": ["v2"]; Consul: service tags).
// A user is picked by a stable hash of a cookie, so the same user always lands on the same side, on
// every sidecar and after every restart (ctx.hash is FNV-1a of the UTF-8 text, the same everywhere).
// Requests without the cookie go to the stable side. "stable": null leaves them, and the other
// users, on every endpoint of the service.
//
// @ts-check
/// <reference path="./mesh-filters.d.ts" />

/** @type {MeshOnRequest<{ cookie?: string, percent?: number, subset?: string, stable?: string | null }>} */
function onRequest(req, ctx) {
  const percent = ctx.config.percent ?? 10;
  const canary = ctx.config.subset ?? 'v2';
  const stable = ctx.config.stable === undefined ? 'v1' : ctx.config.stable;

  const user = req.cookies[ctx.config.cookie ?? 'user'];
  if (user !== undefined && ctx.hash(user) % 100 < percent) {
    ctx.route(req.service, canary);
  } else if (stable !== null) {
    ctx.route(req.service, stable);
  }
}
