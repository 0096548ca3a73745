"""Open-loop request/response probe run inside a client pod: 64-byte echoes at a fixed rate.

    python3 openloop_client.py HOST PORT RATE SECONDS [CONNECTIONS]

Request i is due at start + i/RATE whatever happened to the ones before it, and its latency is
counted from that due time, not from when it was actually written: a stall in the path therefore
shows up as latency for every request queued behind it instead of silently lowering the offered
rate (the "coordinated omission" a closed-loop client hides). Requests go round robin over a few
persistent connections, each answering in order, as a connection pool would.

One thread and `select.select`, whose timeout has microsecond resolution (asyncio's epoll rounds
its timeouts up to whole milliseconds, which would add up to 1 ms of the client's own lateness to
every figure), with the timer slack lowered so the kernel wakes it on time.

Prints one JSON line: offered and achieved rate, percentiles in microseconds, errors.
"""

import collections
import contextlib
import ctypes
import json
import select
import socket
import sys
import time

PAYLOAD = b"x" * 64
PR_SET_TIMERSLACK = 29


def lower_timer_slack() -> None:
    # Without it: the default 50 us slack, slightly later wake-ups, the same on every path.
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_TIMERSLACK, 1, 0, 0, 0)


def run(host: str, port: int, rate: float, seconds: float, conns: int) -> dict:
    socks = [socket.create_connection((host, port), timeout=5) for _ in range(conns)]
    for s in socks:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.setblocking(False)
    due = {s: collections.deque() for s in socks}
    pending = {s: 0 for s in socks}
    samples: list[float] = []
    total, sent, errors = int(rate * seconds), 0, 0
    start = time.perf_counter() + 0.01
    deadline = start + seconds + 5
    while (sent < total or any(due.values())) and time.perf_counter() < deadline:
        now = time.perf_counter()
        while sent < total and start + sent / rate <= now:
            s = socks[sent % conns]
            s.send(PAYLOAD)  # 64 B into an idle socket buffer: never short
            due[s].append(start + sent / rate)
            sent += 1
        timeout = max(0.0, start + sent / rate - now) if sent < total else 0.5
        readable, _, _ = select.select(socks, [], [], timeout)
        now = time.perf_counter()
        for s in readable:
            data = s.recv(65536)
            if not data:
                errors += len(due[s])
                due[s].clear()
                socks.remove(s)
                continue
            pending[s] += len(data)
            while pending[s] >= len(PAYLOAD) and due[s]:
                pending[s] -= len(PAYLOAD)
                samples.append((now - due[s].popleft()) * 1e6)
        if not socks:
            break
    elapsed = time.perf_counter() - start
    for s in socks:
        s.close()
    samples.sort()
    errors += total - len(samples) - errors

    def pct(p: float) -> float | None:
        if not samples:
            return None
        return round(samples[min(len(samples) - 1, int(len(samples) * p / 100))], 1)

    return {
        "rate": rate,
        "achieved": round(len(samples) / elapsed, 1),
        "n": len(samples),
        "errors": errors,
        "p50": pct(50),
        "p90": pct(90),
        "p99": pct(99),
        "max": round(samples[-1], 1) if samples else None,
    }


def main() -> None:
    host, port = sys.argv[1], int(sys.argv[2])
    rate, seconds = float(sys.argv[3]), float(sys.argv[4])
    conns = int(sys.argv[5]) if len(sys.argv) > 5 else 8
    lower_timer_slack()
    print(json.dumps(run(host, port, rate, seconds, conns)))


if __name__ == "__main__":
    main()
