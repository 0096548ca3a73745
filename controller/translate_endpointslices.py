"""EndpointSlices -> the endpoints of Services that have no selector.

Which source gives a Service its endpoints, and why:

- A Service WITH a selector: its ready pods (controller.translate), in both modes; its
  EndpointSlices are passed over. The EndpointSlice controller derives them from the same pods'
  Ready condition and deletionTimestamp, which `translate.is_ready` already reads, so the slices
  add nothing for a mesh that sees every pod, and reading pods directly (a) keeps local mode,
  which has no EndpointSlice controller, identical to Kubernetes mode, (b) never lags behind a
  pod (slices are written after the pod changes, so a newly ready pod or a terminating one would
  otherwise be late by one more API round trip), and (c) resolves named targetPorts per pod,
  which the mesh needs for its own port mapping. What slices would add for selector Services
  (`publishNotReadyAddresses`, and serving-while-terminating endpoints for graceful drains) is a
  deliberate non-goal for now: the mesh sends new connections only to ready pods, as Istio does.
- A Service WITHOUT a selector: its endpoints are managed by someone else (an external database,
  a VM, another controller) and written as EndpointSlices labelled
  `kubernetes.io/service-name: <service>`. They are the only source, so their conditions are
  honoured as kube-proxy honours them: `ready` (unset means ready, per the API) picks the
  endpoints; when none is ready, the ones still `serving` while `terminating` are used instead
  (KEP-1669's fallback), so a Service being drained keeps working until its last endpoint goes.

Ports map by name, as kube-proxy maps them: a Service port named `pg` goes to the slice port
named `pg` (an unnamed Service port to the unnamed slice port), whose number is the target. An
address found in several slices (a slice being split or replaced) is one endpoint: ready if any
slice says so, with the ports of the first such slice by name (so the answer never depends on the
order the registry lists slices in).

An endpoint's `workload_uid` names the pod behind it when there is one (the slice's targetRef, or
a workload with that address), so traffic to an enrolled pod still goes over HBONE; an address
outside the mesh gets a uid of its own (`endpointslice/<namespace>/<service>/<address>`) that
no workload has, so agents and waypoints connect to it in plaintext.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from controller.model import Endpoint, ServicePort
from controller.translate_policy import Invalid

SERVICE_NAME_LABEL = "kubernetes.io/service-name"
_ROUTABLE = ("IPv4", "IPv6")  # FQDN slices are passed over, as kube-proxy does


@dataclass(frozen=True)
class SliceEndpoint:
    """One address of an EndpointSlice, with what routing needs from it."""

    address: str
    uid: str  # the targetRef's pod uid, or "" (resolved against workloads later)
    ports: tuple[tuple[str, str, int], ...]  # (name, protocol, number) of the slice's ports
    ready: bool  # conditions.ready, unset meaning true
    serving: bool  # conditions.serving, unset meaning `ready`
    terminating: bool  # conditions.terminating, unset meaning false
    slice_name: str  # the slice it came from (orders duplicates across slices)


@dataclass(frozen=True)
class EndpointSlice:
    """A validated slice: the Service it belongs to and its endpoints, one per address."""

    namespace: str
    service: str
    endpoints: tuple[SliceEndpoint, ...]


def endpoint_slice(obj: dict) -> EndpointSlice | None:
    """The slice's routable endpoints; None for an FQDN slice. Raises Invalid for a broken one."""
    meta = obj["metadata"]
    namespace = meta.get("namespace")
    service = (meta.get("labels") or {}).get(SERVICE_NAME_LABEL)
    if not isinstance(namespace, str) or not namespace:
        raise Invalid("metadata.namespace is missing")
    if not isinstance(service, str) or not service:
        raise Invalid(f"metadata.labels[{SERVICE_NAME_LABEL!r}] is missing: it names the Service")
    if obj.get("addressType") not in _ROUTABLE:
        return None
    ports = tuple(_port(port) for port in obj.get("ports") or [])
    endpoints = []
    for entry in obj.get("endpoints") or []:
        conditions = entry.get("conditions") or {}
        ready = conditions.get("ready") is not False
        target = entry.get("targetRef") or {}
        uid = target.get("uid") if target.get("kind") == "Pod" else ""
        for address in entry.get("addresses") or []:
            endpoints.append(
                SliceEndpoint(
                    address=_ip(address),
                    uid=uid or "",
                    ports=ports,
                    ready=ready,
                    serving=conditions.get("serving", ready) is not False,
                    terminating=conditions.get("terminating") is True,
                    slice_name=meta["name"],
                )
            )
    return EndpointSlice(namespace, service, tuple(endpoints))


class SliceIndex:
    """Slices by Service, and the workloads' uids by address, for `endpoints_of`."""

    def __init__(self, slices: Iterable[EndpointSlice], uid_by_address: Mapping[str, str]) -> None:
        self._by_service: dict[tuple[str, str], list[SliceEndpoint]] = {}
        for item in slices:
            key = (item.namespace, item.service)
            self._by_service.setdefault(key, []).extend(item.endpoints)
        self._uids = uid_by_address

    def endpoints_of(
        self, namespace: str, service: str, ports: tuple[ServicePort, ...]
    ) -> tuple[Endpoint, ...]:
        """The endpoints of selector-less Service `namespace/service`; see the module docstring."""
        candidates = sorted(
            self._by_service.get((namespace, service), []), key=lambda e: e.slice_name
        )
        chosen = [e for e in candidates if e.ready]
        if not chosen:
            chosen = [e for e in candidates if e.serving and e.terminating]
        by_address: dict[str, Endpoint] = {}
        for entry in chosen:
            if entry.address not in by_address:
                by_address[entry.address] = self._endpoint(entry, namespace, service, ports)
        return tuple(by_address[a] for a in sorted(by_address, key=_address_order))

    def _endpoint(
        self, entry: SliceEndpoint, namespace: str, service: str, ports: tuple[ServicePort, ...]
    ) -> Endpoint:
        uid = (
            entry.uid
            or self._uids.get(entry.address)
            or f"endpointslice/{namespace}/{service}/{entry.address}"
        )
        numbers = {(name, protocol): number for name, protocol, number in entry.ports}
        mapped = ((p.port, numbers.get((p.name, p.protocol))) for p in ports)
        return Endpoint(
            workload_uid=uid,
            address=entry.address,
            ports=tuple((port, target) for port, target in mapped if target is not None),
        )


def _port(port: dict) -> tuple[str, str, int]:
    number = port.get("port")
    if not isinstance(number, int) or isinstance(number, bool) or not 1 <= number <= 65535:
        raise Invalid(f"ports: port {number!r} is not a port number 1-65535")
    return (port.get("name") or "", port.get("protocol") or "TCP", number)


def _ip(value: object) -> str:
    try:
        return str(ipaddress.ip_address(value))  # type: ignore[arg-type]
    except ValueError:
        raise Invalid(f"endpoints: {value!r} is not an IP address") from None


@functools.lru_cache(maxsize=1 << 12)
def _address_order(address: str) -> tuple[int, int]:
    ip = ipaddress.ip_address(address)
    return (ip.version, int(ip))
