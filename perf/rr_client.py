"""Request/response latency probe run inside a client pod: N sequential 64-byte round trips.

Prints one JSON line with percentiles in microseconds. Sequential (closed loop) on purpose for the
baseline: it measures the path's own round-trip cost; open-loop rate tests come with the mesh.
"""

import json
import socket
import sys
import time

host, port, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
payload = b"x" * 64
sock = socket.create_connection((host, port), timeout=5)
sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
samples = []
for _ in range(count):
    start = time.perf_counter_ns()
    sock.sendall(payload)
    got = 0
    while got < len(payload):
        chunk = sock.recv(65536)
        if not chunk:
            sys.exit("server closed the connection")
        got += len(chunk)
    samples.append((time.perf_counter_ns() - start) / 1000)
samples.sort()


def pct(p):
    return round(samples[min(len(samples) - 1, int(len(samples) * p / 100))], 1)


print(json.dumps({"n": count, "p50": pct(50), "p90": pct(90), "p99": pct(99)}))
