"""Which flow events belong to one live probe, among everything the components recorded.

Theory of operation: nothing is correlated when events are recorded (`nodemesh.flows.event`), so
a live trace correlates afterwards, with the marks it put on its own traffic
(`nodemesh.trace.live_probe`) and the facts each component is known to record:

- the source agent records the connection's source address, FROM's address with the local port
  the probe chose: its `source-agent` and `tunnel-out` events share one `flow_id`;
- the waypoint records each request's W3C trace id, which the probe chose;
- the destination agent records neither. Its source is the address in the tunnel's `Forwarded`
  header (the client's own for a direct tunnel, the waypoint's when a waypoint forwarded), its
  destination the pod address the tunnel named. So it is matched by that destination (the source
  agent's for a direct tunnel, the waypoint's upstream otherwise), by source address for a direct
  tunnel, and by time: inside the probe's window. Its `delivered` event shares its `flow_id`.

A waypoint keeps upstream connections open and reuses them, so a request may cross no new
destination-agent decision at all: the decision was made when that connection opened. `match`
then falls back on `history` (events recorded before the probe) for the newest allowed decision
on the same destination whose connection has not closed, and says it did (`reused`).
Concurrent traffic that looks exactly like the probe (same pod, same port, same instant) could be
mistaken for it; the marks make that unlikely, not impossible.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from nodemesh.flows.event import FlowEvent, FlowVerdict, Point

SLACK = 0.5  # seconds either side of the probe's window: the components' clocks are the host's


@dataclass(frozen=True)
class ProbeKey:
    """The probe's marks and its time window (Unix time, as the events carry it)."""

    namespace: str  # FROM's
    name: str
    local_port: int
    trace_id: str | None  # None for an L4 probe
    start: float
    end: float

    def in_window(self, event: FlowEvent) -> bool:
        return self.start - SLACK <= event.time <= self.end + SLACK


@dataclass(frozen=True)
class Observed:
    """The probe's events, by point; absent points are None."""

    source_agent: FlowEvent | None = None
    tunnel_out: FlowEvent | None = None
    waypoint: FlowEvent | None = None
    destination_agent: FlowEvent | None = None
    delivered: FlowEvent | None = None
    reused: bool = False  # the destination-agent event is an earlier, still-open connection's

    @property
    def events(self) -> list[FlowEvent]:
        found = [self.source_agent, self.tunnel_out, self.waypoint]
        return [e for e in [*found, self.destination_agent, self.delivered] if e is not None]

    @property
    def refused(self) -> bool:
        """Some component denied or failed the probe: no later hop will report it."""
        return any(e.verdict is not FlowVerdict.FORWARDED for e in self.events)

    @property
    def complete(self) -> bool:
        """Enough is known to stop collecting: the far end reported, or something refused."""
        arrived = self.destination_agent is not None or self.delivered is not None
        tunnel_pending = self.source_agent is not None and self.source_agent.route in (
            "direct",
            "waypoint",
        )
        return self.refused or (arrived and not (tunnel_pending and self.tunnel_out is None))


def match(
    events: Iterable[FlowEvent], key: ProbeKey, history: Iterable[FlowEvent] = ()
) -> Observed:
    """The probe's events among `events` (recorded since the probe started)."""
    events = list(events)
    source_flow = [e for e in events if _from_probe(e, key)]
    source = _first(source_flow, Point.SOURCE_AGENT)
    tunnel = _first(source_flow, Point.TUNNEL_OUT)
    if source is None and tunnel is not None and tunnel.point is Point.SOURCE_AGENT:
        source = tunnel
    waypoint = next((e for e in events if _same_trace(e, key)), None)
    arrival = [e for e in events if key.in_window(e) and _arrives(e, source, waypoint)]
    destination = _first(arrival, Point.DESTINATION_AGENT)
    reused = False
    if destination is None and waypoint is not None and waypoint.verdict is FlowVerdict.FORWARDED:
        destination = _still_open(list(history), waypoint)
        reused = destination is not None
    delivered = None
    if destination is not None and not reused:
        delivered = next(
            (e for e in events if e.point is Point.DELIVERED and e.flow_id == destination.flow_id),
            None,
        )
    return Observed(source, tunnel, waypoint, destination, delivered, reused)


def _from_probe(event: FlowEvent, key: ProbeKey) -> bool:
    """A source agent's event about a connection from FROM's chosen local port."""
    if event.point not in (Point.SOURCE_AGENT, Point.TUNNEL_OUT):
        return False
    src = event.source
    port = (src.address or "").rpartition(":")[2]
    same_pod = (src.namespace, src.name) == (key.namespace, key.name)
    return same_pod and port == str(key.local_port) and key.in_window(event)


def _first(events: list[FlowEvent], point: Point) -> FlowEvent | None:
    """The first event at `point`; later ones must share its flow (one connection)."""
    return next((e for e in events if e.point is point), None)


def _same_trace(event: FlowEvent, key: ProbeKey) -> bool:
    http = event.http
    return (
        event.point is Point.WAYPOINT and http is not None and http.trace_id == key.trace_id
    ) and key.trace_id is not None


def _arrives(event: FlowEvent, source: FlowEvent | None, waypoint: FlowEvent | None) -> bool:
    """A destination agent's decision on the connection that carried the probe (see above)."""
    if event.point is not Point.DESTINATION_AGENT:
        return False
    if waypoint is not None:
        return event.destination.address == waypoint.destination.address
    if source is None or source.route != "direct":
        return False
    client_ip = _host(source.source.address)
    same_source = _host(event.source.address) == client_ip
    return same_source and event.destination.address == source.destination.address


def _still_open(history: list[FlowEvent], waypoint: FlowEvent) -> FlowEvent | None:
    """The newest allowed decision on the waypoint's upstream whose connection is still open."""
    closed = {e.flow_id for e in history if e.point is Point.DELIVERED}
    for event in reversed(sorted(history, key=lambda e: e.time)):
        if (
            event.point is Point.DESTINATION_AGENT
            and event.verdict is FlowVerdict.FORWARDED
            and event.destination.address == waypoint.destination.address
            and event.flow_id not in closed
            and event.time <= waypoint.time
        ):
            return event
    return None


def _host(address: str | None) -> str | None:
    """ "198.18.1.5" from "198.18.1.5:40000" or "198.18.1.5"; "[::1]:80" → "::1"."""
    if not address:
        return None
    if address.startswith("["):
        return address[1:].partition("]")[0]
    if address.count(":") == 1:
        return address.partition(":")[0]
    return address
