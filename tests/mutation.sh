#!/usr/bin/env bash
# Mutation testing with Stryker.NET, one module (a source folder) at a time: docs/testing.md.
#
#   tests/mutation.sh src/Sidecar/Routing        # one folder of a project
#   tests/mutation.sh src/Discovery              # a whole project, scored per module
#   tests/mutation.sh --list                     # the modules docs/testing.md reports
#   tests/mutation.sh --all                      # every module in turn (hours on 2 cores)
#   tests/mutation.sh --summary NAME REPORT      # the score of a mutation-report.json again
#   tests/mutation.sh --together M1 M2 ...       # modules of one project in a single run, scored per module
#   tests/mutation.sh --rerun REPORT M1 M2 ...   # re-test only the lines of REPORT's undetected mutants, merge
#
# Each project folder has a stryker-config.json (its unit-test projects, concurrency 2); this
# script narrows `mutate` to the module's files, writes the reports to
# .artifacts/mutation/<module>/reports/ and prints the score as docs/testing.md counts it:
# (killed + timeout) / (killed + timeout + survived + no coverage).
# MESH_STRYKER_CONCURRENCY overrides the concurrency (default 2, for a shared 2-core machine).
# MESH_STRYKER_FILTER runs only the unit tests it selects (a `dotnet test --filter` expression):
# faster, and the score is a lower bound of the whole suite's, since more tests only kill more.
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

# Sets project (the nearest folder at or above the module with a stryker-config.json), glob (the
# module's files relative to it) and slug (its report folder name) for one module.
locate() {
  local module=${1%/} only_files=0
  if [[ $module == *:files ]]; then module=${module%:files}; only_files=1; fi
  [ -d "$module" ] || { echo "no such folder: $module" >&2; return 2; }

  project=$module
  while [ ! -f "$project/stryker-config.json" ]; do
    [ "$project" = . ] || [ "$project" = / ] && { echo "no stryker-config.json at or above $module" >&2; return 2; }
    project=$(dirname "$project")
  done

  local relative=${module#"$project"}
  relative=${relative#/}
  if [ -z "$relative" ]; then glob="**/*.cs"
  elif [ $only_files -eq 1 ]; then glob="$relative/*.cs"
  else glob="$relative/**/*.cs"; fi

  slug=${module//\//_}
  [ $only_files -eq 1 ] && slug="${slug}_files"
  return 0
}

run_module() {
  local module=${1%/} project glob slug
  locate "$1" || return 2
  module=${module%:files}
  local output="$root/.artifacts/mutation/$slug"
  run_stryker "$module" "$project" "$output" --mutate "$glob"
}

# Several modules of one project in one Stryker run: the build, the initial test run and the
# coverage pass are paid once; the report is scored per module.
run_together() {
  local first_project="" mutates=() names=() project glob slug m
  for m in "$@"; do
    locate "$m" || return 2
    [ -z "$first_project" ] && first_project=$project
    [ "$project" = "$first_project" ] || { echo "--together needs modules of one project ($m is in $project)" >&2; return 2; }
    mutates+=(--mutate "$glob")
    names+=("$slug")
  done
  local joined
  joined=$(IFS=+; echo "${names[*]}")
  run_stryker "$*" "$first_project" "$root/.artifacts/mutation/$joined" "${mutates[@]}"
}

# Tests added since REPORT can only kill more of its mutants (the source must be unchanged), so
# only the lines of its survivors and uncovered mutants are mutated again; the merged report takes
# the new status of every mutant the rerun tested and the old status of the rest.
run_rerun() {
  local report=$1 first_project="" names=() project glob slug m
  shift
  for m in "$@"; do
    locate "$m" || return 2
    [ -z "$first_project" ] && first_project=$project
    names+=("$slug")
  done
  local joined
  joined=$(IFS=+; echo "${names[*]}")
  local mutates=()
  while IFS= read -r pattern; do mutates+=(--mutate "$pattern"); done < <(python3 - "$report" "$root" "$first_project" "$@" <<'PY'
import json, sys, collections, os
report, root, project, modules = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
spans = collections.defaultdict(set)
for name, f in json.load(open(report))["files"].items():
    relative = "src/" + name.split("/src/", 1)[-1]
    if not any(relative.startswith(m.rstrip("/").replace(":files", "") + "/") for m in modules):
        continue
    for m in f["mutants"]:
        if m["status"] in ("Survived", "NoCoverage"):
            spans[relative].update(range(m["location"]["start"]["line"], m["location"]["end"]["line"] + 1))
for relative, lines in sorted(spans.items()):
    text = open(os.path.join(root, relative), encoding="utf-8-sig").read()
    starts = [0]
    for line in text.split("\n"):
        starts.append(starts[-1] + len(line) + 1)
    # Runs of whole lines as character spans, which is what Stryker.NET's {start..end} patterns
    # take (a mutant is retested when one span holds it whole).
    runs, ordered = [], sorted(lines)
    for l in ordered:
        if runs and runs[-1][1] == l - 1:
            runs[-1][1] = l
        else:
            runs.append([l, l])
    groups = "".join(f"{{{starts[a - 1]}..{starts[b]}}}" for a, b in runs)
    print(os.path.relpath(os.path.join(root, relative), os.path.join(root, project)) + groups)
PY
)
  [ ${#mutates[@]} -gt 0 ] || { echo "no undetected mutants in $report for $*"; return 0; }
  local output="$root/.artifacts/mutation/$joined-rerun"
  run_stryker "$* (rerun)" "$first_project" "$output" "${mutates[@]}"
  python3 - "$report" "$output/reports/mutation-report.json" "$output/reports/merged-report.json" <<'PY'
import json, sys
old, new, merged_path = json.load(open(sys.argv[1])), json.load(open(sys.argv[2])), sys.argv[3]
def key(name, m):
    loc = m["location"]
    return ("src/" + name.split("/src/", 1)[-1], loc["start"]["line"], loc["start"]["column"], loc["end"]["line"],
            loc["end"]["column"], m["mutatorName"], m.get("replacement", ""))
fresh = {}
for name, f in new["files"].items():
    for m in f["mutants"]:
        if m["status"] in ("Killed", "Timeout", "Survived", "NoCoverage"):
            fresh[key(name, m)] = m["status"]
changed = 0
for name, f in old["files"].items():
    for m in f["mutants"]:
        status = fresh.get(key(name, m))
        if status and m["status"] in ("Survived", "NoCoverage") and status != m["status"]:
            m["status"] = status
            changed += 1
json.dump(old, open(merged_path, "w"))
print(f"merged: {changed} undetected mutants of the first run now {sorted(set(fresh.values()))}")
PY
  summarize "$* (merged)" "$output/reports/merged-report.json"
}

run_stryker() {
  local module=$1 project=$2 output=$3
  shift 3
  local glob="$*"
  rm -rf "$output"
  mkdir -p "$output"

  local args=(--config-file stryker-config.json "$@" --mutate '!**/obj/**' --output "$output"
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
  elif [ -n "${MESH_STRYKER_FILTER:-}" ]; then
    args+=(--test-case-filter "$MESH_STRYKER_FILTER")
  fi

  echo "== mutation: $module (project $project, mutate $glob)"
  # The version pinned in .config/dotnet-tools.json; a no-op once restored.
  dotnet tool restore >/dev/null
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
  ""|-h|--help) sed -n '2,18p' "$0"; exit 0 ;;
  --list) modules ;;
  --all) status=0; for m in $(modules); do run_module "$m" || status=1; done; exit $status ;;
  --together) shift; run_together "$@" ;;
  --rerun) shift; run_rerun "$@" ;;
  --summary) summarize "${2:?module}" "${3:?report}" ;;
  *) for m in "$@"; do run_module "$m"; done ;;
esac
