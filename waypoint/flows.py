"""The waypoint's flow events: one per finished request, for `meshctl trace --follow`.

Theory of operation: every request already ends in one `RequestRecord` handed to the
`RequestObserver` (metrics, access log, spans). `FlowObserver` is that observer plus a fourth
output: it builds a `FlowEvent` from the same record and appends it to the waypoint's
`FlowRing`, served on the admin endpoint as `/debug/flows`. Subclassing (instead of editing the
observer) keeps the request path untouched: the proxy calls `finish` as before.

The event names the upstream HBONE tunnel that carried the request (`tunnel`, the key the
destination agent records on its decision too), so a trace finds that decision exactly even when
the tunnel was opened for an earlier request and reused.

The verdict follows what the client saw: DENIED when an AuthorizationPolicy refused the request
(with that policy and rule), ERROR when the mesh failed or answered it itself (no response at
all, or a 4xx/5xx carrying an Envoy response flag: no route, rate limited, upstream failure,
injected fault), FORWARDED otherwise, an application's own 5xx included (it was delivered; its
status says the rest).
"""

from __future__ import annotations

import itertools
import logging

from nodemesh.flows import Endpoint, FlowEvent, FlowRing, FlowVerdict, Http, Point
from nodemesh.telemetry import format_address
from waypoint.observer import RequestObserver
from waypoint.record import RequestRecord
from waypoint.spans import Span

log = logging.getLogger("nodemesh.waypoint.flows")
# Response flags that mean the waypoint, not the app, failed the request.
DELAY_ONLY = frozenset({"-", "DI"})


class FlowObserver(RequestObserver):
    """RequestObserver's outputs, plus one flow event per request in `ring`."""

    def __init__(self, *args, ring: FlowRing, waypoint: str, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.ring = ring
        self.reporter = f"waypoint {waypoint}"
        self._ids = itertools.count(1)  # per observer: flow ids are unique within one waypoint

    def finish(self, record: RequestRecord) -> Span | None:
        span = super().finish(record)
        try:
            self.ring.append(request_event(record, self.reporter, f"{next(self._ids)}"))
        except Exception:  # an event bug must not fail the request path
            log.exception("could not build a flow event for %s", record.request.path)
        return span


def request_event(record: RequestRecord, reporter: str, number: str) -> FlowEvent:
    """The event for one finished request; `number` makes its flow id unique in this waypoint."""
    verdict, reason = _verdict(record)
    authz = record.authz
    denied = authz is not None and not authz.allowed
    return FlowEvent(
        time=record.start_time,
        point=Point.WAYPOINT,
        reporter=reporter,
        flow_id=f"{reporter.split(' ', 1)[-1]}/{record.request_id or number}",
        verdict=verdict,
        reason=reason,
        source=_source(record),
        destination=_destination(record),
        service=f"{record.service.namespace}/{record.service.name}" if record.service else None,
        policy=authz.policy if denied else None,
        rule=authz.rule if denied else None,
        http=Http(
            method=record.request.method,
            path=record.request.path,
            status=record.response_code,
            latency_ms=round(record.duration * 1000, 3),
            trace_id=record.trace.trace_id if record.trace is not None else None,
            route=record.route_name,
        ),
        tunnel=record.upstream_tunnel,
    )


def _verdict(record: RequestRecord) -> tuple[FlowVerdict, str]:
    authz = record.authz
    if authz is not None and not authz.allowed:
        return FlowVerdict.DENIED, authz.reason or "denied by an AuthorizationPolicy"
    flags = record.flags_label
    if record.response_code == 0:
        return FlowVerdict.ERROR, f"no response sent (flags {flags})"
    if record.response_code >= 400 and flags not in DELAY_ONLY:
        return FlowVerdict.ERROR, f"the waypoint answered {record.response_code} (flags {flags})"
    route = f"route {record.route_name}" if record.route_name else "no route"
    retries = f", {record.retries} retries" if record.retries else ""
    return FlowVerdict.FORWARDED, f"{route}{retries}, flags {flags}"


def _source(record: RequestRecord) -> Endpoint:
    w = record.source
    return Endpoint(
        namespace=w.namespace if w is not None else None,
        name=w.name if w is not None else None,
        identity=record.peer.identity,
        address=format_address(record.peer.address),
    )


def _destination(record: RequestRecord) -> Endpoint:
    w = record.destination
    address = record.upstream_address or record.peer.destination
    return Endpoint(
        namespace=w.namespace if w is not None else None,
        name=w.name if w is not None else None,
        identity=record.destination_principal,
        address=format_address(address),
    )
