"""Maximum throughput with h2load (nghttp2-client): how many requests/s a path carries flat out.

Theory of operation: latency is measured at a fixed rate by our own open-loop client; the
ceiling is measured closed loop by a C client that cannot be the bottleneck, with many requests
in flight. h2load runs timing-based (`-D` seconds after a `--warm-up-time`), so a slow path costs
the same wall time as a fast one and the whole benchmark stays bounded. HTTP/1.1 (`--h1`) gets
one request in flight per connection (no pipelining: real clients do not pipeline), HTTP/2 gets
`streams` concurrent streams per connection. The summary lines are parsed by a pure function.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass

from perf.bench_procs import BenchError

CLIENTS = 16
H2_STREAMS = 10
SECONDS = 3  # h2load takes whole durations with a unit: "3s", "500ms"
WARMUP_MS = 500

_FINISHED = re.compile(r"^finished in [\d.]+\w*, ([\d.]+) req/s", re.MULTILINE)
_REQUESTS = re.compile(
    r"^requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, "
    r"(\d+) errored",
    re.MULTILINE,
)
_STATUS = re.compile(r"^status codes: (\d+) 2xx", re.MULTILINE)


@dataclass(frozen=True)
class Throughput:
    req_s: float  # responses per second over the measured period
    done: int  # requests completed in the measured period
    ok: int  # of which answered 2xx
    failed: int  # failed or errored (connection errors, resets, non-2xx)


def h2load_argv(url: str, *, http2: bool, clients: int = CLIENTS) -> list[str]:
    argv = ["h2load", "-c", str(clients), "-D", f"{SECONDS}s", "--warm-up-time", f"{WARMUP_MS}ms"]
    argv += ["-m", str(H2_STREAMS)] if http2 else ["--h1", "-m", "1"]
    return [*argv, url]


def parse_h2load(output: str) -> Throughput:
    """The figures from h2load's summary; BenchError when the run produced none."""
    finished, requests, status = (p.search(output) for p in (_FINISHED, _REQUESTS, _STATUS))
    if finished is None or requests is None or status is None:
        tail = output.strip()[-400:] or "(no output)"
        raise BenchError(f"h2load printed no summary (is the URL reachable?): {tail}")
    done, ok = int(requests.group(3)), int(status.group(1))
    # h2load counts 'errored' within 'failed'; a non-2xx still counts as 'succeeded' there.
    failed = int(requests.group(5)) + max(0, int(requests.group(4)) - ok)
    return Throughput(req_s=float(finished.group(1)), done=done, ok=ok, failed=failed)


def run_h2load(url: str, *, http2: bool) -> Throughput:
    if shutil.which("h2load") is None:
        raise BenchError("h2load not found: apt-get install nghttp2-client")
    timeout = SECONDS + WARMUP_MS / 1000 + 30
    try:
        proc = subprocess.run(
            h2load_argv(url, http2=http2), capture_output=True, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired as exc:
        raise BenchError(f"h2load against {url} did not finish in {timeout} s") from exc
    return parse_h2load(proc.stdout + proc.stderr)
