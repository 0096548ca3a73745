"""Checks of enrollment and of Services' ports against the pods they select.

An enrolled pod's traffic is captured by its node's agent; on a node whose agent is not running
nothing captures it, so it bypasses the mesh (no mTLS, no policy) while the namespace says it is
in. The local cluster runs one agent per node as a host-network pod `nodemesh-agent-<node>` in
nodemesh-system labelled app=nodemesh-agent (nodemesh/local/system.py), as a DaemonSet would.
"""

from __future__ import annotations

from collections.abc import Iterator

from controller.analyze.findings import Finding
from controller.analyze.world import Template, World, object_key
from controller.model import DATAPLANE_MODE_LABEL, DATAPLANE_MODE_NONE, freeze_labels
from nodemesh.local.workloads import resolve_target_port, selects

SYSTEM_NAMESPACE = "nodemesh-system"
AGENT_APP = "nodemesh-agent"  # the app label of each node's agent pod (nodemesh/local/system.py)
_HTTP = frozenset(
    {"http", "http2", "grpc", "grpc-web", "h2c", "kubernetes.io/h2c", "kubernetes.io/ws", "ws"}
)
_OPAQUE = frozenset({"tcp", "tls", "https", "mongo", "mysql", "redis", "kubernetes.io/wss"})


def nodes_without_agent(world: World) -> Iterator[Finding]:
    """NM0401 (cluster only): enrolled pods on a node whose agent is not running."""
    if world.nodes is None:
        return
    agents = _agent_nodes(world)
    stranded: dict[tuple[str, str], list[Template]] = {}
    for template in world.templates:
        if template.running and world.enrolled(template) and template.node not in agents:
            stranded.setdefault((template.namespace, template.node), []).append(template)
    for (namespace, node), pods in sorted(stranded.items()):
        names = ", ".join(sorted(t.name for t in pods))
        known = "" if node in world.nodes else " (a node the cluster plan does not list)"
        message = (
            f"namespace {namespace!r} is enrolled, but node {node!r}{known} runs no node agent, so "
            f"nothing captures pods {names}: their traffic bypasses the mesh (no mTLS, no "
            f"policy); see 'meshctl get pods -n {SYSTEM_NAMESPACE} -o wide' and 'meshctl logs "
            f"{AGENT_APP}-{node} -n {SYSTEM_NAMESPACE}'"
        )
        yield world.finding("NM0401", ("Namespace", "", namespace), message)


def _agent_nodes(world: World) -> set[str]:
    nodes = set()
    for obj in world.of_kind("Pod"):
        meta, spec = obj["metadata"], obj.get("spec") or {}
        running = (obj.get("status") or {}).get("phase") == "Running"
        ours = meta.get("namespace") == SYSTEM_NAMESPACE
        if ours and running and (meta.get("labels") or {}).get("app") == AGENT_APP:
            nodes.add(spec.get("nodeName") or "")
    return nodes


def opt_out_without_enrollment(world: World) -> Iterator[Finding]:
    """NM0402: dataplane-mode=none on a pod whose namespace is not enrolled does nothing."""
    for template in world.templates:
        if dict(template.labels).get(DATAPLANE_MODE_LABEL) != DATAPLANE_MODE_NONE:
            continue
        if world.enrolled_namespace(template.namespace) is not False:
            continue
        message = (
            f"the {DATAPLANE_MODE_LABEL}={DATAPLANE_MODE_NONE} label opts it out of its "
            f"namespace's enrollment, but namespace {template.namespace!r} is not enrolled, so "
            "the label has no effect; remove it, or enroll the namespace if that was the intent"
        )
        key = (template.kind, template.namespace, template.name)
        yield world.finding("NM0402", key, message)


def target_port_names(world: World) -> Iterator[Finding]:
    """NM0501: a named targetPort that a selected pod does not declare."""
    for obj in world.of_kind("Service"):
        key = object_key(obj)
        spec = obj.get("spec") or {}
        selector = dict(freeze_labels(spec.get("selector")))
        pods = [
            t
            for t in world.templates
            if t.namespace == key[1] and selects(selector, dict(t.labels))
        ]
        for port in spec.get("ports") or []:
            target = port.get("targetPort")
            if not isinstance(target, str) or target.isdigit():
                continue
            lacking = [t for t in pods if resolve_target_port(target, t.containers) is None]
            if lacking:
                yield world.finding("NM0501", key, _target_message(port, target, lacking))


def _target_message(port: dict, target: str, lacking: list[Template]) -> str:
    names = ", ".join(f"{t.kind.lower()}/{t.name}" for t in lacking[:3])
    return (
        f"port {port.get('port')} sends to the container port named {target!r}, which {names} "
        "do not declare (spec.containers[].ports[].name), so those pods get no endpoint on it; "
        "name the container port, or use the port number as targetPort"
    )


def port_protocols(world: World) -> Iterator[Finding]:
    """NM0502: a port whose name prefix and appProtocol say different protocols."""
    routed = {
        parent.key for route in world.translated.snapshot.http_routes for parent in route.parents
    }
    for service in world.translated.snapshot.services:
        if not service.waypoint and service.key not in routed:
            continue  # only waypoints (HTTP routing) care about a port's protocol
        for port in service.ports:
            by_name = _family(port.name.split("-", 1)[0])
            by_app = _family(port.app_protocol)
            if by_name and by_app and by_name != by_app:
                key = ("Service", service.namespace, service.name)
                yield world.finding("NM0502", key, _protocol_message(port, by_name, by_app))


def _family(protocol: str) -> str:
    protocol = protocol.lower()
    if protocol in _HTTP:
        return "HTTP"
    return "TCP" if protocol in _OPAQUE else ""


def _protocol_message(port, by_name: str, by_app: str) -> str:
    return (
        f"port {port.port} is named {port.name!r}, which says {by_name}, but its appProtocol "
        f"{port.app_protocol!r} says {by_app}; Kubernetes and Istio-compatible tools believe "
        "appProtocol, people and dashboards the name; make the two agree (name ports "
        "<protocol>[-<suffix>]: http-, http2-, grpc-, tcp-, tls-)"
    )
