"""Container probes: readiness, liveness and startup.

The local runtime probes with TCP connects, plain HTTP GETs and commands; a probe names its port by
number or by the name of one of its own container's ports, as in Kubernetes.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from nodemesh.manifests import names
from nodemesh.manifests.check import Check, child, set_default

PROBE_KEYS = ("readinessProbe", "livenessProbe", "startupProbe")
HANDLERS = ("tcpSocket", "httpGet", "exec")
# Kubernetes' defaults, written out by normalization; lower bounds as Kubernetes validates them.
TIMINGS = {
    "initialDelaySeconds": (0, 0),
    "periodSeconds": (10, 1),
    "timeoutSeconds": (1, 1),
    "successThreshold": (1, 1),
    "failureThreshold": (3, 1),
}

PROBE_FIELDS = frozenset({*HANDLERS, *TIMINGS})
TCP_SOCKET_FIELDS = frozenset({"port"})
HTTP_GET_FIELDS = frozenset({"path", "port", "scheme"})
EXEC_FIELDS = frozenset({"command"})

USED_FIELDS = {
    "Probe": PROBE_FIELDS,
    "TCPSocketAction": TCP_SOCKET_FIELDS,
    "HTTPGetAction": HTTP_GET_FIELDS,
    "ExecAction": EXEC_FIELDS,
}


def validate_probe(
    container: dict[str, Any], key: str, path: str, check: Check, port_names: Collection[str]
) -> None:
    """Check `container[key]`; `port_names` are the container's named ports."""
    probe = check.mapping(container, key, path)
    if probe is None:
        return
    path = child(path, key)
    check.fields(probe, path, "Probe", PROBE_FIELDS)
    # grpc counts as a handler here so that a grpc-only probe gets one error (unsupported), not two.
    handlers = [name for name in (*HANDLERS, "grpc") if probe.get(name) is not None]
    if len(handlers) != 1:
        got = f", got {' and '.join(handlers)}" if handlers else ""
        check.fail(path, f"must set exactly one of {', '.join(HANDLERS)}{got}")
    for timing, (_, low) in TIMINGS.items():
        check.integer(probe, timing, path, low=low)
    success = probe.get("successThreshold")
    if key != "readinessProbe" and isinstance(success, int) and success > 1:
        check.fail(child(path, "successThreshold"), f"must be 1 for a {key}, got {success}")
    _validate_tcp_socket(probe, path, check, port_names)
    _validate_http_get(probe, path, check, port_names)
    _validate_exec(probe, path, check)


def normalize_probe(probe: dict[str, Any]) -> None:
    for timing, (default, _) in TIMINGS.items():
        set_default(probe, timing, default)
    if probe.get("httpGet") is not None:
        set_default(probe["httpGet"], "path", "/")
        set_default(probe["httpGet"], "scheme", "HTTP")


def _validate_tcp_socket(
    probe: dict[str, Any], path: str, check: Check, port_names: Collection[str]
) -> None:
    action = check.mapping(probe, "tcpSocket", path)
    if action is not None:
        action_path = child(path, "tcpSocket")
        check.fields(action, action_path, "TCPSocketAction", TCP_SOCKET_FIELDS)
        _validate_port(action, action_path, check, port_names)


def _validate_http_get(
    probe: dict[str, Any], path: str, check: Check, port_names: Collection[str]
) -> None:
    action = check.mapping(probe, "httpGet", path)
    if action is None:
        return
    action_path = child(path, "httpGet")
    check.fields(action, action_path, "HTTPGetAction", HTTP_GET_FIELDS)
    check.string(action, "path", action_path)
    _validate_port(action, action_path, check, port_names)
    scheme = check.string(action, "scheme", action_path)
    if scheme == "HTTPS":
        message = "HTTPS probes are not supported in local mode; use HTTP or a tcpSocket probe"
        check.fail(child(action_path, "scheme"), message)
    elif scheme not in (None, "HTTP"):
        check.fail(child(action_path, "scheme"), f"must be HTTP, got {scheme!r}")


def _validate_exec(probe: dict[str, Any], path: str, check: Check) -> None:
    action = check.mapping(probe, "exec", path)
    if action is not None:
        action_path = child(path, "exec")
        check.fields(action, action_path, "ExecAction", EXEC_FIELDS)
        check.strings(action, "command", action_path, required=True, min_items=1)


def _validate_port(
    action: dict[str, Any], path: str, check: Check, port_names: Collection[str]
) -> None:
    if action.get("port") is None:
        check.fail(child(path, "port"), "required field is missing")
        return
    port_path = child(path, "port")
    port = check.int_or_string(action["port"], port_path, low=1, high=65535, rule=names.port_name)
    if isinstance(port, str) and port not in port_names:
        known = f"; its ports are named {', '.join(sorted(port_names))}" if port_names else ""
        check.fail(port_path, f"no port named {port!r} in this container{known}")
