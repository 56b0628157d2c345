#!/usr/bin/env python3
"""Summarises a perf recording of Mesh into component shares: one TSV line per component.

usage: profile.py SETUP PERF_DATA  ->  lines "SETUP<TAB>component<TAB>percent"

Self time by where the sampled instruction was (kernel, JIT-compiled .NET code by assembly, the
runtime's native code, libc), plus the inclusive share of the send() and recv() calls, which on
loopback include the kernel delivering the bytes to the peer and waking it.
"""
import re
import subprocess
import sys
from collections import Counter

setup, data = sys.argv[1], sys.argv[2]
pid = sys.argv[3] if len(sys.argv) > 3 else None


def report(*extra):
    out = subprocess.run(["perf", "report", "-i", data, "--stdio", "--no-demangle", *extra],
                         capture_output=True, text=True, check=True).stdout
    for line in out.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        yield line


groups = Counter()
for line in ([] if data == "-" else report("--no-children", "--sort", "dso,sym", "-g", "none")):
    m = re.match(r"\s*([\d.]+)%\s+(\S.*?)\s+\[(.)\]\s+(.*)", line)
    if not m:
        continue
    pct, dso, kind, sym = float(m.group(1)), m.group(2), m.group(3), m.group(4)
    if kind == "k" or "kernel" in dso:
        groups["kernel"] += pct
        continue
    assembly = re.search(r"\[([A-Za-z][\w.\-]*)\] ", sym)
    if dso.startswith("[JIT]") or dso.endswith(".dll") or assembly:
        name = assembly.group(1) if assembly else "other .NET code"
        if name.startswith("Microsoft.AspNetCore.Server.Kestrel") or name.startswith("System.IO.Pipelines"):
            name = "Kestrel (HTTP/1.1 server, pipes)"
        elif name.startswith("System.Net.Http") or name == "System.Private.Uri":
            name = "HttpClient (HTTP/1.1 client, Uri)"
        elif name.startswith("Yarp"):
            name = "YARP forwarder"
        elif name == "mesh-sidecar" or name.startswith("Mesh."):
            name = "Mesh's own code"
        elif name.startswith("System.Net.Sockets") or name == "System.Net.Primitives":
            name = ".NET sockets"
        elif name.startswith("Microsoft.AspNetCore") or name.startswith("Microsoft.Extensions"):
            name = "ASP.NET Core hosting, HTTP abstractions"
        else:
            name = ".NET base library (tasks, collections, strings)"
        groups[name] += pct
    elif "libcoreclr" in dso or "libclrjit" in dso:
        groups[".NET runtime native (GC, stubs, JIT)"] += pct
    elif "libc" in dso or "ld-linux" in dso or "vdso" in dso or "libSystem.Native" in dso:
        groups["libc and syscall wrappers"] += pct
    else:
        groups["other native"] += pct

inclusive = {}
for line in ([] if data == "-" else report("--children", "--sort", "sym", "-g", "none")):
    m = re.match(r"\s*([\d.]+)%\s+([\d.]+)%\s+\[(.)\]\s+(.*)", line)
    if not m:
        continue
    sym = m.group(4).strip()
    for name, label in (("__send", "send() incl. loopback delivery to the peer"), ("__libc_recv", "recv()"),
                        ("epoll_wait", "epoll_wait()")):
        if sym == name:
            inclusive[label] = max(inclusive.get(label, 0.0), float(m.group(1)))

for name, pct in groups.most_common():
    print(f"{setup}\tself\t{name}\t{pct:.1f}")
for name, pct in inclusive.items():
    print(f"{setup}\tinclusive\t{name}\t{pct:.1f}")

# Per-thread CPU and context switches during this setup's load (the difference from the snapshot
# the previous call left in SNAPSHOT): how the work is spread over the socket thread and the
# thread pool, and how often they switch on the one core.
if pid:
    import json
    import os
    snapshot_path = sys.argv[4] if len(sys.argv) > 4 else None
    hz = os.sysconf("SC_CLK_TCK")
    now = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                stat = f.read()
            with open(f"/proc/{pid}/task/{tid}/status") as f:
                status = f.read().splitlines()
        except OSError:
            continue
        fields = stat[stat.index(")") + 2:].split()
        switches = [int(l.split()[1]) for l in status if "voluntary_ctxt_switches" in l]
        now[tid] = [stat[stat.index("(") + 1:stat.rindex(")")].strip(), (int(fields[11]) + int(fields[12])) / hz, switches[0], switches[1]]
    before = {}
    if snapshot_path and os.path.exists(snapshot_path):
        with open(snapshot_path) as f:
            before = json.load(f)
    if snapshot_path:
        with open(snapshot_path, "w") as f:
            json.dump(now, f)
    totals = {}
    for tid, (comm, cpu, vol, invol) in now.items():
        prev = before.get(tid, [comm, 0.0, 0, 0])
        t = totals.setdefault(comm, [0.0, 0, 0, 0])
        t[0] += cpu - prev[1]; t[1] += vol - prev[2]; t[2] += invol - prev[3]; t[3] += 1
    for comm, (cpu, vol, invol, count) in sorted(totals.items(), key=lambda kv: -kv[1][0]):
        if cpu >= 0.2 and data != "-":
            label = f"{comm} x{count}" if count > 1 else comm
            print(f"{setup}\tthreads\t{label}: {cpu:.1f} s, {vol:,}/{invol:,}\t0")
