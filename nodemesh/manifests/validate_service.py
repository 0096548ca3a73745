"""v1 Service: a virtual IP and DNS name in front of the pods its selector picks.

Local mode gives every Service a ClusterIP (or none, for headless Services); NodePort, LoadBalancer
and ExternalName need machinery outside the cluster and are refused rather than half-honoured.
"""

from __future__ import annotations

from typing import Any

from nodemesh.manifests import names
from nodemesh.manifests.check import Check, child, set_default

SERVICE_FIELDS = frozenset({"apiVersion", "kind", "metadata", "spec"})
SERVICE_SPEC_FIELDS = frozenset({"type", "clusterIP", "selector", "ports"})
SERVICE_PORT_FIELDS = frozenset({"name", "port", "targetPort", "protocol", "appProtocol"})

USED_FIELDS = {
    "Service": SERVICE_FIELDS,
    "ServiceSpec": SERVICE_SPEC_FIELDS,
    "ServicePort": SERVICE_PORT_FIELDS,
}

SERVICE_TYPES = ("ClusterIP", "NodePort", "LoadBalancer", "ExternalName")
SERVICE_PROTOCOLS = ("TCP", "UDP")


def validate_service(obj: dict[str, Any], path: str, check: Check) -> None:
    check.fields(obj, path, "Service", SERVICE_FIELDS)
    spec = check.mapping(obj, "spec", path, required=True)
    if spec is None:
        return
    path = child(path, "spec")
    check.fields(spec, path, "ServiceSpec", SERVICE_SPEC_FIELDS)
    kind = check.choice(spec, "type", path, SERVICE_TYPES)
    if kind not in (None, "ClusterIP"):
        message = f"local mode supports ClusterIP Services only, got {kind}; use ClusterIP"
        check.fail(child(path, "type"), message)
    cluster_ip = check.string(spec, "clusterIP", path, rule=_cluster_ip)
    check.string_map(spec, "selector", path, key_rule=names.label_key, value_rule=names.label_value)
    # Kubernetes lets a headless Service go without ports; every other Service needs one.
    headless = cluster_ip == "None"
    ports = list(check.each_mapping(spec, "ports", path, required=not headless, min_items=1))
    _validate_ports(ports, check)


def normalize_service(obj: dict[str, Any]) -> None:
    spec = obj["spec"]
    set_default(spec, "type", "ClusterIP")
    set_default(spec, "ports", [])
    for port in spec["ports"]:
        set_default(port, "protocol", "TCP")
        set_default(port, "targetPort", port["port"])


def _cluster_ip(value: str) -> str | None:
    if value in ("", "None"):
        return None
    problem = names.ipv4_address(value)
    return f"{problem}, or 'None' for a headless Service" if problem else None


def _validate_ports(ports: list[tuple[str, dict[str, Any]]], check: Check) -> None:
    seen_names: dict[str, str] = {}
    seen_ports: dict[tuple[int, str], str] = {}
    for port_path, port in ports:
        check.fields(port, port_path, "ServicePort", SERVICE_PORT_FIELDS)
        number = check.integer(port, "port", port_path, required=True, low=1, high=65535)
        protocol = check.choice(port, "protocol", port_path, SERVICE_PROTOCOLS) or "TCP"
        check.string(port, "appProtocol", port_path)
        if port.get("targetPort") is not None:
            check.int_or_string(
                port["targetPort"],
                child(port_path, "targetPort"),
                low=1,
                high=65535,
                rule=names.port_name,
            )
        name = check.string(port, "name", port_path, rule=names.dns1123_label)
        if port.get("name") is None and len(ports) > 1:
            check.fail(child(port_path, "name"), "required when a Service has more than one port")
        if name is not None:
            _unique(check, seen_names, name, child(port_path, "name"), f"port name {name!r}")
        if number is not None:
            key = (number, protocol)
            _unique(check, seen_ports, key, child(port_path, "port"), f"port {number}/{protocol}")


def _unique(check: Check, seen: dict[Any, str], key: Any, path: str, what: str) -> None:
    if key in seen:
        check.fail(path, f"duplicate {what} (also {seen[key]})")
    else:
        seen[key] = path
