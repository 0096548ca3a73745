"""The shape of a trace: an ordered list of hops, each with what it decided and why, and a verdict.

A connection in nodemesh crosses a fixed set of components (DESIGN.md, Traffic path): capture in
the source pod, the source node's agent, the HBONE tunnel, optionally the destination's waypoint
(authorization, then routing), the destination node's agent, and delivery to the app. A trace is
that path written down, one `Hop` per decision, in the order traffic meets them.

The same values serve both kinds of trace. `meshctl trace --explain` builds them from the current
configuration (`nodemesh.trace.explain`); the live trace will build them from the flow events a
real probe leaves behind, and render them with the same code (`nodemesh.trace.render`). So a hop
holds only what either source can fill: the component, where it ran, the decision as a short word,
the `reason` string the deciding function returned, and on a denial the policy and rule.

The first hop that stops the traffic carries the verdict; the trace's verdict is that one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class Component(StrEnum):
    """Who decides at a hop; stable values for `-o json` and for matching live flow events."""

    CAPTURE = "capture"  # eBPF in the source pod: captured to the agent, or not at all
    KUBE_PROXY = "kube-proxy"  # Service VIP → endpoint for a client outside the mesh
    SOURCE_AGENT = "source-agent"  # outbound: service → endpoint, waypoint, direct or passthrough
    TUNNEL = "tunnel"  # HBONE over mutual TLS, with both identities
    WAYPOINT_AUTHZ = "waypoint-authz"  # AuthorizationPolicy on the HTTP request
    WAYPOINT_ROUTE = "waypoint-route"  # HTTPRoute match, backend, retries
    DESTINATION_AGENT = "destination-agent"  # inbound: PeerAuthentication and L4 authorization
    DELIVERY = "delivery"  # the connection reaches the destination's port


class Verdict(StrEnum):
    """How the traffic ends: what a real client would see."""

    FORWARDED = "FORWARDED"  # reaches the destination (an app, or an address outside the mesh)
    DENIED = "DENIED"  # a policy refused it: connection reset, or 403 from a waypoint
    UNROUTABLE = "UNROUTABLE"  # the mesh has nowhere to send it: no endpoint, no waypoint
    ANSWERED = "ANSWERED"  # a waypoint answered itself (404 no route, redirect, 5xx)


@dataclass(frozen=True)
class Hop:
    """One decision on the path; `verdict` is set only on the hop that ends the trace."""

    component: Component
    where: str  # "node1", "shop/client", "waypoint shop/wp (198.18.2.9)"
    decision: str  # a short word: "captured", "waypoint", "ALLOW", "DENY", "route", "delivered"
    reason: str  # the deciding function's own reason string, for the operator
    policy: str | None = None  # "namespace/name" of the policy that decided, if one did
    rule: int | None = None  # index of the deciding rule in that policy
    code: str | None = None  # machine-readable cause: a DecisionCode or a Route value
    status: int | None = None  # the HTTP status a waypoint answers with, when it answers
    details: tuple[tuple[str, str], ...] = ()  # extra facts: identities, retries, endpoint
    verdict: Verdict | None = None  # set on the last hop: how the traffic ends there

    def to_dict(self) -> dict:
        """Plain data for `-o json|yaml`; empty fields are left out so output stays readable."""
        out: dict = {"component": str(self.component), "where": self.where}
        out["decision"] = self.decision
        out["reason"] = self.reason
        optional = {"policy": self.policy, "rule": self.rule, "code": self.code}
        optional["status"] = self.status
        out.update({k: v for k, v in optional.items() if v is not None})
        if self.details:
            out["details"] = dict(self.details)
        if self.verdict is not None:
            out["verdict"] = str(self.verdict)
        return out


@dataclass(frozen=True)
class Trace:
    """A probe's whole path. `mode` says where the hops came from: "explain" or "live"."""

    source: str  # "shop/client"
    destination: str  # what the user asked for: "shop/web:80", "198.18.2.7:8080"
    hops: tuple[Hop, ...]
    mode: str = "explain"
    request: str | None = None  # "GET /admin" when the probe is HTTP
    notes: tuple[str, ...] = field(default=())  # assumptions the explanation made

    @property
    def verdict(self) -> Verdict:
        """The verdict of the hop that ended the path (a finished trace always has one)."""
        return self.stopped_at.verdict

    @property
    def stopped_at(self) -> Hop:
        """The hop that decided the outcome: on a denial, which hop, which policy, which rule."""
        for hop in self.hops:
            if hop.verdict is not None:
                return hop
        raise ValueError(f"trace {self.source} → {self.destination} has no final hop")

    def to_dict(self) -> dict:
        out: dict = {"mode": self.mode, "source": self.source, "destination": self.destination}
        if self.request:
            out["request"] = self.request
        out["verdict"] = str(self.verdict)
        out["hops"] = [hop.to_dict() for hop in self.hops]
        if self.notes:
            out["notes"] = list(self.notes)
        return out
