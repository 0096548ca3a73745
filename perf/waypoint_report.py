"""The waypoint benchmark's tables: latency and ceiling, added latency, cost per 1,000 req/s.

Theory of operation: the runner (`perf.waypoint_bench`) produces one `Row` per (protocol, path);
this module only turns rows into text, with the issue's targets printed beside the figures they
judge ("met" / "missed"): a report for people, never an assertion. The arithmetic (added latency
against the same protocol's direct row, CPU and RSS per 1,000 req/s) is in small pure functions
so it can be checked without running anything.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from perf.http_openloop import LatencyResult
    from perf.waypoint_bench import Row

TARGET_P99_ADDED_US = 1000.0
TARGET_VCPU_PER_K = 0.25
TARGET_MB_PER_K = 60.0
PERCENTILES = ("p50", "p90", "p99")
SATURATED = 0.95  # a path that answered less than this share of the offered rate fell behind


@dataclass(frozen=True)
class Cost:
    """A proxy's cost while carrying the open-loop rate."""

    cores: float  # vCPU used on average
    user_s: float  # CPU seconds in user space (Python, uvloop, nginx's own code)
    kernel_s: float  # CPU seconds in the kernel (syscalls, loopback TCP)
    us_per_request: float  # CPU microseconds per answered request
    rss_mb: float
    cores_per_k: float  # per 1,000 req/s actually carried
    mb_per_k: float  # per 1,000 req/s offered: memory is held for the load, not per request


def added(row: Row, direct: Row) -> dict[str, float] | None:
    """Percentiles of row minus the direct path's, in µs; None when either is missing."""
    if row.latency is None or direct.latency is None:
        return None
    out = {}
    for key in PERCENTILES:
        mine, base = getattr(row.latency, key), getattr(direct.latency, key)
        if mine is None or base is None:
            return None
        out[key] = mine - base
    return out


def cost(row: Row) -> Cost | None:
    if row.usage is None or row.latency is None or row.rss_mb is None or not row.latency.n:
        return None
    usage = row.usage
    carried, offered = max(row.latency.achieved, 1.0) / 1000, row.latency.rate / 1000
    return Cost(
        cores=usage.cores,
        user_s=usage.user,
        kernel_s=usage.system,
        us_per_request=(usage.user + usage.system) / row.latency.n * 1e6,
        rss_mb=row.rss_mb,
        cores_per_k=usage.cores / carried,
        mb_per_k=row.rss_mb / offered,
    )


def verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


def latency_lines(rows: Sequence[Row], proto: str) -> list[str]:
    lines = [
        f"{proto:14} {'p50 us':>9} {'p90 us':>9} {'p99 us':>9} {'max us':>9} {'max req/s':>10}"
    ]
    for row in (r for r in rows if r.target.proto == proto):
        if row.latency is None:
            lines.append(f"{row.target.path:14} {proto}: {row.note or row.target.unavailable}")
            continue
        lat = row.latency
        cells = " ".join(f"{_num(getattr(lat, k)):>9}" for k in (*PERCENTILES, "max"))
        ceiling = f"{row.throughput.req_s:>10.0f}" if row.throughput else f"{'-':>10}"
        lines.append(f"{row.target.path:14} {cells} {ceiling}{_shortfall(lat)}{_note(row)}")
    return lines


def added_lines(rows: Sequence[Row]) -> list[str]:
    header = f"{'added vs direct':26} {'+p50 us':>9} {'+p90 us':>9} {'+p99 us':>9}"
    lines = [f"{header}   target +p99 ≤ {TARGET_P99_ADDED_US:.0f} us"]
    for row in rows:
        direct = _direct(rows, row.target.proto)
        if direct is None or row is direct:
            continue
        delta = added(row, direct)
        if delta is None:
            continue
        cells = " ".join(f"{delta[k]:>+9.0f}" for k in PERCENTILES)
        ok = delta["p99"] <= TARGET_P99_ADDED_US
        lines.append(f"{_label(row):26} {cells}   {verdict(ok)}")
    return lines


def cost_lines(rows: Sequence[Row]) -> list[str]:
    lines = [
        f"{'cost at the open-loop rate':26} {'vCPU':>6} {'user s':>7} {'kern s':>7} "
        f"{'CPU us/req':>10} {'MB RSS':>7} {'vCPU/1k':>8} {'MB/1k':>6} {'vCPU@max':>8}",
    ]
    for row in rows:
        c = cost(row)
        if c is None:
            continue
        at_max = f"{row.max_cores:>8.2f}" if row.max_cores is not None else f"{'-':>8}"
        ok = c.cores_per_k <= TARGET_VCPU_PER_K and c.mb_per_k <= TARGET_MB_PER_K
        lines.append(
            f"{_label(row):26} {c.cores:>6.3f} {c.user_s:>7.2f} {c.kernel_s:>7.2f} "
            f"{c.us_per_request:>10.0f} {c.rss_mb:>7.1f} {c.cores_per_k:>8.3f} {c.mb_per_k:>6.1f} "
            f"{at_max}   {verdict(ok)}"
        )
    lines.append(
        f"targets: ≤ {TARGET_VCPU_PER_K} vCPU and ≤ {TARGET_MB_PER_K:.0f} MB per 1,000 req/s; "
        "user = the proxy's own code (for the waypoint: Python and uvloop), kern = syscalls "
        "and loopback TCP; vCPU@max = during the h2load ceiling run (1.0 = one core saturated)"
    )
    return lines


def report(rows: Sequence[Row], shape: str, elapsed: float) -> None:
    print(f"({shape})")
    for proto in dict.fromkeys(r.target.proto for r in rows):
        print("\n".join(latency_lines(rows, proto)))
    print("\n".join(added_lines(rows)))
    print("\n".join(cost_lines(rows)))
    print(f"(waypoint benchmark took {elapsed:.0f} s)")


def _direct(rows: Sequence[Row], proto: str) -> Row | None:
    return next((r for r in rows if r.target.proto == proto and r.target.path == "direct"), None)


def _label(row: Row) -> str:
    return f"{row.target.proto} {row.target.path}"


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def _shortfall(lat: LatencyResult) -> str:
    """Say so when the path did not keep up: its percentiles then measure a queue."""
    parts = []
    if lat.errors:
        parts.append(f"{lat.errors} of {lat.n + lat.errors} failed")
    if lat.achieved < SATURATED * lat.rate:
        parts.append(f"carried only {lat.achieved:.0f} req/s: saturated")
    return f"  ({'; '.join(parts)})" if parts else ""


def _note(row: Row) -> str:
    return f"  [{row.note}]" if row.note else ""
