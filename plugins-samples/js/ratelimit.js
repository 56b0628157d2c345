// ratelimit.js: a token bucket per caller; 429 with Retry-After once the caller's bucket is empty.
//
// Route entry:
//   { "name": "ratelimit.js", "config": { "rate": 5, "burst": 10, "by": "x-api-key" } }
//
// The caller is the value of the "by" header, else its mTLS identity (req.peer), else its address.
// The buckets are kept by the sidecar and shared by every engine, so the limit holds across threads
// and survives edits of this file. "rate" is tokens per second, "burst" the bucket's size.
//
// @ts-check
/// <reference path="./mesh-filters.d.ts" />

/** @type {MeshOnRequest<{ rate?: number, burst?: number, by?: string }>} */
function onRequest(req, ctx) {
  const rate = ctx.config.rate ?? 10;
  const burst = ctx.config.burst ?? rate;
  const caller = req.headers[ctx.config.by ?? 'x-api-key'] ?? req.peer ?? req.clientAddress;

  if (!ctx.rateLimit(caller, { rate, burst })) {
    // A token comes back every 1/rate seconds.
    ctx.respond(429, 'too many requests\n', { 'retry-after': String(Math.max(1, Math.ceil(1 / rate))) });
  }
}
