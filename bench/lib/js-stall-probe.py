#!/usr/bin/env python3
"""Probes for bench/js-stall.sh: how long other connections wait while a JavaScript filter spins.

    js-stall-probe.py HOST PORT ROUNDS [TIMEOUT_MS]

Keeps 8 keep-alive connections open for /fast and one for /spin. Each round sends GET /fast on
all 8 at once; every other round first sends GET /spin (a filter that loops until its time limit
stops it) and waits a fifth of the time limit (10 ms for 50 ms) so the spin is running. The spin goes over a connection that already
served a request: Kestrel runs a connection's first request on a thread-pool thread (the bytes were
read before it took the connection over) and later ones where the socket completes, so only those
show what inline completions do. Prints, for rounds with and without the spin, how many /fast
answers took over two fifths of the time limit (20 ms for 50 ms) and their latency percentiles.
"""
import socket
import statistics
import sys
import threading
import time

HOST, PORT, ROUNDS = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
TIMEOUT_MS = float(sys.argv[4]) if len(sys.argv) > 4 else 50.0
WAIT, SLOW = TIMEOUT_MS / 5 / 1000, TIMEOUT_MS * 2 / 5
PROBES = 8


def connect():
    s = socket.create_connection((HOST, PORT))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def fast(s):
    s.sendall(b"GET /fast HTTP/1.1\r\nHost: stall\r\n\r\n")
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(4096)
        if not chunk:
            raise IOError("connection closed")
        data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(body) < length:
        body += s.recv(4096)


def spin(s):
    # The filter's own answer (504 naming the filter) is chunked: read to the last chunk.
    s.sendall(b"GET /spin HTTP/1.1\r\nHost: stall\r\n\r\n")
    data = b""
    while not data.endswith(b"0\r\n\r\n"):
        chunk = s.recv(4096)
        if not chunk:
            raise IOError("connection closed")
        data += chunk


probes = [connect() for _ in range(PROBES)]
for p in probes:
    fast(p)
spinning = connect()
fast(spinning)

results = {True: [], False: []}
for r in range(ROUNDS * 2):
    with_spin = r % 2 == 0
    spinner = None
    if with_spin:
        spinner = threading.Thread(target=spin, args=(spinning,))
        spinner.start()
        time.sleep(WAIT)
    go = threading.Barrier(PROBES)
    latencies = [0.0] * PROBES

    def probe(i):
        go.wait()
        start = time.perf_counter()
        fast(probes[i])
        latencies[i] = (time.perf_counter() - start) * 1000

    threads = [threading.Thread(target=probe, args=(i,)) for i in range(PROBES)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if spinner:
        spinner.join()
    results[with_spin].extend(latencies)
    time.sleep(0.05)

for with_spin in (False, True):
    values = sorted(results[with_spin])
    slow = sum(1 for v in values if v > SLOW)
    pick = lambda q: values[min(len(values) - 1, int(q * len(values)))]
    print(f"{'with a spinning filter' if with_spin else 'no spinning filter   '}: {slow}/{len(values)} probes over {SLOW:g} ms "
          f"({100 * slow / len(values):.0f}%), p50 {pick(0.5):.1f} ms, p90 {pick(0.9):.1f} ms, max {values[-1]:.1f} ms")
