#!/usr/bin/env bash
# Mutation testing with Stryker.NET, one module (a source folder) at a time: docs/testing.md.
#
#   tests/mutation.sh src/Sidecar/Routing        # one folder of a project
#   tests/mutation.sh src/Discovery              # a whole project
#   tests/mutation.sh --list                     # the modules docs/testing.md reports
#   tests/mutation.sh --all                      # every module in turn (hours on 2 cores)
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
counts = collections.Counter()
for name, f in report["files"].items():
    for m in f["mutants"]:
        counts[m["status"]] += 1
killed, timeout = counts["Killed"], counts["Timeout"]
survived, nocov = counts["Survived"], counts["NoCoverage"]
detected, undetected = killed + timeout, survived + nocov
score = 100.0 * detected / (detected + undetected) if detected + undetected else 100.0
print(f"{module}: killed {killed}, timeout {timeout}, survived {survived}, no coverage {nocov}, "
      f"compile errors {counts['CompileError']}, ignored {counts['Ignored']}: score {score:.1f}%")
for name, f in sorted(report["files"].items()):
    for m in f["mutants"]:
        if m["status"] in ("Survived", "NoCoverage"):
            line = m["location"]["start"]["line"]
            print(f"  {m['status']:10} {name.split('/src/')[-1]}:{line} {m['mutatorName']}: {m.get('replacement', '')[:80]!r}")
PY
}

case "${1:-}" in
  ""|-h|--help) sed -n '2,13p' "$0"; exit 0 ;;
  --list) modules ;;
  --all) status=0; for m in $(modules); do run_module "$m" || status=1; done; exit $status ;;
  *) for m in "$@"; do run_module "$m"; done ;;
esac
