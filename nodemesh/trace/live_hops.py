"""A live probe's matched flow events, written as the same `Trace` of `Hop`s `--explain` prints.

Theory of operation: `nodemesh.trace.live_match` finds the probe's events; here each becomes the
hop of `nodemesh.trace.hops.Component` its point corresponds to, in path order: capture (implied
by the source agent having seen the connection), the source agent's route, the tunnel with both
identities, the waypoint's authorization and then its route, the destination agent's decision,
delivery. Every hop's details start with its time offset from the probe's start.

The verdict goes on the first hop that did not forward the traffic, taking the tunnel last: its
event is written when the connection ends, so it reports the consequence of a later hop's
refusal, not a decision of its own. Flow verdicts map to trace verdicts as a client sees them:
DENIED stays DENIED, an ERROR a waypoint answered is ANSWERED, any other ERROR is UNROUTABLE.
When nothing refused, the last hop seen carries FORWARDED, and a probe that failed anyway says
so in the notes, with the probe's own result, which is always the first note.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, replace

from nodemesh.flows.event import Endpoint, FlowEvent, FlowVerdict, Point
from nodemesh.trace.hops import Component, Hop, Trace, Verdict
from nodemesh.trace.live_match import Observed
from nodemesh.trace.live_probe import ProbeResult

NOT_CAPTURED = (
    "no agent recorded a connection from local port {port}: FROM is not in the mesh (namespace "
    "not enrolled) or its traffic was not captured"
)
REUSED_NOTE = (
    "the waypoint reused an open connection to {address}; its destination-agent decision is the "
    "one made when that connection opened"
)
INEXACT_NOTE = (
    "the destination-agent decision was matched by address and time (a component records no "
    "tunnel key: older version?); concurrent traffic to {address} could be mistaken for it"
)


@dataclass(frozen=True)
class Context:
    """What the trace is about, as the CLI names it, and when the probe started (Unix time)."""

    source: str  # "shop/client"
    destination: str  # "Service shop/web (10.96.0.10:80)"
    request: str | None
    start: float
    local_port: int


def build_trace(
    observed: Observed, result: ProbeResult, ctx: Context, captured: FlowEvent | None = None
) -> Trace:
    """The live `Trace` of one probe; see the module docstring for the verdict's rules.
    `captured`: the eBPF capture event of the probe's connection (`capture_of`), if written."""
    notes = [f"probe: {result.summary}"]
    if observed.source_agent is None and observed.tunnel_out is None:
        hops = [_not_captured(ctx, result)]
    else:
        hops = _with_verdict(_hops(observed, ctx, captured), result, notes)
    destination = observed.destination_agent
    if observed.reused and destination is not None:
        notes.append(REUSED_NOTE.format(address=destination.destination.address))
    if not observed.exact and destination is not None:
        notes.append(INEXACT_NOTE.format(address=destination.destination.address))
    return Trace(
        source=ctx.source,
        destination=ctx.destination,
        hops=tuple(hops),
        mode="live",
        request=ctx.request,
        notes=tuple(notes),
    )


def _not_captured(ctx: Context, result: ProbeResult) -> Hop:
    verdict = Verdict.FORWARDED if result.ok else Verdict.UNROUTABLE
    reason = NOT_CAPTURED.format(port=ctx.local_port)
    return Hop(Component.CAPTURE, ctx.source, "not captured", reason, verdict=verdict)


def capture_of(events: Iterable[FlowEvent], observed: Observed) -> FlowEvent | None:
    """The eBPF capture of the probe's connection: the source agent writes it with the flow_id
    of its own events on that connection (nodemesh.flows.agent)."""
    first = observed.source_agent or observed.tunnel_out
    if first is None:
        return None
    found = (e for e in events if e.point is Point.CAPTURED and e.flow_id == first.flow_id)
    return next(found, None)


def _hops(o: Observed, ctx: Context, captured: FlowEvent | None) -> list[tuple[Hop, FlowEvent]]:
    """(hop, the event it came from) in path order."""
    out: list[tuple[Hop, FlowEvent]] = []
    first = o.source_agent or o.tunnel_out
    assert first is not None
    if captured is not None:  # observed by the hook itself, at connect()
        details = (_at(captured, ctx), ("original destination", captured.destination.address))
        capture = Hop(Component.CAPTURE, ctx.source, "captured", captured.reason, details=details)
    else:  # implied by the source agent having seen the connection
        reason = f"handed to {first.reporter}"
        capture = Hop(Component.CAPTURE, ctx.source, "captured", reason, details=(_at(first, ctx),))
    out.append((capture, replace(first, verdict=FlowVerdict.FORWARDED)))
    if o.source_agent is not None:
        out.append((_source_agent(o.source_agent, ctx), o.source_agent))
    if o.tunnel_out is not None and o.tunnel_out is not o.source_agent:
        out.append((_tunnel(o.tunnel_out, ctx), o.tunnel_out))
    if o.waypoint is not None:
        out += _waypoint(o.waypoint, ctx)
    if o.destination_agent is not None:
        out.append((_destination(o.destination_agent, ctx, o.reused), o.destination_agent))
    if o.delivered is not None:
        out.append((_delivered(o.delivered, ctx), o.delivered))
    return out


def _with_verdict(pairs: list[tuple[Hop, FlowEvent]], result: ProbeResult, notes) -> list[Hop]:
    hops = [hop for hop, _ in pairs]
    stops = [i for i, (hop, e) in enumerate(pairs) if e.verdict is not FlowVerdict.FORWARDED]
    deciders = [i for i in stops if hops[i].component is not Component.TUNNEL]
    if deciders or stops:
        i = (deciders or stops)[0]
        hops[i] = replace(hops[i], verdict=_verdict(hops[i], pairs[i][1]))
        return hops[: i + 1]
    if not result.ok:
        notes.append("the probe failed, yet no component reported a refusal on the path")
    hops[-1] = replace(hops[-1], verdict=Verdict.FORWARDED)
    return hops


def _verdict(hop: Hop, event: FlowEvent) -> Verdict:
    if event.verdict is FlowVerdict.DENIED:
        return Verdict.DENIED
    if hop.component in (Component.WAYPOINT_AUTHZ, Component.WAYPOINT_ROUTE):
        return Verdict.ANSWERED
    return Verdict.UNROUTABLE


def _at(event: FlowEvent, ctx: Context) -> tuple[str, str]:
    return ("at", f"+{max(event.time - ctx.start, 0.0) * 1000:.1f} ms")


def _clock(when: float) -> str:
    """Local wall-clock time with milliseconds ("09:12:03.120"): when an earlier decision was."""
    return time.strftime("%H:%M:%S", time.localtime(when)) + f".{int(when % 1 * 1000):03d}"


def _node(event: FlowEvent) -> str:
    return event.reporter.split(" ", 1)[-1]


def _side(endpoint: Endpoint) -> str:
    name = endpoint.workload or "?"
    return f"{name} ({endpoint.address})" if endpoint.address else name


def _identities(event: FlowEvent) -> tuple[tuple[str, str], ...]:
    pairs = (("source identity", event.source.identity),)
    pairs += (("destination identity", event.destination.identity),)
    return tuple((k, v) for k, v in pairs if v)


def _source_agent(e: FlowEvent, ctx: Context) -> Hop:
    details = [_at(e, ctx), ("destination", _side(e.destination))]
    if e.service:
        details.append(("service", e.service))
    forwarded = e.verdict is FlowVerdict.FORWARDED
    decision = (e.route or "forwarded") if forwarded else "refused"
    return Hop(Component.SOURCE_AGENT, _node(e), decision, e.reason, details=tuple(details))


def _tunnel(e: FlowEvent, ctx: Context) -> Hop:
    details = (_at(e, ctx), *_identities(e))
    where = f"{_node(e)} → {e.destination.address}"
    return Hop(Component.TUNNEL, where, "mTLS", e.reason, details=details)


def _waypoint(e: FlowEvent, ctx: Context) -> list[tuple[Hop, FlowEvent]]:
    where = e.reporter
    http = e.http
    assert http is not None
    at = _at(e, ctx)
    if e.verdict is FlowVerdict.DENIED:
        hop = Hop(
            Component.WAYPOINT_AUTHZ,
            where,
            "DENY",
            e.reason,
            policy=e.policy,
            rule=e.rule,
            status=http.status,
            details=(at, *_identities(e)),
        )
        return [(hop, e)]
    allowed = replace(e, verdict=FlowVerdict.FORWARDED)
    authz = Hop(Component.WAYPOINT_AUTHZ, where, "ALLOW", "allowed", details=(at, *_identities(e)))
    details = [at, ("latency", f"{http.latency_ms:.1f} ms"), ("upstream", _side(e.destination))]
    if http.route:
        details.append(("route", http.route))
    route = Hop(
        Component.WAYPOINT_ROUTE,
        where,
        "route",
        e.reason,
        status=http.status,
        details=tuple(details),
    )
    return [(authz, allowed), (route, e)]


def _destination(e: FlowEvent, ctx: Context, reused: bool) -> Hop:
    decision = "ALLOW" if e.verdict is FlowVerdict.FORWARDED else "DENY"
    reason = e.reason
    if reused:
        opened = f"{_clock(e.time)}, {max(ctx.start - e.time, 0.0):.1f} s before the probe"
        reason = f"{e.reason} (decided when the tunnel opened at {opened}; reused for this request)"
    details = (_at(e, ctx), ("source", _side(e.source)), *_identities(e))
    if e.tunnel:
        details += (("tunnel", e.tunnel),)
    return Hop(
        Component.DESTINATION_AGENT,
        _node(e),
        decision,
        reason,
        policy=e.policy,
        rule=e.rule,
        details=details,
    )


def _delivered(e: FlowEvent, ctx: Context) -> Hop:
    decision = "delivered" if e.verdict is FlowVerdict.FORWARDED else "refused"
    return Hop(Component.DELIVERY, _side(e.destination), decision, e.reason, details=(_at(e, ctx),))
