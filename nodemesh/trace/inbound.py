"""The destination side of a path: the destination agent's verdict, then delivery to the app.

The agent sees an inbound connection in one of two ways (node_agent/pod.py): over HBONE, with the
peer's verified identity, or as captured plaintext from outside the mesh. Over HBONE, a pod that
has a waypoint first takes traffic only from that waypoint's identity (anything else is refused
as a bypass); then both ways go through `node_agent.policy.decide`, PeerAuthentication before
AuthorizationPolicy. These hops call the same functions with the same `Connection` the agent
builds, against the destination node's own state (`MeshView.agent`), so the reasons printed are
the ones the agent would log.

A peer that is not enrolled has no agent in its path: the connection is delivered as it is.
"""

from __future__ import annotations

from dataclasses import dataclass

from controller.model import PeerWorkload
from controller.model_waypoint import waypoint_identity
from node_agent.policy import Connection, Decision, decide
from nodemesh.trace.hops import Component, Hop, Verdict
from nodemesh.trace.probe import TraceError
from nodemesh.trace.views import MeshView


@dataclass(frozen=True)
class Arrival:
    """How a connection reaches the destination pod's node: what the agent gets to see."""

    peer: PeerWorkload  # the destination pod
    address: tuple[str, int]  # pod IP and target port
    source_ip: str  # the original client's (Forwarded header), or the waypoint's own address
    source_identity: str | None  # verified SPIFFE ID over HBONE; None for plaintext


def arrive(view: MeshView, arrival: Arrival) -> list[Hop]:
    """The hops from the destination node onward; the last one carries the verdict."""
    if not arrival.peer.enrolled:
        return [_delivered(arrival, "not in the mesh: delivered in plaintext, no agent in path")]
    workload = view.agent(arrival.peer.node).local.get(arrival.peer.uid)
    if workload is None:
        raise TraceError(
            f"pod {arrival.peer.namespace}/{arrival.peer.name} is missing from node "
            f"{arrival.peer.node}'s agent state; the controller's scope and the view disagree"
        )
    expected = waypoint_identity(workload)
    tls = arrival.source_identity is not None
    if tls and expected is not None and arrival.source_identity != expected:
        return [_bypass(arrival, workload.waypoint, expected)]
    conn = Connection(
        arrival.source_identity,
        arrival.source_ip,
        arrival.address[0],
        arrival.address[1],
        via_waypoint=tls and expected is not None,
        tls=tls,
    )
    decision = decide(conn, workload, view.agent_policies(workload.node))
    hop = decision_hop(Component.DESTINATION_AGENT, _where(arrival), decision)
    if not decision.allowed:
        return [hop]
    how = "over HBONE" if tls else "in plaintext (captured inbound, 15006)"
    return [hop, _delivered(arrival, f"{how} to the app, from {arrival.source_ip}")]


def decision_hop(component: Component, where: str, decision: Decision, **extra) -> Hop:
    """A hop for an authorization `Decision`; a denial ends the path with its policy and rule."""
    return Hop(
        component,
        where,
        decision.action,
        decision.reason,
        policy=decision.policy,
        rule=decision.rule,
        code=str(decision.code),
        verdict=None if decision.allowed else Verdict.DENIED,
        **extra,
    )


def _bypass(arrival: Arrival, waypoint: str, expected: str) -> Hop:
    peer = arrival.peer
    reason = (
        f"{peer.namespace}/{peer.name} takes traffic only through its waypoint "
        f"{peer.namespace}/{waypoint} ({expected}), not directly from {arrival.source_identity}"
    )
    return Hop(
        Component.DESTINATION_AGENT,
        _where(arrival),
        "DENY",
        reason,
        code="waypoint_bypass",
        verdict=Verdict.DENIED,
    )


def _delivered(arrival: Arrival, reason: str) -> Hop:
    peer = arrival.peer
    ip, port = arrival.address
    return Hop(
        Component.DELIVERY,
        f"pod {peer.namespace}/{peer.name} ({ip}:{port})",
        "delivered",
        reason,
        verdict=Verdict.FORWARDED,
    )


def _where(arrival: Arrival) -> str:
    return f"{arrival.peer.node} → pod {arrival.peer.namespace}/{arrival.peer.name}"
