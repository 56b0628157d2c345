// auth.js: a bearer token or an API key, checked against the route entry's config; 401 otherwise.
//
// Route entry:
//   { "name": "auth.js", "config": { "tokens": ["s3cr3t-token"], "apiKeys": ["k-123"], "header": "x-api-key" } }
//
// A request with "authorization: Bearer <token>" or "<header>: <key>" continues (with x-auth naming
// how it was let in, and the credential removed so the service never sees it); any other gets 401.
//
// @ts-check
/// <reference path="./mesh-filters.d.ts" />

// Compares without stopping at the first difference, so timing does not reveal how much of a guess was right.
/** @param {string} a @param {string} b */
function same(a, b) {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a.charCodeAt(i) ^ b.charCodeAt(i);
  return diff === 0;
}

/** @param {readonly string[] | undefined} list @param {string} value */
function known(list, value) {
  let found = false;
  for (const item of list ?? []) found = same(item, value) || found;
  return found;
}

/** @type {MeshOnRequest<{ tokens?: string[], apiKeys?: string[], header?: string }>} */
function onRequest(req, ctx) {
  const authorization = req.headers['authorization'];
  if (authorization !== undefined && authorization.startsWith('Bearer ') && known(ctx.config.tokens, authorization.slice(7))) {
    req.removeHeader('authorization');
    req.setHeader('x-auth', 'bearer');
    return;
  }

  const header = ctx.config.header ?? 'x-api-key';
  const key = req.headers[header];
  if (key !== undefined && known(ctx.config.apiKeys, key)) {
    req.removeHeader(header);
    req.setHeader('x-auth', 'api-key');
    return;
  }

  ctx.respond(401, 'missing or invalid credentials\n', { 'www-authenticate': 'Bearer realm="mesh"' });
}
