"""One frame of `meshctl dashboard --watch`: golden-signal rows in, terminal text out. Pure.

Theory of operation: the watch loop (`nodemesh.cli.dashboard_cmd`) fetches the rows, measures
the terminal, and hands both here; `render` returns the frame's text and never writes, sleeps or
asks Prometheus, so every layout decision is a unit test away. A frame is:

    nodemesh top   09:12:03   every 2s, rate window 1m   (Ctrl-C quits)
    Prometheus http://198.18.0.11:9090 (netns nm-c1-node1)   Grafana http://localhost:3000
    <error line, when the last refresh failed: the view keeps running>
    SERVICE            REQ/S  SUCCESS  P50(ms)  P90(ms)  P99(ms)  TCP-CONN/S  TCP-OPEN  BYTES/S
    web.shop.svc...    12.40   100.0%      1.2      3.5      9.8        0.00         4      812

Rows are sorted by request rate, busiest first (then TCP connection rate, then name), as `top`
sorts by CPU: the service that matters now is on top. Width-aware: numeric columns keep their
width; the service column takes what is left and is cut with "…"; when that is too narrow for
the names, the least telling columns go first (bytes, open connections, p50, p90), and every
line is cut to the width, so a narrow terminal never wraps a row into the next.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from nodemesh.local.golden_signals import ServiceSignals

MIN_SERVICE = 12  # narrower than this and the column says nothing: drop others first
WANT_SERVICE = 32  # "reviews.bookinfo.svc.cluster.local" minus a little: worth a column or two
ELLIPSIS = "…"


@dataclass(frozen=True)
class Column:
    title: str
    width: int
    cell: Callable[[ServiceSignals], str]


def _num(value: float | None, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f}%"


# In display order; DROP_ORDER says which go first when the terminal is narrow.
COLUMNS = (
    Column("REQ/S", 9, lambda r: _num(r.requests_per_second, ".2f")),
    Column("SUCCESS", 8, lambda r: _percent(r.success_rate)),
    Column("P50(ms)", 8, lambda r: _num(r.p50_ms, ".1f")),
    Column("P90(ms)", 8, lambda r: _num(r.p90_ms, ".1f")),
    Column("P99(ms)", 8, lambda r: _num(r.p99_ms, ".1f")),
    Column("TCP-CONN/S", 10, lambda r: _num(r.tcp_opened_per_second, ".2f")),
    Column("TCP-OPEN", 8, lambda r: _num(r.tcp_open_connections, ".0f")),
    Column("BYTES/S", 10, lambda r: _num(r.tcp_bytes_per_second, ".0f")),
)
DROP_ORDER = ("BYTES/S", "TCP-OPEN", "P50(ms)", "P90(ms)", "TCP-CONN/S", "SUCCESS", "P99(ms)")


@dataclass(frozen=True)
class Frame:
    """What one refresh knows; `rows` is None when the refresh failed (`error` says why)."""

    now: float  # Unix time of the refresh
    prometheus: str  # "http://198.18.0.11:9090 (netns nm-c1-node1)"
    interval: float  # seconds between refreshes
    window: str  # PromQL rate window, "1m"
    rows: Sequence[ServiceSignals] | None
    error: str | None = None
    grafana: str | None = None  # Grafana's URL, when the user configured one


def sort_rows(rows: Sequence[ServiceSignals]) -> list[ServiceSignals]:
    """Busiest first: request rate, then TCP connection rate, then name (stable, readable)."""
    return sorted(rows, key=lambda r: (-r.requests_per_second, -r.tcp_opened_per_second, r.service))


def columns_for(width: int, longest: int = MIN_SERVICE) -> tuple[int, list[Column]]:
    """(service column width, the numeric columns that fit in `width`); REQ/S always stays.

    Columns are dropped until the service column holds the longest name (up to `WANT_SERVICE`
    characters; longer names are cut rather than costing a column): a row must say which
    service it is before it says anything else.
    """
    wanted = max(MIN_SERVICE, min(longest, WANT_SERVICE))
    kept, drops = list(COLUMNS), list(DROP_ORDER)
    while drops and width - _used(kept) < wanted:
        title = drops.pop(0)
        kept = [c for c in kept if c.title != title]
    return max(width - _used(kept), MIN_SERVICE), kept


def _used(columns: list[Column]) -> int:
    return sum(c.width + 1 for c in columns)  # one space before each numeric column


def render(frame: Frame, width: int) -> str:
    """The frame's text, every line at most `width` characters, ending with a newline."""
    width = max(width, MIN_SERVICE + 1)
    clock = time.strftime("%H:%M:%S", time.localtime(frame.now))
    lines = [
        f"nodemesh top   {clock}   every {frame.interval:g}s, rate window {frame.window}"
        "   (Ctrl-C quits)",
        f"Prometheus {frame.prometheus}" + (f"   Grafana {frame.grafana}" if frame.grafana else ""),
    ]
    if frame.error is not None:
        lines.append(f"! refresh failed: {frame.error}")
    lines.append("")
    lines += _table(frame.rows, width)
    return "".join(_fit(line, width) + "\n" for line in lines)


def _table(rows: Sequence[ServiceSignals] | None, width: int) -> list[str]:
    if rows is None:
        return ["(no data this refresh; retrying)"]
    if not rows:
        return ["no mesh traffic in the window yet"]
    service_width, columns = columns_for(width, max(len(r.service) for r in rows))
    header = "SERVICE".ljust(service_width) + "".join(" " + c.title.rjust(c.width) for c in columns)
    body = [
        _fit(r.service or "<none>", service_width).ljust(service_width)
        + "".join(" " + c.cell(r).rjust(c.width) for c in columns)
        for r in sort_rows(rows)
    ]
    return [header, *body]


def _fit(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + ELLIPSIS
