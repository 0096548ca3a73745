"""Who gets what: the resources each subscriber of a snapshot receives. Pure functions.

A node agent (`for_node`) gets:
- a full `Workload` for every pod on its node (it captures, enrolls and serves those), pending
  ones (scheduled, no address yet) included: the CNI plugin's ADD for them waits on this;
- a `PeerWorkload` for every pod elsewhere that has an address: just enough to open a tunnel to
  it or to refuse one;
- every `Service` (any local pod may call any of them);
- the `AuthorizationPolicy`s and `PeerAuthentication`s that can apply to a pod on its node: in the
  pod's namespace or the root namespace, with no selector or a selector matching the pod. Policies
  attached with targetRefs are enforced by waypoints (as in Istio ambient) and are left out;
- every `Waypoint` of the snapshot, those Gateways declare and those labels name without one. An
  agent may reach every Service and every peer, so "the waypoints it may reach" is all of them
  that anything references; sending all is the same set plus unreferenced Gateways (few: one per
  namespace at most, typically), and keeps an agent's set unchanged when a label is added. The
  agent needs them both ways: outbound, to send through a waypoint (or refuse when it has no
  ready pod); inbound, to accept a waypoint-fronted pod's traffic only from that identity.

A waypoint (`for_waypoint`) gets the Services that use it, a `PeerWorkload` for each of their
endpoints, the HTTPRoutes attached to them, its own `Waypoint`, and the AuthorizationPolicies it
must enforce: the ones that need L7 attributes in its namespace or the root namespace, plus those
whose targetRefs name it or one of its Services. It also gets the `TrafficPolicy` of every Service
it sends to: the ones it serves and the route backends (a 90/10 split to web-v1 and web-v2 applies
web-v1's retries and limits to the 90 %, since resilience follows the backend Service). Agents get
no TrafficPolicy: they work at L4 and do not read one.

A subscriber's set is recomputed from each new snapshot; the delta against what it holds is the
push (the xDS layer computes it from these keys).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from controller.model import (
    AuthorizationPolicy,
    HttpRoute,
    MeshSnapshot,
    PeerAuthentication,
    PeerWorkload,
    Service,
    TrafficPolicy,
    Waypoint,
    Workload,
    selector_matches,
)

_PREFIX = "type.googleapis.com/nodemesh.v1."
WORKLOAD = _PREFIX + "Workload"
PEER_WORKLOAD = _PREFIX + "PeerWorkload"
SERVICE = _PREFIX + "Service"
AUTHORIZATION_POLICY = _PREFIX + "AuthorizationPolicy"
PEER_AUTHENTICATION = _PREFIX + "PeerAuthentication"
HTTP_ROUTE = _PREFIX + "HttpRoute"
WAYPOINT = _PREFIX + "Waypoint"
TRAFFIC_POLICY = _PREFIX + "TrafficPolicy"
TYPE_URLS = (
    WORKLOAD,
    PEER_WORKLOAD,
    SERVICE,
    AUTHORIZATION_POLICY,
    PEER_AUTHENTICATION,
    HTTP_ROUTE,
    WAYPOINT,
    TRAFFIC_POLICY,
)
# What a waypoint subscribes to. Its own Waypoint resource (for_waypoint sends it) is left out:
# nothing in the waypoint reads it yet.
WAYPOINT_TYPE_URLS = (SERVICE, PEER_WORKLOAD, HTTP_ROUTE, AUTHORIZATION_POLICY, TRAFFIC_POLICY)

GATEWAY_GROUP = "gateway.networking.k8s.io"


@dataclass(frozen=True, order=True)
class ResourceKey:
    """One resource a subscriber holds: its type URL and its name within that type."""

    type_url: str  # type.googleapis.com/nodemesh.v1.<Message>
    name: str  # uid for (Peer)Workloads, "<namespace>/<name>" for the others


ModelObject = (
    Workload
    | PeerWorkload
    | Service
    | AuthorizationPolicy
    | PeerAuthentication
    | HttpRoute
    | Waypoint
    | TrafficPolicy
)


def key_of(obj: ModelObject) -> ResourceKey:
    """The resource key of a model object (a Workload is keyed as the full resource)."""
    match obj:
        case Workload():
            return ResourceKey(WORKLOAD, obj.uid)
        case PeerWorkload():
            return ResourceKey(PEER_WORKLOAD, obj.uid)
        case Service():
            return ResourceKey(SERVICE, obj.key)
        case AuthorizationPolicy():
            return ResourceKey(AUTHORIZATION_POLICY, obj.key)
        case PeerAuthentication():
            return ResourceKey(PEER_AUTHENTICATION, obj.key)
        case HttpRoute():
            return ResourceKey(HTTP_ROUTE, obj.key)
        case Waypoint():
            return ResourceKey(WAYPOINT, obj.key)
        case TrafficPolicy():
            return ResourceKey(TRAFFIC_POLICY, obj.key)
    raise TypeError(f"not a mesh model object: {type(obj).__name__}")


def for_node(snapshot: MeshSnapshot, node: str) -> frozenset[ResourceKey]:
    """Every resource the agent of `node` needs."""
    local = [w for w in snapshot.workloads if w.node == node]
    keys = {ResourceKey(WORKLOAD, w.uid) for w in local}
    # A pending workload (no address yet, controller.translate) is its own node's business only.
    peers = (w for w in snapshot.workloads if w.node != node and w.addresses)
    keys.update(ResourceKey(PEER_WORKLOAD, w.uid) for w in peers)
    keys.update(ResourceKey(SERVICE, s.key) for s in snapshot.services)
    for policy in snapshot.authorization_policies:
        if not policy.target_refs and any(applies_to(policy, w) for w in local):
            keys.add(ResourceKey(AUTHORIZATION_POLICY, policy.key))
    for peer_authn in snapshot.peer_authentications:
        if any(applies_to(peer_authn, w) for w in local):
            keys.add(ResourceKey(PEER_AUTHENTICATION, peer_authn.key))
    keys.update(ResourceKey(WAYPOINT, w.key) for w in snapshot.waypoints)
    return frozenset(keys)


def applies_to(policy: AuthorizationPolicy | PeerAuthentication, workload: Workload) -> bool:
    """A selector policy's reach: its namespace (all of them from the root), then its selector."""
    in_scope = policy.is_root or policy.namespace == workload.namespace
    return in_scope and selector_matches(policy.selector, workload.labels)


def waypoint_services(snapshot: MeshSnapshot, namespace: str, name: str) -> tuple[Service, ...]:
    """The Services whose traffic goes through waypoint `name` of `namespace`."""
    return tuple(s for s in snapshot.services if s.namespace == namespace and s.waypoint == name)


def for_waypoint(snapshot: MeshSnapshot, namespace: str, name: str) -> frozenset[ResourceKey]:
    """Every resource waypoint `name` (a Gateway in `namespace`) needs: the Services that use
    it, their routes, the Services those routes send to or mirror to (a 90/10 split names two
    other Services), every endpoint of all of them, the TrafficPolicies of all of them, and the
    authorization policies it enforces."""
    served_services = waypoint_services(snapshot, namespace, name)
    routes = [r for s in served_services for r in snapshot.routes_by_parent.get(s.key, ())]
    backends = {key for route in routes for key in route_backends(route)}
    services = [*served_services, *(s for s in snapshot.services if s.key in backends)]
    keys = {ResourceKey(SERVICE, s.key) for s in services}
    keys.update(
        ResourceKey(PEER_WORKLOAD, endpoint.workload_uid)
        for s in services
        for endpoint in s.endpoints
        if endpoint.workload_uid in snapshot.workloads_by_uid
    )
    keys.update(ResourceKey(HTTP_ROUTE, route.key) for route in routes)
    keys.update(_traffic_policies(snapshot, services))
    if snapshot.waypoint(namespace, name) is not None:
        keys.add(ResourceKey(WAYPOINT, f"{namespace}/{name}"))
    served = {s.key for s in served_services}
    for policy in snapshot.authorization_policies:
        if _waypoint_enforces(policy, namespace, name, served):
            keys.add(ResourceKey(AUTHORIZATION_POLICY, policy.key))
    return frozenset(keys)


def _traffic_policies(snapshot: MeshSnapshot, services: list[Service]) -> set[ResourceKey]:
    policies = (snapshot.traffic_policy_by_service.get(s.key) for s in services)
    return {ResourceKey(TRAFFIC_POLICY, policy.key) for policy in policies if policy is not None}


def route_backends(route) -> set[str]:
    """ "namespace/name" of every Service a route's rules forward or mirror to."""
    found = set()
    for rule in json.loads(route.rules):
        refs = list(rule.get("backendRefs", ()))
        for holder in [rule, *refs]:
            for f in holder.get("filters", ()):
                if f.get("type") == "RequestMirror":
                    refs.append(f["requestMirror"]["backendRef"])
        for ref in refs:
            if ref.get("kind", "Service") == "Service" and ref.get("group", "") in ("", "core"):
                found.add(f"{ref.get('namespace') or route.namespace}/{ref['name']}")
    return found


def _waypoint_enforces(
    policy: AuthorizationPolicy, namespace: str, name: str, served: set[str]
) -> bool:
    if policy.target_refs:
        return any(_targets(ref, namespace, name, served) for ref in policy.target_refs)
    return policy.needs_l7 and (policy.is_root or policy.namespace == namespace)


def _targets(ref, namespace: str, name: str, served: set[str]) -> bool:
    if ref.kind == "Service" and ref.group in ("", "core"):
        return f"{ref.namespace}/{ref.name}" in served
    if ref.kind == "Gateway" and ref.group == GATEWAY_GROUP:
        return ref.namespace == namespace and ref.name == name
    return False
