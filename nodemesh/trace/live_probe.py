"""The probe a live trace sends from pod FROM, as a command line, and what its output means.

Theory of operation: a live trace must be able to find its own traffic among everything the
components record, so the probe is made recognisable before it is sent. Two marks are chosen
here, not by the kernel: the client's local port (`curl --local-port`, or `bind()` for L4), which
the source agent records as the connection's source address, and for HTTP a W3C `traceparent`
whose trace id the waypoint keeps and records with the request. The command runs inside FROM's
network namespace and cgroup (so capture sees it); this module only builds it and reads its one
line of output back, so both are tested without a pod.

HTTP probes use curl (`-w` prints the status and the total time); L4 probes use a few lines of
Python that connect, then wait briefly for the mesh to reset a refused connection, because a
captured connect() always succeeds locally: a denial arrives as a reset just after.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

from nodemesh.trace.probe import HttpProbe

LOCAL_PORTS = (20000, 29999)  # below Linux's ephemeral range, so the kernel never hands them out
L4_HOLD = 0.5  # seconds an L4 probe waits for a reset after connecting

# argv[1:]: ip port local_port timeout hold; prints "ok|reset|closed|refused|timeout|error MS".
L4_SCRIPT = """\
import socket, sys, time
ip, port, local, timeout, hold = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), \\
    float(sys.argv[4]), float(sys.argv[5])
t0 = time.monotonic()
s = socket.socket(socket.AF_INET6 if ":" in ip else socket.AF_INET)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("", local))
s.settimeout(timeout)
try:
    s.connect((ip, port))
    ms = (time.monotonic() - t0) * 1000
    s.settimeout(hold)
    try:
        word = "closed" if s.recv(1) == b"" else "ok"
    except TimeoutError:
        word = "ok"
    except ConnectionResetError:
        word = "reset"
except ConnectionRefusedError:
    word, ms = "refused", (time.monotonic() - t0) * 1000
except TimeoutError:
    word, ms = "timeout", (time.monotonic() - t0) * 1000
except OSError as exc:
    word, ms = "error", (time.monotonic() - t0) * 1000
    print(exc, file=sys.stderr)
print(word, round(ms, 3))
s.close()
"""


class ProbeOutputError(ValueError):
    """The probe command printed something this module does not read (a bug or a missing tool)."""


@dataclass(frozen=True)
class Marks:
    """What makes this probe's traffic recognisable in the flow events."""

    local_port: int
    trace_id: str  # 32 lower-case hex digits
    span_id: str  # 16 lower-case hex digits

    @property
    def traceparent(self) -> str:
        return f"00-{self.trace_id}-{self.span_id}-01"


@dataclass(frozen=True)
class ProbeResult:
    """What the probe itself saw: `ok` means the request was answered or the connection held."""

    ok: bool
    summary: str  # "HTTP 200 in 12.3 ms", "connection reset after 1.2 ms"
    status: int | None = None  # the HTTP status, for HTTP probes that got an answer


def new_marks(
    random_bytes: Callable[[int], bytes] = os.urandom, local_port: int | None = None
) -> Marks:
    """Fresh marks; the local port is drawn from `LOCAL_PORTS` unless given."""
    low, high = LOCAL_PORTS
    if local_port is None:
        local_port = low + int.from_bytes(random_bytes(2), "big") % (high - low + 1)
    trace_id = random_bytes(16).hex()
    span_id = random_bytes(8).hex()
    if set(trace_id) == {"0"} or set(span_id) == {"0"}:  # all-zero ids are invalid (W3C §3.2)
        trace_id, span_id = "1" + trace_id[1:], "1" + span_id[1:]
    return Marks(local_port, trace_id, span_id)


def probe_argv(
    ip: str, port: int, http: HttpProbe | None, marks: Marks, timeout: float
) -> list[str]:
    """The command to run in FROM's pod: curl for HTTP, the L4 script otherwise."""
    if http is None:
        script = ["python3", "-c", L4_SCRIPT, ip, str(port), str(marks.local_port)]
        return [*script, f"{timeout:g}", f"{L4_HOLD:g}"]
    host = f"[{ip}]" if ":" in ip else ip
    argv = ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code} %{time_total}"]
    argv += ["--local-port", str(marks.local_port), "-m", f"{timeout:g}", "-X", http.method]
    argv += ["-H", f"traceparent: {marks.traceparent}"]
    for name, value in http.headers:
        argv += ["-H", f"{name}: {value}"]
    return [*argv, f"http://{host}:{port}{http.path}"]


def read_result(http: bool, exit_code: int, stdout: str, stderr: str = "") -> ProbeResult:
    """The probe's own outcome from its exit code and its one line of output."""
    fields = stdout.split()
    if len(fields) != 2:
        why = stderr.strip() or f"exit code {exit_code}"
        raise ProbeOutputError(f"the probe printed {stdout!r} ({why}); is curl/python3 installed?")
    if http:
        return _http_result(exit_code, int(fields[0]), float(fields[1]) * 1000)
    return _l4_result(fields[0], float(fields[1]))


def _http_result(exit_code: int, status: int, ms: float) -> ProbeResult:
    if status == 0:
        what = {7: "connection refused", 28: "timed out", 52: "empty reply", 56: "reset"}
        cause = what.get(exit_code, f"curl exit code {exit_code}")
        return ProbeResult(False, f"no HTTP response ({cause}) after {ms:.1f} ms")
    return ProbeResult(status < 400, f"HTTP {status} in {ms:.1f} ms", status)


def _l4_result(word: str, ms: float) -> ProbeResult:
    texts = {
        "ok": "connected",
        "closed": "connected, then closed by the far side",
        "reset": "connection reset",
        "refused": "connection refused",
        "timeout": "connect timed out",
        "error": "connect failed",
    }
    if word not in texts:
        raise ProbeOutputError(f"the L4 probe printed {word!r}, not one of {sorted(texts)}")
    return ProbeResult(word in ("ok", "closed"), f"{texts[word]} after {ms:.1f} ms")
