"""Open-loop HTTP load at a fixed rate, HTTP/1.1 or h2c, with latency counted from due times.

    python -m perf.http_openloop [--h2] HOST PORT RATE SECONDS [CONNECTIONS]

Theory of operation: the same discipline as `perf/openloop_client.py`, for HTTP. Request i is
due at start + i/RATE whatever happened to the ones before it, and its latency runs from that due
time to the moment its response has fully arrived, so a stall in the path shows up as latency for
every request queued behind it instead of quietly lowering the offered rate (the "coordinated
omission" a closed-loop client hides). Requests go round robin over a few keep-alive
connections; on HTTP/1.1 each connection answers in order (a request may wait behind the one
before it, as in any connection pool that pipelines), on HTTP/2 each request is its own stream.

The framing lives in the sans-I/O `perf.h1_wire` / `perf.h2_wire` clients; this module only
moves bytes and reads the clock. One thread and `select.select` (microsecond timeouts, unlike
asyncio's millisecond-rounded epoll) with the timer slack lowered, so the client's own lateness
stays small and is the same on every path the benchmark compares.
"""

from __future__ import annotations

import argparse
import json
import select
import socket
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

from perf.h1_wire import BenchProtocolError, Completed, Http1Client
from perf.h2_wire import Http2Client
from perf.openloop_client import lower_timer_slack

Clock = Callable[[], float]
DRAIN_SECONDS = 5.0  # how long answers may trail the last due time before they count as lost


@dataclass(frozen=True)
class LatencyResult:
    rate: float  # offered, req/s
    achieved: float  # answered per second of the run
    n: int  # requests answered with a 2xx
    errors: int  # answered otherwise, reset, or never answered
    p50: float | None  # microseconds from due time to the response's last byte
    p90: float | None
    p99: float | None
    max: float | None

    def as_dict(self) -> dict:
        return asdict(self)


def percentile(ordered: Sequence[float], p: float) -> float | None:
    """The nearest-rank p-th percentile of already sorted samples; None for none."""
    if not ordered:
        return None
    return round(ordered[min(len(ordered) - 1, int(len(ordered) * p / 100))], 1)


def summarize(samples: list[float], errors: int, elapsed: float, rate: float) -> LatencyResult:
    ordered = sorted(samples)
    return LatencyResult(
        rate=rate,
        achieved=round(len(ordered) / elapsed, 1) if elapsed > 0 else 0.0,
        n=len(ordered),
        errors=errors,
        p50=percentile(ordered, 50),
        p90=percentile(ordered, 90),
        p99=percentile(ordered, 99),
        max=round(ordered[-1], 1) if ordered else None,
    )


class _Conn:
    """A socket and its protocol client; writes are small, so a blocking sendall never waits."""

    def __init__(self, host: str, port: int, http2: bool) -> None:
        self.sock = socket.create_connection((host, port), timeout=5)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        authority = f"{host}:{port}"
        self.client = Http2Client(authority) if http2 else Http1Client(authority)
        self.flush()

    def flush(self) -> None:
        data = self.client.data_to_send()
        if data:
            self.sock.sendall(data)


class OpenLoop:
    """One run: `run()` offers rate × seconds requests and returns the latency summary."""

    def __init__(self, host: str, port: int, *, http2: bool, connections: int = 4) -> None:
        self.host, self.port, self.http2, self.connections = host, port, http2, connections

    def run(self, rate: float, seconds: float, clock: Clock = time.perf_counter) -> LatencyResult:
        conns = [_Conn(self.host, self.port, self.http2) for _ in range(self.connections)]
        try:
            return self._drive(conns, rate, seconds, clock)
        finally:
            for conn in conns:
                conn.sock.close()

    def _drive(
        self, conns: list[_Conn], rate: float, seconds: float, clock: Clock
    ) -> LatencyResult:
        live = {c.sock: c for c in conns}
        samples: list[float] = []
        total, sent = int(rate * seconds), 0
        start = clock() + 0.01
        deadline = start + seconds + DRAIN_SECONDS
        while (sent < total or _outstanding(live)) and live and clock() < deadline:
            now = clock()
            while sent < total and start + sent / rate <= now:
                conn = conns[sent % len(conns)]
                if conn.sock in live:  # else its connection is gone: the request counts as lost
                    conn.client.request(start + sent / rate)
                    conn.flush()
                sent += 1
            timeout = max(0.0, start + sent / rate - now) if sent < total else 0.5
            readable, _, _ = select.select(list(live), [], [], timeout)
            now = clock()
            for sock in readable:
                _read(live, sock, now, samples)
        # Every request offered and not answered with a 2xx in time is an error, whatever the cause.
        return summarize(samples, total - len(samples), clock() - start, rate)


def _read(live: dict, sock: socket.socket, now: float, samples: list[float]) -> None:
    """Take what one socket has; a 2xx adds its latency, anything else stays unanswered."""
    conn = live[sock]
    data = sock.recv(262144)
    if not data:
        del live[sock]
        return
    done: list[Completed[float]] = conn.client.receive_data(data)
    conn.flush()  # h2: SETTINGS acks and WINDOW_UPDATEs
    samples.extend((now - r.tag) * 1e6 for r in done if 200 <= r.status < 300)


def _outstanding(live: dict) -> bool:
    return any(c.client.outstanding for c in live.values())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m perf.http_openloop", description=__doc__)
    p.add_argument("--h2", action="store_true", help="h2c with prior knowledge")
    p.add_argument("host")
    p.add_argument("port", type=int)
    p.add_argument("rate", type=float)
    p.add_argument("seconds", type=float)
    p.add_argument("connections", type=int, nargs="?", default=4)
    args = p.parse_args(argv)
    lower_timer_slack()
    loop = OpenLoop(args.host, args.port, http2=args.h2, connections=args.connections)
    try:
        result = loop.run(args.rate, args.seconds)
    except (OSError, BenchProtocolError) as exc:
        print(f"open-loop run against {args.host}:{args.port} failed: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(result.as_dict()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
