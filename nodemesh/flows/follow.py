"""Reading many components' rings as one stream: cursors, merging by time, and one line each.

Theory of operation: `meshctl trace --follow` polls every agent's and waypoint's `/debug/flows`.
This module is everything about that except the polling itself, so it runs without a cluster:

- `Follower` keeps one cursor (last sequence seen) per source and builds the next query path
  for it; `receive` decodes a source's answer, advances its cursor, and remembers how many
  events the source's ring overwrote before we read them (so the CLI can say so).
- `merge` puts a round's events from every source into time order (ties: reporter, then flow)
  and applies the filter; `tail` keeps the last N for `--last`.
- `line` is the text form of one event: time, point, reporter, who → whom, HTTP facts,
  verdict with the deciding policy and rule, and the reason.

A source whose cursor is None has never answered: its first query asks for the newest event
only, to learn where "now" is, unless the reader wants history (`--last`) or the source joined
after the first round (`started`): a waypoint deployed while following is read from its start.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Protocol

from nodemesh.flows.event import Endpoint, FlowEvent, FlowVerdict
from nodemesh.flows.filters import FlowFilter
from nodemesh.flows.query import MAX_LIMIT

FLOWS_PATH = "/debug/flows"


class FlowSource(Protocol):
    """Where one ring is read: a name (the cursor's key) and one GET of its admin endpoint.

    The transport is the source's business (a socket in a local netns, a Kubernetes
    port-forward), so the reading loop is the same for every kind of cluster. `get_json` raises
    `nodemesh.local.admin_client.AdminError` or OSError when the source cannot answer now."""

    name: str

    def get_json(self, path: str, timeout: float) -> object: ...


class Follower:
    """Per-source cursors over `/debug/flows`; `history=True` reads each ring from its start."""

    def __init__(self, *, history: bool) -> None:
        self.history = history
        self.started = False  # set after the first round: later sources are read whole
        self.cursors: dict[str, int] = {}
        self.missed: dict[str, int] = {}

    def path(self, source: str, wait: float = 0.0) -> str:
        """The query path for `source`'s next poll."""
        seq = self.cursors.get(source)
        if seq is None:
            seq = 0 if self._whole else -1  # -1: the newest event only, to find "now"
        return f"{FLOWS_PATH}?since={seq}&limit={MAX_LIMIT}&wait={wait:g}"

    def receive(self, source: str, answer: dict) -> list[FlowEvent]:
        """Decode `answer`; advance the cursor; the new events (none on a first "now" poll)."""
        first = source not in self.cursors
        self.cursors[source] = int(answer["next"])
        self.missed[source] = self.missed.get(source, 0) + int(answer.get("missed", 0))
        if first and not self._whole:
            return []
        return [FlowEvent.from_dict(row) for row in answer["events"]]

    @property
    def _whole(self) -> bool:
        return self.history or self.started

    def drained(self, answer: dict) -> bool:
        """Whether a source's answer was its last page (fewer events than a full page)."""
        return len(answer["events"]) < MAX_LIMIT


def merge(batches: Iterable[list[FlowEvent]], flt: FlowFilter) -> list[FlowEvent]:
    """One round's events from every source, filtered, in time order."""
    events = [e for batch in batches for e in batch if flt.matches(e)]
    return sorted(events, key=lambda e: (e.time, e.reporter, e.flow_id, e.point))


def tail(events: list[FlowEvent], count: int | None) -> list[FlowEvent]:
    return events if count is None else events[-count:] if count > 0 else []


def line(event: FlowEvent) -> str:
    """One line: time, point, reporter, who → whom, HTTP, verdict (policy, rule), reason."""
    stamp = time.strftime("%H:%M:%S", time.gmtime(event.time)) + f".{_millis(event.time):03d}"
    parts = [stamp, f"{event.point:<17}", event.reporter]
    parts.append(f"{_side(event.source)} → {_side(event.destination)}")
    if event.service:
        parts.append(f"svc {event.service}")
    if event.route:
        parts.append(f"via {event.route}")
    if event.http is not None:
        h = event.http
        trace = f" trace={h.trace_id}" if h.trace_id else ""
        parts.append(f"{h.method} {h.path} {h.status} {h.latency_ms:.1f}ms{trace}")
    parts.append(_verdict(event))
    if event.reason:
        parts.append(f"({event.reason})")
    return "  ".join(parts)


def _millis(t: float) -> int:
    return min(round((t % 1) * 1000), 999)


def _side(endpoint: Endpoint) -> str:
    return endpoint.workload or endpoint.address or "?"


def _verdict(event: FlowEvent) -> str:
    text = str(event.verdict)
    if event.policy and event.verdict is FlowVerdict.DENIED:
        rule = f" rule {event.rule}" if event.rule is not None else ""
        text += f" by {event.policy}{rule}"
    return text
