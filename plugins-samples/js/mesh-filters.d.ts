// Types of Mesh's JavaScript filter API, for editors. Reference it from a filter file with
//   /// <reference path="./mesh-filters.d.ts" />
// and declare the handlers with JSDoc, for example:
//   /** @type {MeshOnRequest} */
//   function onRequest(req, ctx) { ... }
// docs/js-filters.md describes each member with an example.

/** A request header, query parameter or cookie map: name → value. Read-only; absent names read as undefined. */
interface MeshReadonlyMap {
  readonly [name: string]: string | undefined;
}

/** The request as the filter chain sees it so far (earlier filters' header changes and reroutes included). */
interface MeshRequest {
  /** HTTP method, upper case: "GET", "POST"... */
  readonly method: string;
  /** "http" or "https", as the client spoke to the sidecar. */
  readonly scheme: string;
  /** The Host header without its port. */
  readonly host: string;
  /** The path, decoded, without the query: "/users/42". */
  readonly path: string;
  /** Query parameters: name → first value, decoded. */
  readonly query: MeshReadonlyMap;
  /** Request headers: lower-case name → value (repeated headers joined with ", "). */
  readonly headers: MeshReadonlyMap;
  /** Request cookies: name → value. */
  readonly cookies: MeshReadonlyMap;
  /** The client's IP address. */
  readonly clientAddress: string;
  /** The caller's SPIFFE ID ("spiffe://trust-domain/ns/default/svc/web") on an mTLS connection; null otherwise. */
  readonly peer: string | null;
  /** The name of the listener that accepted the request. */
  readonly listener: string;
  /** The name of the matched route. */
  readonly route: string;
  /** The service the request goes to so far: the route's, or an earlier filter's reroute. */
  readonly service: string;
  /** Sets (replaces) a header sent upstream. Names are HTTP tokens, values printable ASCII; framing headers (content-length, transfer-encoding, connection...) are refused. */
  setHeader(name: string, value: string | number | boolean): void;
  /** Removes a header before the request goes upstream. */
  removeHeader(name: string): void;
}

/** The response about to be sent, in onResponse. */
interface MeshResponse {
  /** The status code. */
  readonly status: number;
  /** Response headers: lower-case name → value. */
  readonly headers: MeshReadonlyMap;
  /** Sets (replaces) a response header. */
  setHeader(name: string, value: string | number | boolean): void;
  /** Removes a response header. */
  removeHeader(name: string): void;
}

/** Values ctx.items holds (and shares with C# filters of the same chain). */
type MeshItemValue = string | number | boolean | null;

/** A token bucket: rate tokens per second, up to burst tokens. */
interface MeshRateLimit {
  /** Tokens added per second (greater than 0). */
  rate: number;
  /** Bucket size, at least 1; defaults to max(1, rate). */
  burst?: number;
}

/** What a filter call can use besides the request. */
interface MeshContext<TConfig = any> {
  /** The route entry's "config" object, as written in the sidecar's config file (frozen). */
  readonly config: Readonly<TConfig>;
  /** A bag for this request only, shared with the other filters of the chain (C# ones included) and with onResponse. */
  readonly items: { [name: string]: MeshItemValue | undefined };
  /** Sends the request to another service, or (with subset) to that service's endpoints tagged subset. onRequest only; the last decision wins. */
  route(service: string, subset?: string): void;
  /** Answers now; nothing goes upstream. status 200-599; headers name → value. onRequest only; the last decision wins. */
  respond(status: number, body?: string, headers?: { [name: string]: string | number | boolean }): void;
  /** Writes a log line naming the file and the route (Information, event 5301). */
  log(message: string): void;
  /** Takes a token from the bucket of (this file, key); true when there was one. Buckets are shared by every engine and survive edits of the file. */
  rateLimit(key: string, limit: MeshRateLimit): boolean;
  /** A stable non-negative integer for text (32-bit FNV-1a of its UTF-8 bytes, top bit cleared): the same in every process. */
  hash(text: string): number;
}

/** The request handler every filter file defines. Returning without ctx.route or ctx.respond continues. */
type MeshOnRequest<TConfig = any> = (req: MeshRequest, ctx: MeshContext<TConfig>) => void | Promise<void>;

/** The optional response handler: sees and changes response headers before they are sent. */
type MeshOnResponse<TConfig = any> = (res: MeshResponse, ctx: MeshContext<TConfig>) => void | Promise<void>;
