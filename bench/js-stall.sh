#!/usr/bin/env bash
# What a JavaScript filter that hits its time limit costs the other connections, with
# performance.inlineCompletions on and off (docs/js-filters.md, "Time limits and socket threads").
#
#   bash bench/js-stall.sh            # about a minute, most of it publishing
#
# One sidecar at a time on loopback, one listener, two routes with a JavaScript filter each:
#   /fast  a filter that reads a header and continues, to an nginx backend answering "ok"
#   /spin  while (true) {}  (stopped by its time limit, jsFilters.timeoutMs, then 504)
# bench/lib/js-stall-probe.py keeps 8 keep-alive connections sending /fast at once, every other
# round shortly after a /spin started on another keep-alive connection, and counts the /fast answers
# that waited for the spin. Each setting prints one line with and one without spins.
#
#   TIMEOUT_MS=10 bash bench/js-stall.sh                        # another time limit
#   MAX_STATEMENTS=100000 bash bench/js-stall.sh                # the default statement limit stops the loop first
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mktemp -d /tmp/mesh-js-stall.XXXXXX)
TIMEOUT_MS=${TIMEOUT_MS:-50}
# High enough that the time limit, not the statement limit, stops the loop (set 100000, the default, to see that case).
MAX_STATEMENTS=${MAX_STATEMENTS:-1000000000}
PIDS=()
cleanup() { for pid in "${PIDS[@]:-}"; do [ -n "$pid" ] && kill "$pid" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT
log() { printf '== %s\n' "$*" >&2; }

missing=()
command -v curl >/dev/null || missing+=(curl)
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || missing+=(nginx-light)
if [ "${#missing[@]}" -gt 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null; fi
export PATH="$PATH:/usr/sbin"
log "publishing Mesh (Release)"
dotnet publish "$ROOT/src/Sidecar" -c Release -o "$WORK/mesh" -nologo -v quiet >/dev/null

mkdir -p "$WORK/filters"
cat >"$WORK/filters/fast.js" <<'JS'
function onRequest(req, ctx) { if (req.headers['x-canary'] === '1') ctx.route(req.service, 'v2'); }
JS
cat >"$WORK/filters/spin.js" <<'JS'
function onRequest(req, ctx) { while (true) {} }
JS

LISTEN=18950; ADMIN=18951; BACKEND=18952
cat >"$WORK/nginx.conf" <<NGINX
daemon off;
master_process off;
worker_processes 1;
pid $WORK/nginx.pid;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path $WORK/b-body;
    proxy_temp_path $WORK/b-proxy;
    keepalive_requests 10000000;
    server { listen 127.0.0.1:$BACKEND; location / { return 200 "ok\n"; } }
}
NGINX
nginx -c "$WORK/nginx.conf" -p "$WORK" -e "$WORK/nginx-error.log" & PIDS+=($!)
wait_ready() { for _ in $(seq 1 400); do curl -sf "http://127.0.0.1:$ADMIN/ready" >/dev/null 2>&1 && return 0; sleep 0.025; done; log "sidecar not ready"; return 1; }

for inline in true false; do
  cat >"$WORK/mesh.json" <<JSON
{
  "service": { "name": "stall" },
  "admin": { "address": "127.0.0.1", "port": $ADMIN },
  "listeners": [ { "name": "l7", "address": "127.0.0.1", "port": $LISTEN, "protocol": "http" } ],
  "routes": [
    { "name": "spin", "listeners": [ "l7" ], "service": "web", "match": { "path": { "prefix": "/spin" } }, "filters": [ { "name": "spin.js" } ] },
    { "name": "fast", "listeners": [ "l7" ], "service": "web", "filters": [ { "name": "fast.js" } ] }
  ],
  "services": { "web": { "endpoints": [ { "address": "127.0.0.1", "port": $BACKEND } ] } },
  "jsFilters": { "directory": "$WORK/filters", "timeoutMs": $TIMEOUT_MS, "maxStatements": $MAX_STATEMENTS },
  "performance": { "inlineCompletions": $inline },
  "logging": { "level": "Error" }
}
JSON
  "$WORK/mesh/mesh-sidecar" run --config "$WORK/mesh.json" >"$WORK/mesh-$inline.log" 2>&1 & PIDS+=($!); MESH=$!
  wait_ready
  # Warm-up: JIT, engines in the pools.
  for _ in $(seq 1 50); do curl -s "http://127.0.0.1:$LISTEN/fast" >/dev/null; done
  for _ in 1 2 3; do curl -s "http://127.0.0.1:$LISTEN/spin" >/dev/null; done

  python3 "$ROOT/bench/lib/js-stall-probe.py" 127.0.0.1 "$LISTEN" "${PROBE_ROUNDS:-60}" "$TIMEOUT_MS" >"$WORK/probe.txt"
  status=$(curl -s -o /dev/null -w '%{http_code} after %{time_total} s' "http://127.0.0.1:$LISTEN/spin")
  echo "inlineCompletions=$inline timeoutMs=$TIMEOUT_MS maxStatements=$MAX_STATEMENTS: /spin answers $status"
  sed 's/^/  probes, /' "$WORK/probe.txt"
  kill "$MESH"; wait "$MESH" 2>/dev/null || true
done
