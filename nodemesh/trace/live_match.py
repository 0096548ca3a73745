"""Which flow events belong to one live probe, among everything the components recorded.

Theory of operation: nothing is correlated when events are recorded (`nodemesh.flows.event`), so
a live trace correlates afterwards, with the marks it put on its own traffic
(`nodemesh.trace.live_probe`) and the facts each component is known to record:

- the source agent records the connection's source address, FROM's address with the local port
  the probe chose: its `source-agent` and `tunnel-out` events share one `flow_id`;
- the waypoint records each request's W3C trace id, which the probe chose, and the key of the
  upstream HBONE tunnel that carried it (`FlowEvent.tunnel`: the TLS connection's two addresses
  and the CONNECT stream id, `nodemesh.hbone.headers.tunnel_key`);
- the destination agent records the same key on its decision for the tunnel, and the
  traceparent the CONNECT carried (the waypoint sends the request's own when it opens a tunnel
  for it). Its `delivered` event shares its `flow_id`.

Behind a waypoint the join is exact: the destination decision is the one whose tunnel key is the
waypoint request's, looked up in the probe's events and in `history` (events recorded before the
probe). A waypoint keeps upstream tunnels open and reuses them, so that decision may be older
than the request: it was made when the tunnel opened. It is `reused` when its CONNECT carried
another trace than the probe's (or, with no traceparent recorded, when it predates the
request); the trace then says when the tunnel opened. Look-alike traffic (same destination,
same instant) cannot be mistaken for the probe: it travels in other tunnels.

A direct tunnel (no waypoint) is joined the same way, by the key on the source agent's
`tunnel-out` event. Only events from an older component, which records no key, still match by
address and time: by destination (the waypoint's upstream, or the source agent's for a direct
tunnel), by client address for a direct tunnel, inside the probe's window; behind a waypoint,
else by the newest allowed, still-open decision on that address in `history`. Concurrent
look-alike traffic could be mistaken for the probe there (`exact` is False, and the trace
says so).
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
    reused: bool = (
        False  # the destination decision was made when an earlier request's tunnel opened
    )
    exact: bool = True  # False: the destination was matched by address and time (no tunnel key)

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
    carrier = waypoint if waypoint is not None else tunnel  # the hop that opened the last tunnel
    destination = None
    if carrier is not None and carrier.tunnel is not None:
        destination = _by_tunnel(events, list(history), carrier.tunnel, key)
    if destination is not None:
        reused, exact = waypoint is not None and _reused(destination, waypoint, key), True
    else:  # no key, or the far agent is older and records none: look among keyless events
        destination, reused, exact = _by_address(events, history, key, source, waypoint)
    delivered = None
    if destination is not None and not reused:
        delivered = next(
            (e for e in events if e.point is Point.DELIVERED and e.flow_id == destination.flow_id),
            None,
        )
    return Observed(source, tunnel, waypoint, destination, delivered, reused, exact)


def _by_tunnel(
    events: list[FlowEvent], history: list[FlowEvent], tunnel: str, key: ProbeKey
) -> FlowEvent | None:
    """The destination decision on the tunnel that carried the probe's last hop: exact."""
    on_tunnel = [
        e for e in [*events, *history] if e.point is Point.DESTINATION_AGENT and e.tunnel == tunnel
    ]
    # A key names one stream of one open connection; once both closed, the client's port can be
    # reused. The newest decision not after the probe's window is the one for this tunnel.
    on_tunnel = [e for e in on_tunnel if e.time <= key.end + SLACK]
    return max(on_tunnel, key=lambda e: e.time, default=None)


def _reused(destination: FlowEvent, waypoint: FlowEvent, key: ProbeKey) -> bool:
    """Was the tunnel opened for an earlier request? Its CONNECT's trace says; else its time."""
    trace_id = _trace_id(destination.traceparent)
    if trace_id is not None and key.trace_id is not None:
        return trace_id != key.trace_id
    return destination.time < waypoint.time


def _by_address(events, history, key, source, waypoint) -> tuple[FlowEvent | None, bool, bool]:
    """The heuristic for events without a tunnel key (see the module docstring): inexact."""
    keyless = [e for e in events if e.tunnel is None]
    arrival = [e for e in keyless if key.in_window(e) and _arrives(e, source, waypoint)]
    destination = _first(arrival, Point.DESTINATION_AGENT)
    reused = False
    if destination is None and waypoint is not None and waypoint.verdict is FlowVerdict.FORWARDED:
        destination = _still_open([e for e in history if e.tunnel is None], waypoint)
        reused = destination is not None
    return destination, reused, destination is None


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


def _trace_id(traceparent: str | None) -> str | None:
    """The trace id of a W3C traceparent ("00-<32 hex>-<16 hex>-<2 hex>"), None if malformed."""
    parts = (traceparent or "").split("-")
    if len(parts) < 4 or len(parts[1]) != 32:
        return None
    return parts[1].lower()


def _host(address: str | None) -> str | None:
    """ "198.18.1.5" from "198.18.1.5:40000" or "198.18.1.5"; "[::1]:80" → "::1"."""
    if not address:
        return None
    if address.startswith("["):
        return address[1:].partition("]")[0]
    if address.count(":") == 1:
        return address.partition(":")[0]
    return address
