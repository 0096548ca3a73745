"""What a waypoint knows: the controller's pushes as one immutable snapshot, compiled for requests.

Same two-phase shape as the node agent's `AgentConfig` (ztunnel's xds.rs): each resource is
decoded on its own (a bad one is NACKed alone, its last good version kept), then the whole
snapshot is rebuilt and swapped with one assignment. Rebuilding also compiles what requests
need: HTTPRoute tables (a route that does not compile is NACKed by name), the authorization
index, and each Service's TrafficPolicy settings. A request reads `config.state` once and uses
that value to the end.

TrafficPolicies arrive already narrowed by the controller to the Services each one won (one per
Service, the oldest first), and decoding has run the same reader used here, so a held policy
always parses. Should two held policies still claim one Service, the same precedence settles it
(controller.model_traffic), so the outcome never depends on the order pushes arrived in.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType

from controller import scope
from controller.model import AuthorizationPolicy, HttpRoute, PeerWorkload, Service, TrafficPolicy
from controller.resources_held import HeldResources
from nodemesh.authz import PolicyIndex
from nodemesh.xds.resources import XdsResource
from waypoint.resilience.config import TrafficPolicyConfig, traffic_policy_from_spec
from waypoint.routing import RouteSource, RouteTables, compile_routes


@dataclass(frozen=True)
class WaypointState:
    services: Mapping[str, Service] = field(default_factory=dict)  # by "ns/name"
    service_by_vip: Mapping[str, Service] = field(default_factory=dict)
    peers: Mapping[str, PeerWorkload] = field(default_factory=dict)  # by uid
    peer_by_address: Mapping[str, PeerWorkload] = field(default_factory=dict)
    routes: RouteTables | None = None
    policies: PolicyIndex = field(
        default_factory=lambda: PolicyIndex.build([], enforcer="the waypoint")
    )
    route_errors: Mapping[str, str] = field(default_factory=dict)  # route key -> why refused
    # TrafficPolicy per targeted Service ("ns/name"): retries, limits, faults, ejection.
    traffic_policies: Mapping[str, TrafficPolicyConfig] = field(default_factory=dict)

    @classmethod
    def build(
        cls,
        services: Iterable[Service],
        peers: Iterable[PeerWorkload],
        routes: Iterable[HttpRoute],
        policies: Iterable[AuthorizationPolicy],
        trust_domain: str,
        traffic_policies: Iterable[TrafficPolicy] = (),
    ) -> WaypointState:
        by_key = {s.key: s for s in services}
        by_uid = {p.uid: p for p in peers}
        compiled = compile_routes(
            [RouteSource.from_model(r) for r in sorted(routes, key=lambda r: r.key)],
            by_key.values(),
        )
        errors = {str(e.route): str(e) for e in compiled.errors}
        return cls(
            services=MappingProxyType(by_key),
            service_by_vip=MappingProxyType({v: s for s in by_key.values() for v in s.vips}),
            peers=MappingProxyType(by_uid),
            peer_by_address=MappingProxyType({a: p for p in by_uid.values() for a in p.addresses}),
            routes=compiled.tables,
            policies=PolicyIndex.build(
                list(policies), trust_domain=trust_domain, enforcer="the waypoint"
            ),
            route_errors=MappingProxyType(errors),
            traffic_policies=MappingProxyType(_by_service(traffic_policies)),
        )


def _by_service(policies: Iterable[TrafficPolicy]) -> dict[str, TrafficPolicyConfig]:
    """Service key -> the settings of its one policy (the first by precedence, if two claim it).

    A policy's `services` are the targets it won, so its config is narrowed to them too.
    """
    by_service: dict[str, TrafficPolicyConfig] = {}
    for policy in sorted(policies, key=lambda p: p.precedence):
        config = replace(traffic_policy_from_spec(policy.spec_data()), services=policy.services)
        for key in policy.service_keys:
            by_service.setdefault(key, config)
    return by_service


_KINDS = {
    scope.SERVICE: "services",
    scope.PEER_WORKLOAD: "peers",
    scope.HTTP_ROUTE: "routes",
    scope.AUTHORIZATION_POLICY: "policies",
    scope.TRAFFIC_POLICY: "traffic_policies",
}
assert set(_KINDS) == set(scope.WAYPOINT_TYPE_URLS), "subscribe to what the state is built from"


class WaypointConfig:
    """The config-stream handler: resources in, a new WaypointState out, rejections reported."""

    def __init__(self, trust_domain: str = "cluster.local") -> None:
        self.trust_domain = trust_domain
        self.state = WaypointState()
        self._held = HeldResources(_KINDS, "a waypoint")
        self.generation = 0

    def apply(self, type_url: str, upserts: list[XdsResource], removals: list[str]) -> dict:
        """Apply one response of one type; return {name: reason} for the resources refused."""
        rejected = self._held.apply(type_url, upserts, removals)
        if rejected is None:
            return self._held.unused(type_url, upserts)
        self.state = self._build()
        if type_url == scope.HTTP_ROUTE:  # a route that decodes may still not compile
            received = {r.name for r in upserts}
            rejected.update(
                (name, why) for name, why in self.state.route_errors.items() if name in received
            )
        self.generation += 1
        return rejected

    def _build(self) -> WaypointState:
        parts = {attr: self._held.values(t) for t, attr in _KINDS.items()}
        return WaypointState.build(**parts, trust_domain=self.trust_domain)
