"""The flow events a node agent writes, built from the connection records it already keeps.

Theory of operation: the agent's `ConnectionTable` (node_agent.telemetry) opens a record once a
connection's fate is decided (outbound: the route is chosen; inbound: L4 policy has ruled) and
closes it when the connection ends. Both moments are hooks; `AgentFlows` turns each into at most
one event, so the table stays the single source of truth and nothing is computed twice:

    outbound open    route direct|waypoint|passthrough → source-agent  FORWARDED
    outbound close   route refused (no endpoint/waypoint) → source-agent ERROR, with the reason
                     tunnelled → tunnel-out; passthrough → source-agent: FORWARDED, or DENIED
                     when the far side refused the tunnel, or ERROR on a connect failure
    inbound open     L4 decision → destination-agent FORWARDED | DENIED, with policy and rule
    inbound close    refused before policy (waypoint-only) → destination-agent DENIED
                     allowed → delivered FORWARDED, or ERROR when the app refused the port

Before an open, the eBPF capture of that connection (node_agent.capture_events, when
`captures` is set) is written at point `captured`, with the connection's flow_id and the time
the hook captured it: connect() outbound, the SYN's listener lookup inbound (plaintext only).
Captures that belong to no connection the agent accepted (passed ones, ones nobody accepted)
come in through `capture` and get a flow_id of their own.

Events about an HBONE tunnel carry its key (`nodemesh.hbone.headers.tunnel_key`: tunnel-out at
the source, the decision and delivery at the destination, with the CONNECT's traceparent), so a
trace joins a hop to the exact decision of the tunnel that carried it.

Records are read by attribute (no import of node_agent: the shared package must not depend on
a component), so any object with ConnectionRecord's fields will do, as the tests' stand-ins do.
"""

from __future__ import annotations

import itertools
import logging
from dataclasses import replace
from typing import Any

from nodemesh.flows.event import Endpoint, FlowEvent, FlowVerdict, Point
from nodemesh.flows.ring import FlowRing
from nodemesh.telemetry import format_address

log = logging.getLogger("nodemesh.flows")
TUNNELED = frozenset({"direct", "waypoint"})
CARRIED = TUNNELED | {"passthrough"}
DENY, CONNECT = "DENY", "CONNECT"  # ResponseFlag values


class AgentFlows:
    """The ConnectionTable's open/close hooks, writing events into `ring` as agent `node`.

    `captures`, once the agent has capture programs, answers `claim(record)` with the capture of
    a record's connection, or None (an object with the attributes of
    node_agent.capture_events.Capture)."""

    def __init__(self, node: str, ring: FlowRing, captures: Any = None) -> None:
        self.node, self.ring, self.captures = node, ring, captures
        self._unjoined = itertools.count(1)

    def opened(self, record: Any) -> None:
        if self.captures is not None:
            self._record(self._joined_capture, record)
        self._record(opened_event, record)

    def capture(self, capture: Any, workload: Any) -> None:
        """Write a capture that joins no connection record; `workload` is its pod's, or None."""
        flow_id = f"{self.node}/capture-{next(self._unjoined)}"
        try:
            event = captured_event(capture, self.node, flow_id, workload)
        except Exception:
            log.exception("could not build a flow event for capture %r", capture)
            return
        self.ring.append(event)

    def _joined_capture(self, record: Any, node: str) -> FlowEvent | None:
        capture = self.captures.claim(record)
        if capture is None:
            return None
        outbound = _outbound(record)
        pod = record.source if outbound else record.destination  # the pod the hook ran for
        event = captured_event(capture, node, f"{node}/{record.id}", pod)
        # The client as the record names it: the pod and its identity outbound; inbound, the
        # workload at that address (plaintext proves no identity).
        principal = record.source_principal if outbound else None
        source = _endpoint(record.source, principal, record.source_address, outbound)
        return replace(event, source=source)

    def closed(self, record: Any) -> None:
        self._record(closed_event, record)

    def _record(self, build, record: Any) -> None:
        """Never let an event bug break a connection: log it loudly and carry on."""
        try:
            event = build(record, self.node)
        except Exception:
            log.exception("could not build a flow event for connection %s", record.id)
            return
        if event is not None:
            self.ring.append(event)


def opened_event(r: Any, node: str) -> FlowEvent | None:
    if _outbound(r):
        route = _route(r)
        if route not in CARRIED:
            return None  # refused: the close carries the routing function's reason
        where = format_address(r.destination_address)
        return _event(r, node, Point.SOURCE_AGENT, FlowVerdict.FORWARDED, f"{route} to {where}")
    if r.decision is None:
        return None  # refused before policy ran: reported at close with the reason
    d = r.decision
    verdict = FlowVerdict.FORWARDED if d.allowed else FlowVerdict.DENIED
    event = _event(r, node, Point.DESTINATION_AGENT, verdict, d.reason, r.start_time)
    return _with_policy(event, d.policy, d.rule)


def closed_event(r: Any, node: str) -> FlowEvent | None:
    if _outbound(r):
        route = _route(r)
        if route not in CARRIED:
            return _event(r, node, Point.SOURCE_AGENT, FlowVerdict.ERROR, r.error or route)
        point = Point.TUNNEL_OUT if route in TUNNELED else Point.SOURCE_AGENT
        return _event(r, node, point, _outcome(r), _closing_reason(r))
    if r.decision is None:
        verdict = FlowVerdict.DENIED if _flag(r) == DENY else FlowVerdict.ERROR
        return _event(r, node, Point.DESTINATION_AGENT, verdict, r.error or "refused")
    if not r.decision.allowed:
        return None  # the open already said DENIED, with the policy
    return _event(r, node, Point.DELIVERED, _outcome(r), _closing_reason(r))


def captured_event(c: Any, node: str, flow_id: str, workload: Any) -> FlowEvent:
    """The `captured` event of one hook decision; `workload` is the pod the hook ran for."""
    pod = Endpoint(
        namespace=workload.namespace if workload is not None else None,
        name=workload.name if workload is not None else None,
    )
    if c.direction == "outbound":
        bound = c.source[1]
        source = replace(pod, address=format_address(("127.0.0.1", bound)) if bound else None)
        destination = Endpoint(address=format_address(c.original_destination))
    else:
        source = Endpoint(address=format_address(c.source))
        destination = replace(pod, address=format_address(c.original_destination))
    where = format_address(c.original_destination)
    if c.captured:
        reason = f"{c.hook}: {where} redirected to {format_address(c.listener)}"
    else:
        reason = f"{c.hook}: {where} passed, {c.reason} ({c.explanation})"
    return FlowEvent(
        time=c.time,
        point=Point.CAPTURED,
        reporter=f"agent {node}",
        flow_id=flow_id,
        verdict=FlowVerdict.FORWARDED,
        reason=reason,
        source=source,
        destination=destination,
        route="captured" if c.captured else "passthrough",
    )


def _event(
    r: Any, node: str, point: Point, verdict: FlowVerdict, reason: str, at: float | None = None
) -> FlowEvent:
    mtls = getattr(r.security_policy, "value", r.security_policy) == "mutual_tls"
    source = _endpoint(r.source, r.source_principal, r.source_address, mtls or _outbound(r))
    destination = _endpoint(r.destination, r.destination_principal, r.destination_address, mtls)
    service = f"{r.service.namespace}/{r.service.name}" if r.service is not None else None
    when = at if at is not None else (r.end_time or r.start_time)
    return FlowEvent(
        time=when,
        point=point,
        reporter=f"agent {node}",
        flow_id=f"{node}/{r.id}",
        verdict=verdict,
        reason=reason,
        source=source,
        destination=destination,
        service=service,
        route=_route(r) if _outbound(r) else None,
        tunnel=getattr(r, "tunnel", None),  # inbound HBONE only; absent on older records
        traceparent=getattr(r, "traceparent", None),
    )


def _with_policy(event: FlowEvent, policy: str | None, rule: int | None) -> FlowEvent:
    return replace(event, policy=policy, rule=rule) if policy else event


def _endpoint(workload: Any, principal: str | None, address, proven: bool) -> Endpoint:
    host, port = address
    return Endpoint(
        namespace=workload.namespace if workload is not None else None,
        name=workload.name if workload is not None else None,
        identity=principal if proven else None,
        address=format_address(address) if port else host,
    )


def _outcome(r: Any) -> FlowVerdict:
    flag = _flag(r)
    if flag == DENY:
        return FlowVerdict.DENIED
    if flag == CONNECT or r.error:
        return FlowVerdict.ERROR
    return FlowVerdict.FORWARDED


def _closing_reason(r: Any) -> str:
    if r.error:
        return r.error
    return f"closed after {r.bytes_sent} bytes sent, {r.bytes_received} received"


def _outbound(r: Any) -> bool:
    return getattr(r.direction, "value", r.direction) == "outbound"


def _route(r: Any) -> str:
    return getattr(r.route, "value", r.route) or ""


def _flag(r: Any) -> str:
    return getattr(r.response_flag, "value", r.response_flag)
