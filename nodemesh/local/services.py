"""Services as the runtime sees them: endpoints from ready pods, then kube-proxy rules and DNS.

Pure: takes the stored Service objects and the pods (as plain views) and returns what kube-proxy
(nodemesh.local.kubeproxy) and the cluster DNS (nodemesh.local.dns) need, plus the status the CLI
shows. Endpoints are the ready, non-terminating pods of the Service's namespace whose labels match
its selector, with named targetPorts resolved per pod as Kubernetes does.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from nodemesh.local.dns import PodRecord, ServiceRecord
from nodemesh.local.kubeproxy import Endpoint, KubeProxyError, ServicePort
from nodemesh.local.workloads import resolve_target_port, selects


@dataclass(frozen=True)
class PodView:
    name: str
    namespace: str
    ip: str
    node: str
    labels: dict
    containers: tuple[dict, ...]
    ready: bool


@dataclass(frozen=True)
class ServiceView:
    name: str
    namespace: str
    cluster_ip: str | None
    ports: tuple[dict, ...]
    selector: dict
    endpoints: dict  # port name (or str(port)) -> tuple[(ip, port, pod, node)]
    addresses: tuple[str, ...] = ()  # ready members, ports or not (headless DNS answers these)

    def to_json(self) -> dict:
        return {
            "name": self.name,
            "namespace": self.namespace,
            "clusterIP": self.cluster_ip,
            "ports": list(self.ports),
            "selector": self.selector,
            "endpoints": {
                k: [{"ip": ip, "port": p, "pod": pod, "node": node} for ip, p, pod, node in v]
                for k, v in self.endpoints.items()
            },
        }


def port_key(port: dict) -> str:
    return port.get("name") or str(port["port"])


def build_services(objects: Iterable[dict], pods: Sequence[PodView]) -> list[ServiceView]:
    views = []
    for obj in objects:
        if obj["kind"] != "Service":
            continue
        meta, spec = obj["metadata"], obj["spec"]
        selector = spec.get("selector") or {}
        members = [
            p
            for p in pods
            if p.namespace == meta["namespace"] and p.ready and selects(selector, p.labels)
        ]
        endpoints = {}
        for port in spec["ports"]:
            eps = []
            for pod in sorted(members, key=lambda p: p.ip):
                target = resolve_target_port(port.get("targetPort", port["port"]), pod.containers)
                if target is not None:
                    eps.append((pod.ip, target, pod.name, pod.node))
            endpoints[port_key(port)] = tuple(eps)
        ip = spec.get("clusterIP")
        views.append(
            ServiceView(
                name=meta["name"],
                namespace=meta["namespace"],
                cluster_ip=ip if ip and ip != "None" else None,
                ports=tuple(spec["ports"]),
                selector=selector,
                endpoints=endpoints,
                addresses=tuple(sorted({p.ip for p in members})),
            )
        )
    return sorted(views, key=lambda v: (v.namespace, v.name))


def kubeproxy_ports(
    services: Sequence[ServiceView], on_error: Callable[[str], None] = lambda _msg: None
) -> list[ServicePort]:
    """kube-proxy's input; a port it cannot program is reported via on_error and skipped."""
    out = []
    for svc in services:
        if svc.cluster_ip is None:
            continue  # headless: DNS returns the endpoints, nothing to DNAT
        for port in svc.ports:
            try:
                sp = ServicePort(
                    namespace=svc.namespace,
                    service=svc.name,
                    port_name=port.get("name") or "",
                    protocol=port.get("protocol", "TCP"),
                    cluster_ip=svc.cluster_ip,
                    port=int(port["port"]),
                    endpoints=tuple(
                        Endpoint(ip, p) for ip, p, _pod, _node in svc.endpoints[port_key(port)]
                    ),
                )
            except KubeProxyError as exc:
                on_error(str(exc))
                continue
            out.append(sp)
    return out


def dns_records(
    services: Sequence[ServiceView], pods: Sequence[PodView]
) -> tuple[list[ServiceRecord], list[PodRecord]]:
    svc_records = []
    for svc in services:
        svc_records.append(ServiceRecord(svc.name, svc.namespace, svc.cluster_ip, svc.addresses))
    pod_records = [PodRecord(p.name, p.namespace, p.ip) for p in pods]
    return svc_records, pod_records
