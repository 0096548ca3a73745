"""Where a captured outbound connection goes: a pure decision, like ztunnel's build_request.

Given the source pod and the original destination, decide: through the destination's waypoint,
directly to the destination pod's agent over HBONE, or passed through in plaintext (the
destination is outside the mesh). A Service VIP is resolved to one ready endpoint here (the
`pick` callback chooses among them: round robin in the agent, fixed in tests). Every outcome says
why in `reason`, which `meshctl trace` shows.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import Enum

from controller.model import Endpoint, PeerWorkload, Service, Workload
from node_agent.state import AgentState, WaypointUnavailable

HBONE_PORT = 15008


class Route(Enum):
    DIRECT = "direct"  # HBONE to the destination pod's agent (pod_ip:15008)
    WAYPOINT = "waypoint"  # HBONE to the waypoint, which forwards on
    PASSTHROUGH = "passthrough"  # plaintext to the original destination: not in the mesh
    NO_ENDPOINTS = "no_endpoints"  # a Service VIP with no ready endpoint for this port: refuse
    NO_WAYPOINT = "no_waypoint"  # its waypoint is missing or has no ready pod: refuse, never bypass


@dataclass(frozen=True)
class Request:
    """An outbound connection's plan; every field is what the tunnel or telemetry needs."""

    route: Route
    authority: tuple[str, int]  # HBONE :authority, or the plaintext target of a passthrough
    tunnel_to: tuple[str, int] | None  # HBONE peer (pod or waypoint IP, 15008); None: none
    expected_identity: str | None  # SPIFFE ID the HBONE peer must present
    service: Service | None  # the Service the client addressed, if it addressed one
    destination: PeerWorkload | None  # the workload that will receive it, when known
    reason: str  # one line for trace and logs


Pick = Callable[[Service, Sequence[Endpoint]], Endpoint]


def build_request(
    source: Workload, dst_ip: str, dst_port: int, state: AgentState, pick: Pick
) -> Request:
    service = state.service_by_vip.get(dst_ip)
    if service is not None:
        return _to_service(source, service, dst_ip, dst_port, state, pick)
    peer = state.peer_by_address.get(dst_ip)
    if peer is None or not peer.enrolled:
        what = (
            "unknown to the mesh"
            if peer is None
            else f"pod {peer.namespace}/{peer.name} (not enrolled)"
        )
        return _passthrough(dst_ip, dst_port, None, peer, f"{dst_ip} is {what}: plaintext")
    return _to_workload(source, peer, (dst_ip, dst_port), None, state)


def _to_service(source, service: Service, vip, port, state, pick) -> Request:
    if port not in {p.port for p in service.ports}:
        return _passthrough(
            vip,
            port,
            service,
            None,
            f"service {service.key} has no port {port}: left to kube-proxy",
        )
    if service.waypoint and not _is_waypoint_of(source, service.namespace, service.waypoint):
        return _waypoint_request(
            service.namespace, service.waypoint, (vip, port), service, None, state
        )
    ready = [e for e in service.endpoints if any(sp == port for sp, _ in e.ports)]
    if not ready:
        return Request(
            Route.NO_ENDPOINTS,
            (vip, port),
            None,
            None,
            service,
            None,
            f"service {service.key} has no ready endpoint for port {port}",
        )
    endpoint = pick(service, ready)
    target_port = next(tp for sp, tp in endpoint.ports if sp == port)
    peer = state.peers.get(endpoint.workload_uid)
    if peer is None or not peer.enrolled:
        return _passthrough(
            endpoint.address,
            target_port,
            service,
            peer,
            f"service {service.key} endpoint {endpoint.address} is not in the mesh",
        )
    return _to_workload(
        source, peer, (endpoint.address, target_port), service, state, skip_waypoint=True
    )


def _to_workload(source, peer, authority, service, state, skip_waypoint=False) -> Request:
    if (
        peer.waypoint
        and not skip_waypoint
        and not _is_waypoint_of(source, peer.namespace, peer.waypoint)
    ):
        return _waypoint_request(peer.namespace, peer.waypoint, authority, service, peer, state)
    via = f"service {service.key} → " if service else ""
    return Request(
        Route.DIRECT,
        authority,
        (authority[0], HBONE_PORT),
        peer.identity,
        service,
        peer,
        f"{via}pod {peer.namespace}/{peer.name} on {peer.node}: HBONE direct",
    )


def _waypoint_request(namespace, name, authority, service, peer, state) -> Request:
    """HBONE to a ready pod of the waypoint; refused (never sent around it) when it has none."""
    try:
        waypoint = state.waypoint(namespace, name)
    except WaypointUnavailable as exc:
        return Request(Route.NO_WAYPOINT, authority, None, None, service, peer, str(exc))
    # Spread clients over the waypoint's pods; stable per destination (no per-process hashing).
    address = waypoint.addresses[zlib.crc32(repr(authority).encode()) % len(waypoint.addresses)]
    return Request(
        Route.WAYPOINT,
        authority,
        (address, waypoint.hbone_port),
        waypoint.identity,
        service,
        peer,
        f"through waypoint {namespace}/{name} ({address})",
    )


def _is_waypoint_of(source: Workload, namespace: str, name: str) -> bool:
    """The waypoint itself sends on directly (else it would loop to itself)."""
    return source.namespace == namespace and source.service_account == name


def _passthrough(ip, port, service, peer, reason) -> Request:
    return Request(Route.PASSTHROUGH, (ip, port), None, None, service, peer, reason)


class RoundRobin:
    """The agent's `pick`: per-service rotation (Kubernetes' default balancing is random; round
    robin spreads a single client's connections evenly, which is what users check first)."""

    def __init__(self) -> None:
        self._next: dict[str, int] = {}

    def __call__(self, service: Service, endpoints: Sequence[Endpoint]) -> Endpoint:
        i = self._next.get(service.key, 0)
        self._next[service.key] = i + 1
        return endpoints[i % len(endpoints)]
