"""gateway.networking.k8s.io/v1 Gateway, as a nodemesh waypoint: the shape `istioctl waypoint
apply` writes, with nodemesh's class.

A waypoint is declared the way Istio ambient declares one: a Gateway whose class names the mesh's
waypoint implementation and whose one listener speaks HBONE on 15008. nodemesh runs no ingress or
egress gateways, so a Gateway of any other class is refused here (in Kubernetes mode the
controller skips other classes instead: they belong to other implementations). Listeners default
to the one `istioctl` writes; given listeners are checked, because a port or protocol nodemesh
would not serve must not be accepted and then silently ignored.

The Gateway's name is also a label value (`nodemesh.io/use-waypoint`,
`gateway.networking.k8s.io/gateway-name`) and the waypoint's service account name, so it must be a
DNS-1123 label (kinds.py), stricter than Gateway API's subdomain.
"""

from __future__ import annotations

from typing import Any

from nodemesh.manifests import names
from nodemesh.manifests.check import Check, child, set_default

API_VERSION = "gateway.networking.k8s.io/v1"
WAYPOINT_CLASS = "nodemesh-waypoint"
HBONE_PROTOCOL = "HBONE"
HBONE_PORT = 15008
DEFAULT_LISTENER = {"name": "mesh", "port": HBONE_PORT, "protocol": HBONE_PROTOCOL}
# Classes users bring from Istio, and what to write instead.
_FOREIGN_CLASS_HINTS = {
    "istio-waypoint": "that is Istio's waypoint class; ",
    "istio": "that is Istio's ingress class; ",
}

GATEWAY_FIELDS = frozenset({"apiVersion", "kind", "metadata", "spec"})
GATEWAY_SPEC_FIELDS = frozenset({"gatewayClassName", "listeners"})
LISTENER_FIELDS = frozenset({"name", "port", "protocol"})

USED_FIELDS = {
    "Gateway": GATEWAY_FIELDS,
    "GatewaySpec": GATEWAY_SPEC_FIELDS,
    "Listener": LISTENER_FIELDS,
}


def validate_gateway(obj: dict[str, Any], path: str, check: Check) -> None:
    check.fields(obj, path, "Gateway", GATEWAY_FIELDS)
    spec = check.mapping(obj, "spec", path, required=True)
    if spec is None:
        return
    path = child(path, "spec")
    check.fields(spec, path, "GatewaySpec", GATEWAY_SPEC_FIELDS)
    gateway_class = check.string(spec, "gatewayClassName", path, required=True)
    if gateway_class is not None and gateway_class != WAYPOINT_CLASS:
        check.fail(child(path, "gatewayClassName"), _foreign_class(gateway_class))
    seen: set[str] = set()
    for listener_path, listener in check.each_mapping(spec, "listeners", path, min_items=1):
        name = _validate_listener(listener, listener_path, check)
        if name is not None and name in seen:
            check.fail(child(listener_path, "name"), f"duplicate listener name {name!r}")
        seen.add(name or "")


def normalize_gateway(obj: dict[str, Any]) -> None:
    """The listener `istioctl waypoint apply` writes, when none is given."""
    set_default(obj["spec"], "listeners", [dict(DEFAULT_LISTENER)])


def is_waypoint_gateway(obj: dict[str, Any]) -> bool:
    """Whether a Gateway object is one of nodemesh's waypoints (its class), before validation."""
    spec = obj.get("spec")
    return isinstance(spec, dict) and spec.get("gatewayClassName") == WAYPOINT_CLASS


def _validate_listener(listener: dict[str, Any], path: str, check: Check) -> str | None:
    """Check one listener; its name (for the duplicate check), or None if it has none."""
    check.fields(listener, path, "Listener", LISTENER_FIELDS)
    name = check.string(listener, "name", path, required=True, rule=names.dns1123_subdomain)
    port = check.integer(listener, "port", path, required=True, low=1, high=65535)
    if port is not None and port != HBONE_PORT:
        check.fail(
            child(path, "port"),
            f"must be {HBONE_PORT}: nodemesh waypoints take HBONE on port {HBONE_PORT} only, "
            f"got {port}",
        )
    protocol = check.string(listener, "protocol", path, required=True)
    if protocol is not None and protocol != HBONE_PROTOCOL:
        check.fail(
            child(path, "protocol"),
            f"must be {HBONE_PROTOCOL}: a nodemesh waypoint receives mesh traffic as HBONE "
            f"tunnels and has no {protocol!r} listener; nodemesh runs no ingress gateways",
        )
    return name


def _foreign_class(gateway_class: str) -> str:
    hint = _FOREIGN_CLASS_HINTS.get(gateway_class, "")
    return (
        f"must be {WAYPOINT_CLASS!r}, got {gateway_class!r}: nodemesh only runs waypoints "
        f"(no ingress or egress gateways); {hint}set gatewayClassName: {WAYPOINT_CLASS} "
        "or create one with 'meshctl waypoint apply'"
    )
