"""A flow event: one component's account of one connection or request at one point of its path.

Theory of operation: every hop that decides something about traffic (the source agent choosing a
route, the destination agent applying L4 policy, the waypoint applying L7 policy and routing, the
delivery to the app) writes down what it saw as a `FlowEvent` in its own bounded ring
(`nodemesh.flows.ring`). Nothing is correlated at record time: an event carries the facts its
component knew, plus a `flow_id` that groups the events one component wrote about the same
connection and, for HTTP, the W3C trace id that groups requests across components. A reader
(`meshctl trace --follow`) merges the rings by time and filters them (`nodemesh.flows.filters`).

The observation points are the hops of `nodemesh.trace.Component`, spelled as Hubble spells its
own, so a live event can be matched with an `--explain` hop by `Point.component`.

Events cross the admin endpoint as JSON (`to_dict` / `from_dict`); both ends must agree, so the
two functions live side by side and the tests round-trip every field. Fields added later
(`tunnel`, `traceparent`) are optional on the wire, so events from an older component still read.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from enum import StrEnum

from nodemesh.trace.hops import Component


class FlowEventError(ValueError):
    """A flow event received over the wire does not have the shape this version reads."""


class Point(StrEnum):
    """Where on the path the event was observed (DESIGN.md, Traffic path), in path order."""

    CAPTURED = "captured"  # eBPF in the source pod handed the connection to the agent
    SOURCE_AGENT = "source-agent"  # outbound: service → endpoint, waypoint, direct, passthrough
    TUNNEL_OUT = "tunnel-out"  # the HBONE tunnel from the source agent, as it ended
    TUNNEL_IN = "tunnel-in"  # the HBONE tunnel arriving at the destination side
    WAYPOINT = "waypoint"  # one HTTP request through the waypoint: authz, route, status
    DESTINATION_AGENT = "destination-agent"  # inbound: PeerAuthentication and L4 policy
    DELIVERED = "delivered"  # the connection to the destination app, as it ended

    @property
    def component(self) -> Component:
        """The `--explain` hop this point corresponds to, so live and explained paths line up."""
        return _COMPONENT[self]


_COMPONENT = {
    Point.CAPTURED: Component.CAPTURE,
    Point.SOURCE_AGENT: Component.SOURCE_AGENT,
    Point.TUNNEL_OUT: Component.TUNNEL,
    Point.TUNNEL_IN: Component.TUNNEL,
    Point.WAYPOINT: Component.WAYPOINT_AUTHZ,
    Point.DESTINATION_AGENT: Component.DESTINATION_AGENT,
    Point.DELIVERED: Component.DELIVERY,
}


class FlowVerdict(StrEnum):
    """What happened to the traffic at this point; Hubble's words, which operators know."""

    FORWARDED = "FORWARDED"  # passed on (or delivered)
    DENIED = "DENIED"  # a policy refused it; `policy` and `rule` say which, when one did
    ERROR = "ERROR"  # the mesh could not carry it: no endpoint, connect failure, upstream reset


@dataclass(frozen=True)
class Endpoint:
    """One side of a flow: the workload (when the mesh knows it), its identity and address."""

    namespace: str | None = None
    name: str | None = None  # pod name
    identity: str | None = None  # SPIFFE ID, when one was proven (mTLS) or is our own
    address: str | None = None  # "ip:port" or "ip"

    @property
    def workload(self) -> str | None:
        """ "namespace/name", or None when the address belongs to no known workload."""
        return f"{self.namespace}/{self.name}" if self.name else None

    def to_dict(self) -> dict:
        return {f.name: v for f in fields(self) if (v := getattr(self, f.name)) is not None}


@dataclass(frozen=True)
class Http:
    """The HTTP facts a waypoint adds to its event (absent on L4 events)."""

    method: str
    path: str
    status: int  # what the client got; 0 when it got no response head (Envoy's convention)
    latency_ms: float
    trace_id: str | None = None  # W3C trace id: the same request at other components
    route: str | None = None  # the HTTPRoute rule that matched, "namespace/name[/rule]"

    def to_dict(self) -> dict:
        return {f.name: v for f in fields(self) if (v := getattr(self, f.name)) is not None}


@dataclass(frozen=True)
class FlowEvent:
    """One observation. `reporter` names the component that wrote it ("agent node1")."""

    time: float  # Unix time of the observation
    point: Point
    reporter: str  # "agent node1", "waypoint shop/waypoint"
    flow_id: str  # groups one component's events about one connection: "node1/17"
    verdict: FlowVerdict
    reason: str  # the deciding function's own words, for the operator
    source: Endpoint = Endpoint()
    destination: Endpoint = Endpoint()
    service: str | None = None  # "namespace/name" of the Service addressed, if any
    policy: str | None = None  # "namespace/name" of the deciding policy, when one decided
    rule: int | None = None  # index of the deciding rule in that policy
    route: str | None = None  # "direct", "waypoint", "passthrough" (source-agent events)
    http: Http | None = None  # waypoint events only
    # The HBONE tunnel that carried it, named alike at both ends (`nodemesh.hbone.headers.
    # tunnel_key`): the waypoint's upstream tunnel on its request event, the arriving tunnel on
    # the destination agent's events. Equal keys join a request to the decision exactly.
    tunnel: str | None = None
    traceparent: str | None = None  # the W3C traceparent the tunnel's CONNECT carried (agent)

    def to_dict(self) -> dict:
        """Plain JSON data; empty fields are left out so `-o json` lines stay short."""
        out: dict = {"time": self.time, "point": str(self.point), "reporter": self.reporter}
        out |= {"flow_id": self.flow_id, "verdict": str(self.verdict), "reason": self.reason}
        out |= {"source": self.source.to_dict(), "destination": self.destination.to_dict()}
        optional = {"service": self.service, "policy": self.policy, "rule": self.rule}
        optional |= {"route": self.route, "tunnel": self.tunnel, "traceparent": self.traceparent}
        out |= {k: v for k, v in optional.items() if v is not None}
        if self.http is not None:
            out["http"] = self.http.to_dict()
        return out

    @classmethod
    def from_dict(cls, data: dict) -> FlowEvent:
        """The inverse of `to_dict`; raises FlowEventError naming the field that is wrong."""
        try:
            http = data.get("http")
            return cls(
                time=float(data["time"]),
                point=Point(data["point"]),
                reporter=str(data["reporter"]),
                flow_id=str(data["flow_id"]),
                verdict=FlowVerdict(data["verdict"]),
                reason=str(data.get("reason", "")),
                source=Endpoint(**data.get("source", {})),
                destination=Endpoint(**data.get("destination", {})),
                service=data.get("service"),
                policy=data.get("policy"),
                rule=data.get("rule"),
                route=data.get("route"),
                http=Http(**http) if http is not None else None,
                tunnel=_optional_text(data, "tunnel"),
                traceparent=_optional_text(data, "traceparent"),
            )
        except KeyError as exc:
            raise FlowEventError(f"flow event without field {exc}: {data!r}") from None
        except (TypeError, ValueError) as exc:
            raise FlowEventError(
                f"malformed flow event ({exc}); are the CLI and the component the same version?"
            ) from None


def _optional_text(data: dict, name: str) -> str | None:
    """A text field newer components add: absent (an older component) reads as None."""
    value = data.get(name)
    if value is not None and not isinstance(value, str):
        raise FlowEventError(f"flow event field {name!r} must be text, got {value!r}")
    return value
