"""discovery.k8s.io/v1 EndpointSlice: the endpoints of a Service that has no selector.

A Service without a selector (an external database, a legacy VM, a set of addresses managed by
hand or by another controller) gets its endpoints from EndpointSlices labelled
`kubernetes.io/service-name: <service>`, as in Kubernetes. Local mode accepts the same objects so
that one set of manifests describes the mesh in both modes; the controller reads them in both
(controller.translate_endpointslices). Slices of Services *with* a selector are accepted too, and
passed over: nodemesh derives those endpoints from the pods themselves.

What is refused, and why:
- a slice without the `kubernetes.io/service-name` label: nothing would ever read it;
- `addressType: FQDN`: the mesh routes to addresses (as kube-proxy does, which ignores FQDN
  slices); resolve the name and list its addresses in an IPv4 or IPv6 slice;
- an address not of the slice's addressType, and SCTP ports (local mode carries TCP and UDP).
Topology fields (zone, hints, nodeName, hostname) are accepted and ignored.
"""

from __future__ import annotations

from typing import Any

from nodemesh.manifests import names
from nodemesh.manifests.check import Check, child, set_default

API_VERSION = "discovery.k8s.io/v1"
SERVICE_NAME_LABEL = "kubernetes.io/service-name"
ADDRESS_TYPES = ("IPv4", "IPv6", "FQDN")
PROTOCOLS = ("TCP", "UDP")
MAX_ADDRESSES = 100  # per endpoint, as the API server allows

ENDPOINT_SLICE_FIELDS = frozenset(
    {"apiVersion", "kind", "metadata", "addressType", "endpoints", "ports"}
)
ENDPOINT_FIELDS = frozenset({"addresses", "conditions", "targetRef"})
ENDPOINT_CONDITIONS_FIELDS = frozenset({"ready", "serving", "terminating"})
ENDPOINT_PORT_FIELDS = frozenset({"name", "port", "protocol", "appProtocol"})
TARGET_REF_FIELDS = frozenset({"kind", "name", "namespace", "uid"})

USED_FIELDS = {
    "EndpointSlice": ENDPOINT_SLICE_FIELDS,
    "Endpoint": ENDPOINT_FIELDS,
    "EndpointConditions": ENDPOINT_CONDITIONS_FIELDS,
    "EndpointPort": ENDPOINT_PORT_FIELDS,
    "ObjectReference": TARGET_REF_FIELDS,
}


def validate_endpoint_slice(obj: dict[str, Any], path: str, check: Check) -> None:
    check.fields(obj, path, "EndpointSlice", ENDPOINT_SLICE_FIELDS)
    labels = (obj.get("metadata") or {}).get("labels")
    if not isinstance(labels, dict) or not labels.get(SERVICE_NAME_LABEL):
        check.fail(
            child(child(child(path, "metadata"), "labels"), SERVICE_NAME_LABEL),
            "required: name the Service these endpoints belong to (a Service without a selector)",
        )
    address_type = check.choice(obj, "addressType", path, ADDRESS_TYPES, required=True)
    if address_type == "FQDN":
        check.fail(
            child(path, "addressType"),
            "FQDN endpoints are not supported: the mesh routes to addresses; list the name's "
            "addresses in an IPv4 or IPv6 slice",
        )
    for endpoint_path, endpoint in check.each_mapping(obj, "endpoints", path, required=True):
        _validate_endpoint(endpoint, endpoint_path, address_type, check)
    seen: set[str] = set()
    for port_path, port in check.each_mapping(obj, "ports", path):
        name = _validate_port(port, port_path, check)
        if name in seen:
            check.fail(child(port_path, "name"), f"duplicate port name {name!r}")
        seen.add(name)


def normalize_endpoint_slice(obj: dict[str, Any]) -> None:
    """The API server's defaults: no ports means none listed; a port's protocol is TCP."""
    set_default(obj, "ports", [])
    for port in obj["ports"]:
        set_default(port, "protocol", "TCP")
        set_default(port, "name", "")


def _validate_endpoint(endpoint: dict, path: str, address_type: str | None, check: Check) -> None:
    check.fields(endpoint, path, "Endpoint", ENDPOINT_FIELDS)
    rule = {"IPv4": names.ipv4_address, "IPv6": _ipv6_address}.get(address_type or "")
    addresses = check.strings(endpoint, "addresses", path, required=True, min_items=1, rule=rule)
    if addresses is not None and len(addresses) > MAX_ADDRESSES:
        check.fail(child(path, "addresses"), f"at most {MAX_ADDRESSES} addresses per endpoint")
    conditions = check.mapping(endpoint, "conditions", path)
    if conditions is not None:
        conditions_path = child(path, "conditions")
        check.fields(conditions, conditions_path, "EndpointConditions", ENDPOINT_CONDITIONS_FIELDS)
        for key in sorted(ENDPOINT_CONDITIONS_FIELDS):
            check.boolean(conditions, key, conditions_path)
    target = check.mapping(endpoint, "targetRef", path)
    if target is not None:
        target_path = child(path, "targetRef")
        check.fields(target, target_path, "ObjectReference", TARGET_REF_FIELDS)
        for key in sorted(TARGET_REF_FIELDS):
            check.string(target, key, target_path)


def _validate_port(port: dict, path: str, check: Check) -> str:
    check.fields(port, path, "EndpointPort", ENDPOINT_PORT_FIELDS)
    name = port.get("name")
    if name not in (None, ""):  # "" names a Service's only, unnamed port
        check.string(port, "name", path, rule=names.dns1123_label)
    check.integer(port, "port", path, low=1, high=65535)
    check.choice(port, "protocol", path, PROTOCOLS)
    check.string(port, "appProtocol", path)
    return name if isinstance(name, str) else ""


def _ipv6_address(value: str) -> str | None:
    problem = names.ip_address(value)
    if problem is None and ":" not in value:
        return f"must be an IPv6 address (the slice's addressType), got {value!r}"
    return problem
