#!/usr/bin/env bash
# What a route feature costs, interleaved: the plain route (mesh-l7) alternates with the same Mesh
# process's retries, C# plugin and JavaScript filter routes, so the VM's drift between minutes hits
# both sides of each ratio alike. Prints each pass's ratios and their medians.
#
#   bash bench/overhead.sh            # 4 passes, 5 s per load (about 3 minutes)
#   N=8 D=10 bash bench/overhead.sh   # more passes, longer loads
#   N=30 D=1 bash bench/overhead.sh   # many 1 s passes: this VM's speed jumps between two levels
#                                     # every few seconds, and short passes mostly fall in one of them
#   bash bench/overhead.sh client     # Mesh's HTTP/1.1 client vs the YARP path (meshHttp1Client false),
#                                     # a small body and 16 KiB, each pass mesh, yarp, yarp, mesh
#
# Same layout as bench/run.sh: wrk and the nginx backend on core 0, Mesh alone on core 1.
set -euo pipefail
N=${N:-4}; D=${D:-5}; MODE=${1:-features}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
LIB="$ROOT/bench/lib"
WORK=$(mktemp -d /tmp/mesh-overhead.XXXXXX)
PIDS=()
cleanup() { for pid in "${PIDS[@]:-}"; do [ -n "$pid" ] && kill "$pid" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT
export PATH="$PATH:/usr/sbin"
for tool in nginx wrk openssl curl python3; do command -v "$tool" >/dev/null || { echo "needs $tool (bash bench/run.sh installs it)" >&2; exit 2; }; done

dotnet publish "$ROOT/src/Sidecar" -c Release -o "$WORK/mesh" -nologo -v quiet >/dev/null
dotnet build "$ROOT/plugins-samples/HeaderRouter" -c Release -nologo -v quiet >/dev/null
mkdir -p "$WORK/plugins/HeaderRouter" "$WORK/filters" "$WORK/www/files"
cp "$ROOT/plugins-samples/HeaderRouter/bin/Release/net10.0/"* "$WORK/plugins/HeaderRouter/"
cp "$ROOT/plugins-samples/js/header-routing.js" "$WORK/filters/"
head -c 16384 /dev/urandom >"$WORK/www/files/16k"
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$WORK/key.pem" -out "$WORK/cert.pem" -days 1 -subj "/CN=localhost" 2>/dev/null

# Loopback ports of their own, so this can run beside nothing else but not clash with run.sh's.
L7=19300; L7F=19304; RETRY=19305; JS=19306; ADMIN=19390
render() { sed -e "s#@WORK@#$WORK#g" -e "s#@BACKEND@#19080#g" -e "s#@BACKEND_TLS@#19443#g" -e "s#@BACKEND_H2@#19081#g" \
  -e "s#@MESH_L7@#$L7#g" -e "s#@MESH_TCP@#19301#g" -e "s#@MESH_TLS@#19302#g" -e "s#@MESH_IPERF@#19303#g" -e "s#@MESH_L7F@#$L7F#g" \
  -e "s#@MESH_RETRY_L7@#$RETRY#g" -e "s#@MESH_L7JS@#$JS#g" -e "s#@MESH_ADMIN@#$ADMIN#g" -e "s#@IPERF@#19600#g" "$1" >"$2"; }
render "$LIB/nginx-backend.conf" "$WORK/nginx-backend.conf"
render "$LIB/mesh.json" "$WORK/mesh.json"
sed -e "s#@MESH_YARP_ADMIN@#19391#g" -e "s#@MESH_YARP_L7@#19310#g" -e "s#@BACKEND@#19080#g" "$LIB/mesh-yarp.json" >"$WORK/mesh-yarp.json"
taskset -c 0 nginx -c "$WORK/nginx-backend.conf" -p "$WORK" -e "$WORK/backend-error.log" & PIDS+=($!)
taskset -c 1 "$WORK/mesh/mesh-sidecar" run --config "$WORK/mesh.json" >"$WORK/mesh.log" 2>&1 & PIDS+=($!)
for _ in $(seq 1 400); do curl -sf "http://127.0.0.1:$ADMIN/ready" >/dev/null 2>&1 && break; sleep 0.05; done
curl -sf "http://127.0.0.1:$ADMIN/ready" >/dev/null || { echo "Mesh did not become ready; see $WORK/mesh.log" >&2; cat "$WORK/mesh.log" >&2; exit 1; }

rps() { taskset -c 0 wrk -t1 -c64 -d"${D}s" "http://127.0.0.1:$1/${2:-}" | awk '/Requests\/sec/ {print $2}'; }

if [ "$MODE" = client ]; then
  YARP=19310
  taskset -c 1 "$WORK/mesh/mesh-sidecar" run --config "$WORK/mesh-yarp.json" >"$WORK/mesh-yarp.log" 2>&1 & PIDS+=($!)
  for _ in $(seq 1 400); do curl -sf "http://127.0.0.1:19391/ready" >/dev/null 2>&1 && break; sleep 0.05; done
  for target in "$L7/" "$YARP/" "$L7/files/16k" "$YARP/files/16k"; do taskset -c 0 wrk -t1 -c64 -d8s "http://127.0.0.1:$target" >/dev/null; done
  RESULTS="$WORK/client.tsv"; : >"$RESULTS"
  for pass in $(seq 1 "$N"); do
    for path in "" files/16k; do
      printf '%s\t%s\t%s\t%s\t%s\n' "${path:-/}" "$(rps $L7 "$path")" "$(rps $YARP "$path")" "$(rps $YARP "$path")" "$(rps $L7 "$path")" >>"$RESULTS"
    done
  done
  python3 - "$RESULTS" <<'PY'
import statistics, sys
ratios = {}
for line in open(sys.argv[1]):
    path, m1, y1, y2, m2 = line.split()
    r = (float(m1) + float(m2)) / (float(y1) + float(y2))
    ratios.setdefault(path, []).append(r)
    print(f"{path}: Mesh's client {float(m1):,.0f}/{float(m2):,.0f} req/s, YARP path {float(y1):,.0f}/{float(y2):,.0f}: {r:.3f}")
for path, values in ratios.items():
    print(f"{path}: Mesh's HTTP/1.1 client vs the YARP path, median {statistics.median(values):.3f} (target >= 1.0)")
PY
  exit 0
fi
for port in $L7 $RETRY $L7F $JS; do taskset -c 0 wrk -t1 -c64 -d8s "http://127.0.0.1:$port/" >/dev/null; done

# Each pass: plain, retries, plugin, JS, plain; a variant's ratio is against the mean of the pass's two plain
# loads, twice: by throughput, and by requests per second of Mesh's processor time (what a feature costs
# per request even when something else on the machine takes part of Mesh's core).
MESH_PID=${PIDS[1]}
HZ=$(getconf CLK_TCK)
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
load() {
  local before after out
  before=$(ticks "$MESH_PID")
  out=$(taskset -c 0 wrk -t1 -c64 -d"${D}s" "http://127.0.0.1:$1/")
  after=$(ticks "$MESH_PID")
  printf '%s:%s:%s' "$(awk '/Requests\/sec/ {print $2}' <<<"$out")" "$(awk '/ requests in / {print $1}' <<<"$out")" "$(( after - before ))"
}
RESULTS="$WORK/passes.tsv"; : >"$RESULTS"
for pass in $(seq 1 "$N"); do
  printf '%s\t%s\t%s\t%s\t%s\n' "$(load $L7)" "$(load $RETRY)" "$(load $L7F)" "$(load $JS)" "$(load $L7)" >>"$RESULTS"
done
python3 - "$RESULTS" "$HZ" <<'PY'
import statistics, sys
hz = float(sys.argv[2])
names = ["retries configured, never needed (target >= 0.97)", "one C# plugin filter (target >= 0.95)", "one JavaScript filter (target >= 0.90)"]
by_rps, by_cpu = [[], [], []], [[], [], []]
for i, line in enumerate((l for l in open(sys.argv[1]) if l.strip()), 1):
    cells = [tuple(map(float, cell.split(":"))) for cell in line.split()]
    rps = [c[0] for c in cells]
    per_cpu = [c[1] / (c[2] / hz) for c in cells]
    base_rps, base_cpu = (rps[0] + rps[4]) / 2, (per_cpu[0] + per_cpu[4]) / 2
    for k in range(3):
        by_rps[k].append(rps[k + 1] / base_rps)
        by_cpu[k].append(per_cpu[k + 1] / base_cpu)
    print(f"pass {i}: plain {rps[0]:,.0f}/{rps[4]:,.0f} req/s ({per_cpu[0]:,.0f}/{per_cpu[4]:,.0f} per CPU-second); "
          f"by throughput: retries {by_rps[0][-1]:.3f}, plugin {by_rps[1][-1]:.3f}, js {by_rps[2][-1]:.3f}; "
          f"per CPU-second: retries {by_cpu[0][-1]:.3f}, plugin {by_cpu[1][-1]:.3f}, js {by_cpu[2][-1]:.3f}")
for k, name in enumerate(names):
    print(f"{name}: median {statistics.median(by_rps[k]):.3f} by throughput, {statistics.median(by_cpu[k]):.3f} per CPU-second")
PY
