#!/usr/bin/env bash
# Mutation testing with Stryker.NET, one module (a source folder) at a time: docs/testing.md.
#
#   tests/mutation.sh src/Sidecar/Routing        # one folder of a project
#   tests/mutation.sh src/Discovery              # a whole project, scored per module
#   tests/mutation.sh --list                     # the modules docs/testing.md reports
#   tests/mutation.sh --all                      # every module in turn (hours on 2 cores)
#   tests/mutation.sh --summary NAME REPORT      # the score of a mutation-report.json again
#
# Each project folder has a stryker-config.json (its unit-test projects, concurrency 2); this
# script narrows `mutate` to the module's files, writes the reports to
# .artifacts/mutation/<module>/reports/ and prints the score as docs/testing.md counts it:
# (killed + timeout) / (killed + timeout + survived + no coverage).
# MESH_STRYKER_CONCURRENCY overrides the concurrency (default 2, for a shared 2-core machine).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

# Modules whose mutants only functional tests reach: the extra test project and the filter that
# keeps its run bounded (one line each: module|test project|test filter).
extra_tests() {
  case "$1" in
    src/Sidecar/Listeners) echo "tests/Mesh.FunctionalTests/Mesh.FunctionalTests.csproj|FullyQualifiedName~Mesh.FunctionalTests.Listeners" ;;
    *) echo "" ;;
  esac
}

modules() {
  local d
  for d in src/Sidecar/*/ src/Discovery/*/ src/Plugins/Host/*/ src/Plugins/Abstractions/*/; do
    d=${d%/}
    case "$(basename "$d")" in bin|obj|StrykerOutput) continue ;; esac
    # L4 is reported per sub-folder (Tcp, Tls, Udp) plus its own files.
    if [ "$d" = src/Sidecar/L4 ]; then
      echo "src/Sidecar/L4:files"
      for s in "$d"/*/; do s=${s%/}; echo "$s"; done
      continue
    fi
    echo "$d"
  done
}

run_module() {
  local module=${1%/} only_files=0
  if [[ $module == *:files ]]; then module=${module%:files}; only_files=1; fi
  [ -d "$module" ] || { echo "no such folder: $module" >&2; return 2; }

  # The project folder is the nearest folder at or above the module with a stryker-config.json.
  local project=$module
  while [ ! -f "$project/stryker-config.json" ]; do
    [ "$project" = . ] || [ "$project" = / ] && { echo "no stryker-config.json at or above $module" >&2; return 2; }
    project=$(dirname "$project")
  done

  local relative=${module#"$project"} glob
  relative=${relative#/}
  if [ -z "$relative" ]; then glob="**/*.cs"
  elif [ $only_files -eq 1 ]; then glob="$relative/*.cs"
  else glob="$relative/**/*.cs"; fi

  local slug=${module//\//_}
  [ $only_files -eq 1 ] && slug="${slug}_files"
  local output="$root/.artifacts/mutation/$slug"
  rm -rf "$output"
  mkdir -p "$output"

  local args=(--config-file stryker-config.json --mutate "$glob" --mutate '!**/obj/**' --output "$output"
              --concurrency "${MESH_STRYKER_CONCURRENCY:-2}" --skip-version-check)
  local extra
  extra=$(extra_tests "$module")
  if [ -n "$extra" ]; then
    local tp=${extra%%|*} filter=${extra#*|}
    # The config's unit-test projects plus the functional project, filtered so the run stays bounded.
    while IFS= read -r p; do args+=(--test-project "$p"); done < <(python3 - "$project/stryker-config.json" <<'PY'
import json, sys
for p in json.load(open(sys.argv[1]))["stryker-config"]["test-projects"]:
    print(p)
PY
)
    args+=(--test-project "$(realpath --relative-to="$project" "$tp")" --test-case-filter "$filter")
  fi

  echo "== mutation: $module (project $project, mutate $glob)"
  ( cd "$project" && dotnet tool run dotnet-stryker -- "${args[@]}" ) | tee "$output/stryker.log" | grep -E '^\[|Killed|Survived|score|error|Error' || true
  summarize "$module" "$output/reports/mutation-report.json"
}

summarize() {
  python3 - "$1" "$2" <<'PY'
import json, sys, collections
module, path = sys.argv[1], sys.argv[2]
try:
    report = json.load(open(path))
except OSError:
    print(f"{module}: no report (see the Stryker log)"); sys.exit(1)

def module_of(name):
    parts = name.split("/src/")[-1].split("/")
    if parts[0] == "Plugins" or (parts[0] == "Sidecar" and parts[1] == "L4"):
        depth = 3
    else:
        depth = 2
    return "src/" + "/".join(parts[:depth]) if len(parts) > depth else "src/" + "/".join(parts[:depth - 1]) + " (files)"

per_module = collections.defaultdict(collections.Counter)
for name, f in report["files"].items():
    for m in f["mutants"]:
        per_module[module_of(name)][m["status"]] += 1

def line(label, c):
    detected, undetected = c["Killed"] + c["Timeout"], c["Survived"] + c["NoCoverage"]
    score = 100.0 * detected / (detected + undetected) if detected + undetected else 100.0
    return (f"{label}: killed {c['Killed']}, timeout {c['Timeout']}, survived {c['Survived']}, no coverage {c['NoCoverage']}, "
            f"compile errors {c['CompileError']}, ignored {c['Ignored']}: score {score:.1f}%")

total = collections.Counter()
for c in per_module.values():
    total.update(c)
print(line(module, total))
if len(per_module) > 1:
    for name in sorted(per_module):
        print("  " + line(name, per_module[name]))
for name, f in sorted(report["files"].items()):
    for m in f["mutants"]:
        if m["status"] in ("Survived", "NoCoverage"):
            where = m["location"]["start"]["line"]
            print(f"  {m['status']:10} {name.split('/src/')[-1]}:{where} {m['mutatorName']}: {m.get('replacement', '')[:80]!r}")
PY
}

case "${1:-}" in
  ""|-h|--help) sed -n '2,13p' "$0"; exit 0 ;;
  --list) modules ;;
  --all) status=0; for m in $(modules); do run_module "$m" || status=1; done; exit $status ;;
  --summary) summarize "${2:?module}" "${3:?report}" ;;
  *) for m in "$@"; do run_module "$m"; done ;;
esac
