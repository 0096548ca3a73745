"""The waypoint's L7 cost: latency, throughput, CPU and RSS vs. no proxy and vs. nginx, one run.

    python -m perf waypoint        (also part of `make bench`)

Theory of operation: everything runs on loopback in this process's network namespace, so the
only thing that differs between the rows of a protocol is what sits between the client and one
nginx backend (a fixed 64-byte response, HTTP/1.1 and h2c):
- direct: the client talks to the backend itself, the baseline;
- nginx proxy: a second nginx (`proxy_pass`, upstream keep-alive, HTTP/1.1 to the backend), the
  peer a platform team would otherwise deploy;
- waypoint: `perf.waypoint_standalone`, the waypoint's real request path (sniffing, session,
  normalization, authorization, routing, resilience, upstream pool, metrics, spans, access log)
  as its own process, HTTP/1.1 to the backend.
Each path gets a warm-up, then open-loop latency at RATE req/s (`perf.http_openloop`: latency from
each request's due time, so stalls are not hidden), then a bounded closed-loop ceiling with
h2load. While the latency run is on, the proxy process's CPU (user and kernel, from /proc) is
read, and its RSS after, which give the cost per 1,000 req/s beside the latency it buys.

Both proxies run one worker and write an access log line per request (to /dev/null). Nothing
asserts on timing; the table is for people. Every process started here is stopped and the temp
directory removed on the way out, failures included (context managers, and PR_SET_PDEATHSIG for
a benchmark killed outright). Bounded: about 45 s in all.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from nodemesh.eventloop import ENV as LOOP_ENV
from perf import h2load
from perf.bench_procs import BenchError, Child, free_ports
from perf.h1_wire import BenchProtocolError
from perf.h2load import Throughput, run_h2load
from perf.http_openloop import LatencyResult, OpenLoop
from perf.nginx_server import Nginx, backend_servers, proxy_servers
from perf.openloop_client import lower_timer_slack
from perf.proc_meter import ProcessMeter, Usage, tree_pids
from perf.waypoint_report import report

RATE = 1000
SECONDS = 3.0
WARMUP_SECONDS = 0.5
CONNECTIONS = 4
TEMP_PREFIX = "nodemesh-waypoint-bench-"
REPO = Path(__file__).resolve().parent.parent


def shape() -> str:
    """How the load was offered, printed above the tables."""
    loop = os.environ.get(LOOP_ENV, "uvloop")
    return (
        f"open loop {RATE} req/s × {SECONDS:g} s of GETs (64 B answers) over {CONNECTIONS} "
        f"keep-alive connections after a {WARMUP_SECONDS:g} s warm-up; max: h2load, "
        f"{h2load.CLIENTS} connections × {h2load.SECONDS} s (HTTP/2: {h2load.H2_STREAMS} "
        f"streams each); proxies: one worker, access log on; waypoint event loop: {loop}"
    )


@dataclass(frozen=True)
class Target:
    """One path to measure: where the client connects and which process to meter."""

    proto: str  # "HTTP/1.1" or "HTTP/2" (h2c, prior knowledge)
    path: str  # "direct", "nginx proxy" or "waypoint"
    port: int  # on 127.0.0.1; 0 when the path is unavailable
    meter_pid: int | None = None  # the proxy process (and its children) to read CPU/RSS of
    unavailable: str = ""  # why this path cannot be measured in this checkout

    @property
    def http2(self) -> bool:
        return self.proto == "HTTP/2"


@dataclass
class Row:
    """What was measured on one path; `note` says why a figure is missing."""

    target: Target
    latency: LatencyResult | None = None
    throughput: Throughput | None = None
    usage: Usage | None = None  # proxy CPU over the latency run
    rss_mb: float | None = None  # proxy RSS right after the latency run
    max_cores: float | None = None  # proxy vCPU during the throughput run
    note: str = ""


class WaypointProcess(Child):
    """`python -m perf.waypoint_standalone` on a port of its choosing; learns port and HTTP/2."""

    def __init__(self, workdir: Path, backend_port: int) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        argv = [sys.executable, "-m", "perf.waypoint_standalone", "--listen", "127.0.0.1:0"]
        argv += ["--backend", f"127.0.0.1:{backend_port}", "--access-log", "/dev/null"]
        super().__init__("waypoint", argv, workdir / "stderr.log", cwd=REPO)
        self.port, self.http2, self.why = 0, False, ""

    def __enter__(self) -> WaypointProcess:
        super().__enter__()
        try:
            self._ready(self.read_line())
            self.wait_listening([self.port])
        except BaseException:
            self.stop()
            raise
        return self

    def _ready(self, line: str) -> None:
        try:
            ready = json.loads(line)
            self.port, self.http2, self.why = ready["port"], ready["http2"], ready["why"]
        except (ValueError, KeyError, TypeError) as exc:
            raise BenchError(f"waypoint announced {line.strip()[:200]!r}, not its port") from exc


def targets(ports: dict[str, int], proxy: Nginx, waypoint: WaypointProcess) -> list[Target]:
    h2_missing = "" if waypoint.http2 else f"waypoint session not available yet ({waypoint.why})"
    return [
        Target("HTTP/1.1", "direct", ports["backend_h1"]),
        Target("HTTP/1.1", "nginx proxy", ports["proxy_h1"], proxy.pid),
        Target("HTTP/1.1", "waypoint", waypoint.port, waypoint.pid),
        Target("HTTP/2", "direct", ports["backend_h2"]),
        Target("HTTP/2", "nginx proxy", ports["proxy_h2"], proxy.pid),
        Target("HTTP/2", "waypoint", waypoint.port, waypoint.pid, h2_missing),
    ]


def measure(target: Target) -> Row:
    """Warm up, latency at RATE (metered), then the ceiling; a failure costs this row only."""
    row = Row(target)
    if target.unavailable:
        row.note = target.unavailable
        return row
    pids = tree_pids(target.meter_pid) if target.meter_pid else []
    try:
        _latency(row, pids)
        _ceiling(row, pids)
    except (BenchError, BenchProtocolError, OSError) as exc:
        row.note = f"failed: {exc}"
    return row


def _latency(row: Row, pids: list[int]) -> None:
    target = row.target
    client = OpenLoop("127.0.0.1", target.port, http2=target.http2, connections=CONNECTIONS)
    client.run(RATE, WARMUP_SECONDS)  # connections, pools and caches warm; not counted
    meter = ProcessMeter(pids)
    row.latency = meter.measure(lambda: client.run(RATE, SECONDS))
    if pids:
        row.usage, row.rss_mb = meter.usage, meter.rss_mb()


def _ceiling(row: Row, pids: list[int]) -> None:
    meter = ProcessMeter(pids)
    url = f"http://127.0.0.1:{row.target.port}/"
    row.throughput = meter.measure(lambda: run_h2load(url, http2=row.target.http2))
    row.max_cores = meter.usage.cores if pids else None


def run_all(workdir: Path) -> list[Row]:
    names = ("backend_h1", "backend_h2", "proxy_h1", "proxy_h2")
    ports = dict(zip(names, free_ports(len(names)), strict=True))
    backend_ports = [ports["backend_h1"], ports["backend_h2"]]
    proxy_ports = [ports["proxy_h1"], ports["proxy_h2"]]
    with contextlib.ExitStack() as stack:
        stack.enter_context(
            Nginx(
                "backend nginx", workdir / "backend", backend_servers(*backend_ports), backend_ports
            )
        )
        proxy = stack.enter_context(
            Nginx(
                "nginx proxy",
                workdir / "proxy",
                proxy_servers(*proxy_ports, ports["backend_h1"]),
                proxy_ports,
            )
        )
        waypoint = stack.enter_context(WaypointProcess(workdir / "waypoint", ports["backend_h1"]))
        return [measure(t) for t in targets(ports, proxy, waypoint)]


def main() -> int:
    missing = [tool for tool in ("nginx", "h2load") if shutil.which(tool) is None]
    if missing:
        print(
            f"skipped: {' and '.join(missing)} not installed (apt-get install nginx-light "
            "nghttp2-client)"
        )
        return 0
    lower_timer_slack()
    started = time.monotonic()
    try:
        with _terminate_unwinds(), tempfile.TemporaryDirectory(prefix=TEMP_PREFIX) as tmp:
            rows = run_all(Path(tmp))
    except BenchError as exc:
        print(f"waypoint benchmark could not run: {exc}")
        return 1
    report(rows, shape(), time.monotonic() - started)
    return 0


@contextlib.contextmanager
def _terminate_unwinds():
    """SIGTERM raises SystemExit while the servers run, so their `finally`s stop them and the
    temp directory goes too (Python's default SIGTERM action exits without unwinding)."""

    def unwind(signum, frame):
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, unwind)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
