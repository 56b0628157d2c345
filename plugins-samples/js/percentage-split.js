// percentage-split.js: a fixed share of users (10% unless configured) to the "v2" endpoints.
//
// Route entry:
//   { "name": "percentage-split.js", "config": { "cookie": "user", "percent": 10, "subset": "v2" } }
//
// A user is picked by a stable hash of a cookie, so the same user always lands on the same side, on
// every sidecar and after every restart (ctx.hash is FNV-1a of the UTF-8 text, the same everywhere).
// Requests without the cookie stay on the route's endpoints.

function onRequest(req, ctx) {
  const user = req.cookies[ctx.config.cookie ?? 'user'];
  if (user === undefined) return;

  if (ctx.hash(user) % 100 < (ctx.config.percent ?? 10)) {
    ctx.route(req.service, ctx.config.subset ?? 'v2');
  }
}
