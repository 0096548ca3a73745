"""Gateways of class nodemesh-waypoint, and the pods that run them -> the model's `Waypoint`s.

Part of `controller.translate`; the rules:

- A Gateway of class `nodemesh-waypoint` declares waypoint <namespace>/<name>. Gateways of other
  classes belong to other Gateway API implementations (in Kubernetes mode they share the API
  server) and are passed over without an error. Declared ones are validated like any manifest
  (nodemesh.manifests.validate_gateway), so a listener nodemesh would not serve is reported.
- A waypoint's addresses are the primary IPs of its ready pods: pods of its namespace labelled
  `gateway.networking.k8s.io/gateway-name: <name>` that run as service account <name>. A pod
  with another service account could not prove the waypoint's identity, so agents would refuse
  its certificate; it is not counted as one of the waypoint's addresses.
- A waypoint's pods are never enrolled (`is_waypoint_pod`): capturing the waypoint's own traffic
  would send it back to itself.
- A name that some Service's or pod's resolved `use-waypoint` names but no Gateway declares still
  becomes a Waypoint (`exists=False`), so agents refuse that traffic with the reason instead of
  sending it past the waypoint's L7 policy.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from controller.model import Service, Waypoint, Workload
from controller.model_waypoint import GATEWAY_NAME_LABEL, missing_waypoint
from controller.translate_policy import validated
from nodemesh.identity import IdentityError, SpiffeId
from nodemesh.manifests.validate_gateway import HBONE_PORT, is_waypoint_gateway


@dataclass(frozen=True)
class WaypointGateway:
    """A Gateway that declares a waypoint: all the model needs of it is where and what."""

    namespace: str  # the Gateway's namespace
    name: str  # the Gateway's name: the waypoint's, and its pods' service account

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


def waypoint_gateway(obj: dict) -> WaypointGateway | None:
    """The waypoint a Gateway declares; None for another class's Gateway; Invalid if broken."""
    if not is_waypoint_gateway(obj):
        return None
    meta = validated(obj)["metadata"]
    return WaypointGateway(meta["namespace"], meta["name"])


def is_waypoint_pod(namespace: str, labels: Mapping[str, str], declared: set[str]) -> bool:
    """Whether a pod runs a declared waypoint ("<namespace>/<name>" in `declared`)."""
    name = labels.get(GATEWAY_NAME_LABEL)
    return name is not None and f"{namespace}/{name}" in declared


def build_waypoints(
    gateways: Iterable[WaypointGateway],
    workloads: Iterable[Workload],
    services: Iterable[Service],
    trust_domain: str,
) -> list[Waypoint]:
    """Every declared waypoint with its ready pods, and every referenced one that is missing."""
    workloads = list(workloads)
    ready = _ready_addresses(workloads)
    found: dict[str, Waypoint] = {}
    for gateway in gateways:
        found[gateway.key] = Waypoint(
            name=gateway.name,
            namespace=gateway.namespace,
            identity=str(SpiffeId(trust_domain, gateway.namespace, gateway.name)),
            addresses=tuple(sorted(ready.get(gateway.key, ()), key=_address_order)),
            hbone_port=HBONE_PORT,
            exists=True,
        )
    for namespace, name in _referenced(workloads, services):
        key = f"{namespace}/{name}"
        if key not in found:
            identity = _identity(trust_domain, namespace, name)
            if identity is not None:
                found[key] = missing_waypoint(namespace, name, identity)
    return list(found.values())


def _ready_addresses(workloads: list[Workload]) -> dict[str, list[str]]:
    """ "<namespace>/<waypoint>" -> primary IPs of its ready pods (see the module docstring)."""
    addresses: dict[str, list[str]] = {}
    for workload in workloads:
        name = dict(workload.labels).get(GATEWAY_NAME_LABEL)
        if workload.ready and name is not None and workload.service_account == name:
            addresses.setdefault(f"{workload.namespace}/{name}", []).append(workload.addresses[0])
    return addresses


def _referenced(workloads: list[Workload], services: Iterable[Service]) -> set[tuple[str, str]]:
    named = [(w.namespace, w.waypoint) for w in workloads]
    named += [(s.namespace, s.waypoint) for s in services]
    return {(namespace, name) for namespace, name in named if name}


def _identity(trust_domain: str, namespace: str, name: str) -> str | None:
    """The waypoint's SPIFFE ID; None if the label value cannot be a service account (then the
    agent holds no Waypoint for it and refuses the traffic as unknown, which is still closed)."""
    try:
        return str(SpiffeId(trust_domain, namespace, name))
    except IdentityError:
        return None


def _address_order(address: str) -> tuple[int, int]:
    ip = ipaddress.ip_address(address)
    return (ip.version, int(ip))
