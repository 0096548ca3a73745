"""The waypoint's part of a path: which Service, the authorization verdict, the route, retries.

The steps are those of the real waypoint, in its order (waypoint/inbound.py, then
waypoint/pipeline.py `Proxy._handle`): the HBONE `:authority` must be a Service port the waypoint
serves (else 404); the path is normalized (else 400); `authorize_request` gives the verdict (403
naming policy and rule); the Service port's route table picks a rule (none: 404), and
`RouteMatch.decide` forwards or answers (a redirect, a 500 for a bad backend). Retries are
`effective_retry` of the rule and the backend's TrafficPolicy, as `ServiceResilience` computes
them. Each step calls the same pure function the waypoint calls, with the waypoint's own state
(`MeshView.waypoint`), so the reasons are the waypoint's.

What cannot be known from configuration is stated, not guessed: a weighted split or a fault
percentage is drawn with the caller's `rng` (seed it for a reproducible explanation), and the
endpoint is the first ready one where the waypoint would round-robin. The result is either the
hops up to an answer (with its verdict), or the hops plus the `Arrival` at the chosen endpoint,
for `nodemesh.trace.inbound` to carry on.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace

from controller.model import Service
from nodemesh.authz import PathError, normalize_path, normalize_target
from nodemesh.identity import SpiffeId
from nodemesh.trace.hops import Component, Hop, Verdict
from nodemesh.trace.inbound import Arrival, decision_hop
from nodemesh.trace.probe import HttpProbe
from nodemesh.trace.views import MeshView
from waypoint.authz import authorize_request
from waypoint.messages import Peer, RequestHead
from waypoint.resilience.config import RetryConfig, effective_retry
from waypoint.routing import Forward, RouteMatch
from waypoint.services import endpoints_for
from waypoint.state import WaypointState


@dataclass(frozen=True)
class Entry:
    """A connection arriving at a waypoint over HBONE."""

    namespace: str  # the waypoint's namespace
    name: str  # the waypoint's name (its Gateway and service account)
    address: str  # the waypoint pod the source agent chose
    identity: str  # the waypoint's SPIFFE ID: what it presents upstream
    client: Peer  # the client as the HBONE layer proves it


@dataclass(frozen=True)
class Passage:
    """The waypoint's hops, and where the request goes on to (None: the waypoint answered)."""

    hops: tuple[Hop, ...]
    onward: Arrival | None


def through_waypoint(view: MeshView, entry: Entry, http: HttpProbe, rng: random.Random) -> Passage:
    """Explain `http` arriving at the waypoint `entry` names; see the module docstring."""
    state = view.waypoint(entry.namespace, entry.name)
    where = f"waypoint {entry.namespace}/{entry.name} ({entry.address})"
    service = _served(state, entry.client.destination)
    if service is None:
        reason = f"waypoint {entry.name} serves no Service at {_text(entry.client.destination)}"
        return _answered(Component.WAYPOINT_ROUTE, where, 404, reason)
    head = _head(http, entry.client.destination)
    try:
        path = normalize_path(head.path)
    except PathError as error:
        return _answered(Component.WAYPOINT_ROUTE, where, 400, str(error))
    decision = authorize_request(
        head, entry.client, service, state.policies, waypoint=entry.name, path=path
    )
    authz = decision_hop(Component.WAYPOINT_AUTHZ, where, decision)
    if not decision.allowed:
        return Passage((replace(authz, status=403),), None)
    routed = _route(view, state, entry, service, head, path, rng)
    return Passage((authz, *routed.hops), routed.onward)


def _route(view, state: WaypointState, entry: Entry, service: Service, head, path, rng) -> Passage:
    port = entry.client.destination[1]
    table = state.routes.get(service.namespace, service.name, port) if state.routes else None
    client_ns = SpiffeId.parse(entry.client.identity).namespace if entry.client.identity else None
    target = normalize_target(head.path)
    match = table.match(replace(head, path=path + _query(target)), client_ns) if table else None
    where = f"waypoint {entry.namespace}/{entry.name}"
    if match is None:
        reason = f"no HTTPRoute rule of {service.key}:{port} matches {head.method} {path}"
        return _answered(Component.WAYPOINT_ROUTE, where, 404, reason)
    outcome = match.decide(replace(head, path=target), rng)
    if not isinstance(outcome, Forward):
        reason = outcome.detail or f"answered by {_rule_name(match)} ({outcome.reason.value})"
        return _answered(Component.WAYPOINT_ROUTE, where, outcome.response.status, reason)
    return _forward(view, state, entry, match, outcome, where)


def _forward(view, state, entry: Entry, match: RouteMatch, fwd: Forward, where: str) -> Passage:
    key = f"{fwd.target.namespace}/{fwd.target.name}"
    backend = state.services.get(key)
    if backend is None:
        reason = f"backend Service {key} is unknown to this waypoint"
        return _answered(Component.WAYPOINT_ROUTE, where, 500, reason)
    retry = effective_retry(
        {"retry": match.retry} if match.retry else None, state.traffic_policies.get(key)
    )
    endpoints = endpoints_for(state, backend, fwd.target.port)
    details = _route_details(match, fwd, retry, len(endpoints))
    if not endpoints:
        reason = f"{_rule_name(match)} → {fwd.target}: no healthy upstream (no ready endpoint)"
        return _answered(Component.WAYPOINT_ROUTE, where, 503, reason, details)
    chosen = endpoints[0]
    reason = f"{_rule_name(match)} → {fwd.target}, endpoint {chosen.key}"
    hop = Hop(Component.WAYPOINT_ROUTE, where, "route", reason, details=details)
    if chosen.peer is None:
        delivered = Hop(
            Component.DELIVERY,
            chosen.key,
            "delivered",
            "endpoint unknown to the mesh: plain TCP from the waypoint",
            verdict=Verdict.FORWARDED,
        )
        return Passage((hop, delivered), None)
    identity = entry.identity if chosen.peer.enrolled else None
    tunnel = _tunnel(entry, chosen.peer, chosen.address) if identity else None
    onward = Arrival(chosen.peer, chosen.address, entry.address, identity)
    return Passage(tuple(h for h in (hop, tunnel) if h is not None), onward)


def _tunnel(entry: Entry, peer, address: tuple[str, int]) -> Hop:
    details = (("source_identity", entry.identity), ("destination_identity", peer.identity))
    reason = f"HBONE {entry.address} → {address[0]}:15008, :authority {_text(address)}"
    return Hop(Component.TUNNEL, f"waypoint → {peer.node}", "mTLS", reason, details=details)


def _route_details(match: RouteMatch, fwd: Forward, retry: RetryConfig, endpoints: int) -> tuple:
    weights = ", ".join(f"{b.target} ({b.weight})" for b in match.rule.backends.backends)
    details = [("rule", _rule_name(match)), ("retries", _retries(retry))]
    if len(match.rule.backends.backends) > 1:
        details.append(("backends", f"{weights}; one drawn by weight"))
    if fwd.timeouts.request_ms:
        details.append(("timeout", f"{fwd.timeouts.request_ms} ms"))
    details.append(("endpoints", f"{endpoints} ready, round robin"))
    return tuple(details)


def _retries(retry: RetryConfig) -> str:
    if retry.attempts == 0:
        return "off"
    on = ",".join(sorted(str(r) for r in retry.retry_on))
    per_try = f", per try {retry.per_try_timeout:g}s" if retry.per_try_timeout else ""
    return f"{retry.attempts} attempts on {on}{per_try}"


def _rule_name(match: RouteMatch) -> str:
    if match.route is None:
        return "the default route (no HTTPRoute attached)"
    return f"HTTPRoute {match.route} rule {match.rule.index}"


def _answered(component, where, status: int, reason: str, details=()) -> Passage:
    hop = Hop(
        component,
        where,
        "answer",
        reason,
        status=status,
        details=tuple(details),
        verdict=Verdict.ANSWERED,
    )
    return Passage((hop,), None)


def _served(state: WaypointState, destination: tuple[str, int]) -> Service | None:
    """The Service the client dialled, as waypoint/inbound.py accepts it (VIP and port)."""
    ip, port = destination
    service = state.service_by_vip.get(ip)
    return service if service is not None and port in {p.port for p in service.ports} else None


def _head(http: HttpProbe, destination: tuple[str, int]) -> RequestHead:
    """The request as the codec hands it on: a `host` header becomes the authority."""
    host = next((v for k, v in http.headers if k == "host"), _text(destination))
    headers = tuple((k, v) for k, v in http.headers if k != "host")
    return RequestHead(http.method, "http", host, http.path, headers)


def _query(target: str) -> str:
    return "?" + target.split("?", 1)[1] if "?" in target else ""


def _text(address: tuple[str, int]) -> str:
    return f"{address[0]}:{address[1]}"
