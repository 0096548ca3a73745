"""The mesh model: what the controller knows, as frozen values, and the snapshot that indexes them.

`controller.translate` builds these values from registry objects, `controller.scope` decides which
subscriber gets which, and `controller.resources` turns them into `nodemesh.v1` messages and back.
Everything here is immutable (tuples, sorted label pairs, read-only mappings): a `MeshSnapshot` is
built once, shared by every push task, and replaced by swapping one reference, so no reader ever
sees half an update.

Names follow the user-facing API (DESIGN.md): enrollment and waypoints are labels, policies are
Istio's `security.istio.io/v1` shapes under `security.nodemesh.io/v1`, routes are Gateway API
HTTPRoutes attached to Services; waypoints are Gateways of class `nodemesh-waypoint`
(controller.model_waypoint); a waypoint's resilience settings are TrafficPolicies attached to
Services, one per Service (controller.model_traffic).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from controller.model_policy import (
    L4_CONDITION_KEYS,
    L7_OPERATION_FIELDS,
    L7_SOURCE_FIELDS,
    AuthorizationPolicy,
    Condition,
    Operation,
    PeerAuthentication,
    Rule,
    Source,
    TargetRef,
    rule_needs_l7,
    rules_need_l7,
)
from controller.model_traffic import TrafficPolicy
from controller.model_waypoint import Waypoint

# Parts of this model defined in their own modules (policy shapes, waypoints, traffic policies),
# re-exported.
__all__ = [
    "L4_CONDITION_KEYS",
    "L7_OPERATION_FIELDS",
    "L7_SOURCE_FIELDS",
    "AuthorizationPolicy",
    "Condition",
    "Operation",
    "PeerAuthentication",
    "Rule",
    "Source",
    "TargetRef",
    "TrafficPolicy",
    "Waypoint",
    "rule_needs_l7",
    "rules_need_l7",
]

DEFAULT_TRUST_DOMAIN = "cluster.local"
DEFAULT_ROOT_NAMESPACE = "nodemesh-system"
CLUSTER_DOMAIN = "cluster.local"  # DNS suffix of Service hostnames (not the trust domain)

DATAPLANE_MODE_LABEL = "nodemesh.io/dataplane-mode"
DATAPLANE_MODE_AMBIENT = "ambient"  # on a namespace: enroll its pods
DATAPLANE_MODE_NONE = "none"  # on a pod: opt it out of its namespace's enrollment
USE_WAYPOINT_LABEL = "nodemesh.io/use-waypoint"
NO_WAYPOINT = "none"  # use-waypoint value on a pod or Service: opt out of the namespace's waypoint

Labels = tuple[tuple[str, str], ...]
"""A label map as (key, value) pairs sorted by key: hashable, and one spelling per map."""


def freeze_labels(labels: Mapping[str, str] | None) -> Labels:
    """Sorted pairs of a label map; every key and value must be a string."""
    pairs = []
    for key, value in (labels or {}).items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise ValueError(f"label {key!r}: {value!r}: label keys and values must be strings")
        pairs.append((key, value))
    return tuple(sorted(pairs))


def label_dict(labels: Labels) -> dict[str, str]:
    return dict(labels)


def selector_matches(selector: Labels | None, labels: Labels) -> bool:
    """Istio's WorkloadSelector: None (no selector) picks every workload the policy can reach."""
    if selector is None:
        return True
    have = dict(labels)
    return all(have.get(key) == value for key, value in selector)


def canonical_json(value: Any) -> str:
    """One spelling for a JSON value: keys sorted, no spaces (equal data, equal text)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def service_hostname(namespace: str, name: str) -> str:
    return f"{name}.{namespace}.svc.{CLUSTER_DOMAIN}"


# --- workloads ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Workload:
    """A running pod as the mesh sees it: what its node's agent needs to capture and serve it."""

    uid: str  # the pod's metadata.uid: the resource name, stable for the pod's whole life
    name: str  # the pod's name
    namespace: str  # the pod's namespace
    node: str  # spec.nodeName: the node whose agent captures this pod's traffic
    addresses: tuple[str, ...]  # pod IPs (status.podIPs, else status.podIP); the first is primary
    service_account: str  # spec.serviceAccountName ("default" when unset)
    identity: str  # spiffe://<trust domain>/ns/<namespace>/sa/<service account>: its certificate
    labels: Labels  # the pod's labels (policy selectors and Service selectors match these)
    enrolled: bool  # namespace labelled dataplane-mode=ambient and the pod not labelled =none
    waypoint: str  # waypoint (in the pod's namespace) its inbound traffic goes through, or ""
    ready: bool  # Ready condition True and not terminating: may receive new connections
    netns: str  # local mode: path of the pod's network namespace; "" in Kubernetes mode
    cgroup: str  # local mode: the pod's cgroup v2 directory; "" in Kubernetes mode
    owner: str  # controlling object, "Deployment/web" (telemetry's workload name), or ""


@dataclass(frozen=True)
class PeerWorkload:
    """A workload seen from another node: only what a tunnel to it (or a waypoint) needs."""

    uid: str  # the pod's metadata.uid, as Workload.uid
    name: str  # the pod's name (logs, and telemetry's destination_workload fallback)
    namespace: str  # the pod's namespace
    addresses: tuple[str, ...]  # pod IPs; a destination address is looked up here
    node: str  # the node whose agent terminates HBONE for it
    identity: str  # SPIFFE ID the peer certificate must prove
    waypoint: str  # waypoint its inbound traffic must go through, or ""
    enrolled: bool  # False: not in the mesh, connect to it in plaintext, no HBONE

    @classmethod
    def of(cls, workload: Workload) -> PeerWorkload:
        return cls(
            uid=workload.uid,
            name=workload.name,
            namespace=workload.namespace,
            addresses=workload.addresses,
            node=workload.node,
            identity=workload.identity,
            waypoint=workload.waypoint,
            enrolled=workload.enrolled,
        )


# --- services -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ServicePort:
    name: str  # port name ("" for a Service's only, unnamed port)
    port: int  # the port clients connect to on the VIP
    target_port: int | str  # a number, or the name of a container port (resolved per endpoint)
    protocol: str  # TCP or UDP
    app_protocol: str  # appProtocol ("http", "kubernetes.io/h2c", ...), or ""


@dataclass(frozen=True)
class Endpoint:
    workload_uid: str  # the Workload behind this endpoint
    address: str  # the workload's primary address
    ports: tuple[
        tuple[int, int], ...
    ]  # (service port, resolved target port); unresolvable left out


@dataclass(frozen=True)
class Service:
    name: str  # the Service's name
    namespace: str  # the Service's namespace
    hostname: str  # <name>.<namespace>.svc.cluster.local
    vips: tuple[str, ...]  # cluster IPs; empty for a headless Service
    ports: tuple[ServicePort, ...]  # in the Service's order
    endpoints: tuple[
        Endpoint, ...
    ]  # ready workloads its selector picks, enrolled or not, by address
    waypoint: str  # waypoint for traffic to it: Service label, else namespace label, else ""

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


# --- routes ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RouteParent:
    """A Service an HTTPRoute attaches to (Gateway API GAMMA parentRef)."""

    namespace: str  # the Service's namespace (defaults to the route's)
    name: str  # the Service's name
    port: int  # only this Service port; 0: every port
    section_name: str  # only the Service port of this name; "": every port

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True)
class HttpRoute:
    name: str  # the route's name
    namespace: str  # the route's namespace
    parents: tuple[RouteParent, ...]  # the Services it attaches to
    hostnames: tuple[str, ...]  # Host headers it matches; empty: any
    rules: str  # canonical JSON of the normalized spec.rules (refined by the waypoint's router)

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    def rules_data(self) -> list[dict[str, Any]]:
        """The rules as plain data (a fresh copy on every call)."""
        return json.loads(self.rules)


# --- the snapshot ---------------------------------------------------------------------------------


def _frozen(mapping: dict) -> Mapping:
    return MappingProxyType(mapping)


def _group(items: Iterable, key) -> Mapping[str, tuple]:
    grouped: dict[str, list] = {}
    for item in items:
        grouped.setdefault(key(item), []).append(item)
    return _frozen({k: tuple(v) for k, v in grouped.items()})


@dataclass(frozen=True, eq=False)
class MeshSnapshot:
    """One consistent view of the mesh; build a new one for every change, never edit one."""

    version: str  # content hash of everything below: equal content, equal version
    trust_domain: str  # SPIFFE trust domain of every identity in it
    workloads: tuple[Workload, ...]  # sorted by uid
    services: tuple[Service, ...]  # sorted by (namespace, name)
    authorization_policies: tuple[AuthorizationPolicy, ...]  # sorted by (namespace, name)
    peer_authentications: tuple[PeerAuthentication, ...]  # sorted by (namespace, name)
    http_routes: tuple[HttpRoute, ...]  # sorted by (namespace, name)
    waypoints: tuple[Waypoint, ...]  # declared and label-named ones, sorted by (namespace, name)
    traffic_policies: tuple[TrafficPolicy, ...]  # conflicts resolved; sorted by (namespace, name)
    workloads_by_uid: Mapping[str, Workload]  # uid -> workload
    workloads_by_address: Mapping[str, Workload]  # IP -> workload (a ready one wins a clash)
    workloads_by_identity: Mapping[str, tuple[Workload, ...]]  # SPIFFE ID -> workloads
    services_by_hostname: Mapping[str, Service]  # hostname -> service
    services_by_vip: Mapping[str, Service]  # cluster IP -> service
    authz_by_namespace: Mapping[str, tuple[AuthorizationPolicy, ...]]  # namespace -> policies
    peer_authn_by_namespace: Mapping[str, tuple[PeerAuthentication, ...]]  # namespace -> policies
    routes_by_namespace: Mapping[str, tuple[HttpRoute, ...]]  # namespace -> routes
    routes_by_parent: Mapping[str, tuple[HttpRoute, ...]]  # "<ns>/<service>" -> attached routes
    waypoints_by_key: Mapping[str, Waypoint]  # "<ns>/<name>" -> waypoint
    traffic_policies_by_key: Mapping[str, TrafficPolicy]  # "<ns>/<name>" -> traffic policy
    traffic_policy_by_service: Mapping[str, TrafficPolicy]  # "<ns>/<service>" -> its one policy

    @classmethod
    def build(
        cls,
        workloads: Iterable[Workload],
        services: Iterable[Service],
        authz: Iterable[AuthorizationPolicy],
        peerauthn: Iterable[PeerAuthentication],
        routes: Iterable[HttpRoute],
        trust_domain: str = DEFAULT_TRUST_DOMAIN,
        *,
        waypoints: Iterable[Waypoint] = (),
        traffic_policies: Iterable[TrafficPolicy] = (),
        version: str | None = None,
    ) -> MeshSnapshot:
        """Sort and index; uids and (namespace, name) keys must be unique, and a Service may have
        one TrafficPolicy (ValueError if not: resolve conflicts first, model_traffic)."""
        workloads = tuple(sorted(workloads, key=lambda w: w.uid))
        services = tuple(sorted(services, key=_namespaced_name))
        authz = tuple(sorted(authz, key=_namespaced_name))
        peerauthn = tuple(sorted(peerauthn, key=_namespaced_name))
        routes = tuple(sorted(routes, key=_namespaced_name))
        waypoints = tuple(sorted(waypoints, key=_namespaced_name))
        traffic = tuple(sorted(traffic_policies, key=_namespaced_name))
        _unique("workload uid", [w.uid for w in workloads])
        _unique("Service", [s.key for s in services])
        _unique("AuthorizationPolicy", [p.key for p in authz])
        _unique("PeerAuthentication", [p.key for p in peerauthn])
        _unique("HTTPRoute", [r.key for r in routes])
        _unique("Waypoint", [w.key for w in waypoints])
        _unique("TrafficPolicy", [p.key for p in traffic])
        _unique("TrafficPolicy target Service", [k for p in traffic for k in p.service_keys])
        content = (trust_domain, workloads, services, authz, peerauthn, routes, waypoints, traffic)
        return cls(
            version=version or hashlib.sha256(repr(content).encode()).hexdigest()[:16],
            trust_domain=trust_domain,
            workloads=workloads,
            services=services,
            authorization_policies=authz,
            peer_authentications=peerauthn,
            http_routes=routes,
            waypoints=waypoints,
            traffic_policies=traffic,
            workloads_by_uid=_frozen({w.uid: w for w in workloads}),
            workloads_by_address=_frozen(_by_address(workloads)),
            workloads_by_identity=_group(workloads, lambda w: w.identity),
            services_by_hostname=_frozen({s.hostname: s for s in services}),
            services_by_vip=_frozen({vip: s for s in reversed(services) for vip in s.vips}),
            authz_by_namespace=_group(authz, lambda p: p.namespace),
            peer_authn_by_namespace=_group(peerauthn, lambda p: p.namespace),
            routes_by_namespace=_group(routes, lambda r: r.namespace),
            routes_by_parent=_routes_by_parent(routes),
            waypoints_by_key=_frozen({w.key: w for w in waypoints}),
            traffic_policies_by_key=_frozen({p.key: p for p in traffic}),
            traffic_policy_by_service=_frozen({k: p for p in traffic for k in p.service_keys}),
        )

    def service(self, namespace: str, name: str) -> Service | None:
        return self.services_by_hostname.get(service_hostname(namespace, name))

    def authorization_policy(self, namespace: str, name: str) -> AuthorizationPolicy | None:
        return _named(self.authz_by_namespace.get(namespace, ()), name)

    def peer_authentication(self, namespace: str, name: str) -> PeerAuthentication | None:
        return _named(self.peer_authn_by_namespace.get(namespace, ()), name)

    def http_route(self, namespace: str, name: str) -> HttpRoute | None:
        return _named(self.routes_by_namespace.get(namespace, ()), name)

    def waypoint(self, namespace: str, name: str) -> Waypoint | None:
        return self.waypoints_by_key.get(f"{namespace}/{name}")

    def traffic_policy(self, namespace: str, name: str) -> TrafficPolicy | None:
        return self.traffic_policies_by_key.get(f"{namespace}/{name}")


def _unique(what: str, keys: list[str]) -> None:
    seen: set[str] = set()
    for key in keys:
        if key in seen:
            raise ValueError(f"duplicate {what} {key!r} in one snapshot")
        seen.add(key)


def _by_address(workloads: tuple[Workload, ...]) -> dict[str, Workload]:
    """IP -> workload; when two pods claim one IP (a reused address), a ready one wins, then uid."""
    index: dict[str, Workload] = {}
    for workload in sorted(workloads, key=lambda w: (not w.ready, w.uid), reverse=True):
        for address in workload.addresses:
            index[address] = workload
    return index


def _routes_by_parent(routes: tuple[HttpRoute, ...]) -> Mapping[str, tuple[HttpRoute, ...]]:
    """Service key -> routes; a route naming two ports of one Service is listed once."""
    grouped: dict[str, list[HttpRoute]] = {}
    for route in routes:
        for key in dict.fromkeys(parent.key for parent in route.parents):
            grouped.setdefault(key, []).append(route)
    return _frozen({key: tuple(items) for key, items in grouped.items()})


def _namespaced_name(
    obj: Service | AuthorizationPolicy | PeerAuthentication | HttpRoute | Waypoint | TrafficPolicy,
):
    return (obj.namespace, obj.name)


def _named(items: tuple, name: str):
    return next((item for item in items if item.name == name), None)
