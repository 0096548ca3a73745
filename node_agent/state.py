"""What a node agent knows: the config pushed by the controller, as one immutable, indexed value.

The agent's config stream hands every response to `AgentConfig.apply`, which decodes each resource
on its own (a resource that does not decode is rejected alone and NACKed; the rest applies), then
builds a new `AgentState` and swaps one reference. Connection handlers read `config.state` once
and use that value for the whole decision, so no connection ever sees half an update, and the
agent keeps serving with the last good state when the controller is away.

Waypoints are kept by (namespace, name). A destination whose waypoint cannot be used fails
closed: `AgentState.waypoint` raises `WaypointUnavailable` with the reason (no such Gateway, no
ready pod, or no config for it at all) rather than letting the caller send the traffic past the
waypoint's L7 policy.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from controller import scope
from controller.model import (
    AuthorizationPolicy,
    PeerAuthentication,
    PeerWorkload,
    Service,
    Waypoint,
    Workload,
)
from controller.model_waypoint import unknown_waypoint
from controller.resources_held import HeldResources
from nodemesh.xds.resources import XdsResource


@dataclass(frozen=True)
class AgentState:
    """One consistent view of the mesh from this node; build with `AgentState.build`."""

    local: Mapping[str, Workload] = field(default_factory=dict)  # this node's pods, by uid
    peers: Mapping[str, PeerWorkload] = field(default_factory=dict)  # every workload, by uid
    services: Mapping[str, Service] = field(default_factory=dict)  # by "ns/name"
    authorization: tuple[AuthorizationPolicy, ...] = ()
    peer_authentication: tuple[PeerAuthentication, ...] = ()
    local_by_address: Mapping[str, Workload] = field(default_factory=dict)
    peer_by_address: Mapping[str, PeerWorkload] = field(default_factory=dict)
    service_by_vip: Mapping[str, Service] = field(default_factory=dict)
    waypoints: Mapping[tuple[str, str], Waypoint] = field(default_factory=dict)  # (ns, name)

    @classmethod
    def build(
        cls,
        local: Iterable[Workload],
        peers: Iterable[PeerWorkload],
        services: Iterable[Service],
        authorization: Iterable[AuthorizationPolicy],
        peer_authentication: Iterable[PeerAuthentication],
        waypoints: Iterable[Waypoint] = (),
    ) -> AgentState:
        local_by_uid = {w.uid: w for w in local}
        # A local pod is a peer too (same-node traffic goes through the same tunnel logic).
        peer_by_uid = {p.uid: p for p in peers} | {
            uid: PeerWorkload.of(w) for uid, w in local_by_uid.items()
        }
        services_by_key = {s.key: s for s in services}
        return cls(
            local=MappingProxyType(local_by_uid),
            peers=MappingProxyType(peer_by_uid),
            services=MappingProxyType(services_by_key),
            authorization=tuple(sorted(authorization, key=lambda p: p.key)),
            peer_authentication=tuple(sorted(peer_authentication, key=lambda p: p.key)),
            local_by_address=_by_address(local_by_uid.values()),
            peer_by_address=_by_address(peer_by_uid.values()),
            service_by_vip=MappingProxyType(
                {vip: s for s in services_by_key.values() for vip in s.vips}
            ),
            waypoints=MappingProxyType({(w.namespace, w.name): w for w in waypoints}),
        )

    def waypoint(self, namespace: str, name: str) -> Waypoint:
        """The waypoint to send through (or admit traffic from), with at least one ready pod.

        Raises WaypointUnavailable, whose message is the refusal to log and trace, when the
        controller says it does not exist or has no ready pod, or has sent nothing about it.
        """
        waypoint = self.waypoints.get((namespace, name))
        if waypoint is None:
            raise WaypointUnavailable(namespace, name, unknown_waypoint(namespace, name))
        reason = waypoint.unavailable()
        if reason is not None:
            raise WaypointUnavailable(namespace, name, reason)
        return waypoint


class WaypointUnavailable(LookupError):
    """Traffic that must go through a waypoint that cannot take it: refuse, never bypass."""

    def __init__(self, namespace: str, name: str, reason: str) -> None:
        super().__init__(reason)
        self.namespace = namespace  # the waypoint's namespace
        self.name = name  # the waypoint's name
        self.reason = reason  # one line for the log, trace and refusal


def _by_address(workloads) -> MappingProxyType:
    return MappingProxyType({addr: w for w in workloads for addr in w.addresses})


_KINDS = {
    scope.WORKLOAD: "local",
    scope.PEER_WORKLOAD: "peers",
    scope.SERVICE: "services",
    scope.AUTHORIZATION_POLICY: "authorization",
    scope.PEER_AUTHENTICATION: "peer_authentication",
    scope.WAYPOINT: "waypoints",
}


class AgentConfig:
    """The config-stream handler: resources in, a new AgentState out, rejections reported."""

    def __init__(self) -> None:
        self.state = AgentState()
        self._held = HeldResources(_KINDS, "this agent")
        self.generation = 0

    def apply(self, type_url: str, upserts: list[XdsResource], removals: list[str]) -> dict:
        """Apply one response of one type; return {name: reason} for the resources refused."""
        rejected = self._held.apply(type_url, upserts, removals)
        if rejected is None:
            return self._held.unused(type_url, upserts)
        self._rebuild()
        return rejected

    def _rebuild(self) -> None:
        parts = {attr: self._held.values(t) for t, attr in _KINDS.items()}
        self.state = AgentState.build(**parts)
        self.generation += 1
