"""What `meshctl waypoint` does, as functions over plain data: build the Gateway, label the
namespace, summarize waypoints, and tell when one is ready.

`meshctl waypoint apply` writes the Gateway `istioctl waypoint apply` would write, with
nodemesh's class; the controller's waypoint deployer (controller.waypoints) turns it into a
ServiceAccount and a Deployment, and the runtime runs the pod. Nothing here touches the store or
the clock: the click commands (nodemesh.cli.waypoint_cmds) read and write, and the waiting loop
takes its clock and sleep as arguments.

The summary is computed with the controller's own translation (controller.translate), so the
addresses and readiness `list` prints are the ones agents are sent, not a second opinion.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from controller.model import USE_WAYPOINT_LABEL, Waypoint
from controller.model_waypoint import GATEWAY_NAME_LABEL
from controller.translate import is_ready, translate
from nodemesh.local.store import BUILTIN_NAMESPACES
from nodemesh.manifests.errors import ManifestErrors
from nodemesh.manifests.model import Manifest
from nodemesh.manifests.validate import validate_object
from nodemesh.manifests.validate_gateway import (
    API_VERSION,
    DEFAULT_LISTENER,
    WAYPOINT_CLASS,
    is_waypoint_gateway,
)

DEFAULT_NAME = "waypoint"  # istioctl's default waypoint name
SOURCE = "meshctl waypoint"  # where validation errors say the objects came from
_SERVER_FIELDS = ("uid", "creationTimestamp", "generation", "resourceVersion")


class WaypointOpError(ValueError):
    """A waypoint operation the user asked for that cannot be done; the message says why."""


@dataclass(frozen=True)
class WaypointRow:
    """One waypoint as `meshctl waypoint list` shows it."""

    name: str  # the Gateway's name
    namespace: str  # the Gateway's namespace
    status: str  # Ready, NoReadyPod, or Missing (labels name it, no Gateway declares it)
    ready_pods: int  # its pods that are ready
    pods: int  # its pods that are not terminating
    addresses: tuple[str, ...]  # the ready pods' IPs, as agents are sent them
    identity: str  # the SPIFFE ID its pods prove
    namespace_uses_it: bool  # the namespace is labelled nodemesh.io/use-waypoint=<name>
    services: tuple[str, ...]  # Services labelled nodemesh.io/use-waypoint=<name> themselves

    def as_dict(self) -> dict:
        return {
            "name": self.name,
            "namespace": self.namespace,
            "status": self.status,
            "readyPods": self.ready_pods,
            "pods": self.pods,
            "addresses": list(self.addresses),
            "identity": self.identity,
            "usedBy": {"namespace": self.namespace_uses_it, "services": list(self.services)},
        }

    def used_by(self) -> str:
        parts = [f"namespace {self.namespace}"] if self.namespace_uses_it else []
        parts += [f"service/{name}" for name in self.services]
        return ",".join(parts) or "<none>"


# --- apply ----------------------------------------------------------------------------------------


def gateway_manifest(namespace: str, name: str) -> Manifest:
    """The waypoint Gateway, validated (ManifestErrors says what is wrong with the name)."""
    return _validated(
        {
            "apiVersion": API_VERSION,
            "kind": "Gateway",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"gatewayClassName": WAYPOINT_CLASS, "listeners": [dict(DEFAULT_LISTENER)]},
        }
    )


def enrolled_namespace(objects: Iterable[dict], namespace: str, name: str) -> Manifest:
    """The namespace labelled nodemesh.io/use-waypoint=<name> (istioctl's --enroll-namespace)."""
    stored = _find(objects, "Namespace", None, namespace)
    if stored is None and namespace not in BUILTIN_NAMESPACES:
        raise WaypointOpError(
            f"namespace {namespace!r} not found; create it first (a Namespace manifest and "
            "'meshctl apply -f')"
        )
    obj = _as_applied(stored) if stored else {"apiVersion": "v1", "kind": "Namespace"}
    meta = dict(obj.get("metadata") or {"name": namespace})
    meta["labels"] = {**(meta.get("labels") or {}), USE_WAYPOINT_LABEL: name}
    return _validated({**obj, "metadata": meta})


# --- delete ---------------------------------------------------------------------------------------


def gateways_to_delete(
    objects: Iterable[dict], namespace: str, names: tuple[str, ...], everything: bool
) -> list[Manifest]:
    """The Gateways `meshctl waypoint delete` names: `names`, or every waypoint of the namespace
    (`everything`, --all), or istioctl's default name when neither is given."""
    if everything and names:
        raise WaypointOpError("name waypoints or pass --all, not both")
    if everything:
        names = tuple(g["metadata"]["name"] for g in waypoint_gateways(objects, namespace))
    elif not names:
        names = (DEFAULT_NAME,)
    return [
        Manifest(
            SOURCE,
            index,
            {"apiVersion": API_VERSION, "kind": "Gateway", "metadata": _meta(namespace, name)},
        )
        for index, name in enumerate(names, start=1)
    ]


def still_labelled(objects: Iterable[dict], namespace: str, names: Iterable[str]) -> list[str]:
    """Warnings for objects whose use-waypoint label names a waypoint being deleted."""
    names = set(names)
    warnings = []
    for obj in objects:
        meta = obj.get("metadata") or {}
        value = (meta.get("labels") or {}).get(USE_WAYPOINT_LABEL)
        kind = obj.get("kind")
        where = meta.get("name") if kind == "Namespace" else meta.get("namespace")
        if value not in names or kind not in ("Namespace", "Service", "Pod") or where != namespace:
            continue
        warnings.append(
            f"{obj['kind'].lower()}/{meta['name']} is still labelled {USE_WAYPOINT_LABEL}="
            f"{value}: its traffic is refused until you remove the label or apply the waypoint "
            "again"
        )
    return warnings


# --- list -----------------------------------------------------------------------------------------


def waypoint_gateways(objects: Iterable[dict], namespace: str | None) -> list[dict]:
    """The waypoint Gateways of `namespace` (None: every namespace)."""
    return [
        obj
        for obj in objects
        if obj.get("kind") == "Gateway"
        and is_waypoint_gateway(obj)
        and (namespace is None or obj["metadata"].get("namespace") == namespace)
    ]


def waypoint_rows(
    objects: list[dict], pods: list[dict], namespace: str | None
) -> list[WaypointRow]:
    """Every waypoint of `namespace` (None: all), including ones labels name but nothing declares.

    `objects` are the store's, `pods` the runtime's published pods (status.json).
    """
    snapshot = translate(objects + pods).snapshot
    waypoints = [w for w in snapshot.waypoints if namespace in (None, w.namespace)]
    return [_row(w, objects, pods) for w in waypoints]


def _row(waypoint: Waypoint, objects: list[dict], pods: list[dict]) -> WaypointRow:
    mine = [p for p in pods if _runs(p, waypoint) and not _terminating(p)]
    ns_labels = _labels(_find(objects, "Namespace", None, waypoint.namespace))
    services = sorted(
        obj["metadata"]["name"]
        for obj in objects
        if obj.get("kind") == "Service"
        and obj["metadata"].get("namespace") == waypoint.namespace
        and _labels(obj).get(USE_WAYPOINT_LABEL) == waypoint.name
    )
    return WaypointRow(
        name=waypoint.name,
        namespace=waypoint.namespace,
        status=_status(waypoint),
        ready_pods=sum(1 for p in mine if is_ready(p)),
        pods=len(mine),
        addresses=waypoint.addresses,
        identity=waypoint.identity,
        namespace_uses_it=ns_labels.get(USE_WAYPOINT_LABEL) == waypoint.name,
        services=tuple(services),
    )


def _status(waypoint: Waypoint) -> str:
    if not waypoint.exists:
        return "Missing"
    return "Ready" if waypoint.addresses else "NoReadyPod"


# --- wait -----------------------------------------------------------------------------------------


def not_ready_reason(status: dict, namespace: str, name: str) -> str | None:
    """None once the waypoint has a ready pod; else what is in the way, one line."""
    pods = [
        p
        for p in status.get("pods", [])
        if p["metadata"].get("namespace") == namespace
        and _labels(p).get(GATEWAY_NAME_LABEL) == name
    ]
    if any(is_ready(p) for p in pods):
        return None
    if not pods:
        return (
            f"waypoint {namespace}/{name} has no pod yet; the controller deploys it: see "
            "'meshctl get pods -n nodemesh-system'"
        )
    states = ", ".join(
        f"{p['metadata']['name']} {(p.get('status') or {}).get('display', 'Pending')}" for p in pods
    )
    return f"waypoint {namespace}/{name} has no ready pod ({states}); see 'meshctl logs POD'"


def wait_ready(
    read_status: Callable[[], dict],
    namespace: str,
    name: str,
    timeout: float,
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    interval: float = 0.2,
) -> str | None:
    """Poll until the waypoint has a ready pod: None, or why not when `timeout` runs out."""
    deadline = clock() + timeout
    while True:
        reason = not_ready_reason(read_status(), namespace, name)
        if reason is None or clock() >= deadline:
            return reason
        sleep(interval)


# --- helpers --------------------------------------------------------------------------------------


def _validated(obj: dict) -> Manifest:
    manifest, errors = validate_object(obj, SOURCE, 1, None)
    if manifest is None:
        raise ManifestErrors(errors)
    return manifest


def _find(objects: Iterable[dict], kind: str, namespace: str | None, name: str) -> dict | None:
    for obj in objects:
        meta = obj.get("metadata") or {}
        same_name = obj.get("kind") == kind and meta.get("name") == name
        if same_name and namespace in (None, meta.get("namespace")):
            return obj
    return None


def _as_applied(obj: dict) -> dict:
    meta = {k: v for k, v in obj["metadata"].items() if k not in _SERVER_FIELDS}
    return {**obj, "metadata": meta}


def _meta(namespace: str, name: str) -> dict:
    return {"name": name, "namespace": namespace}


def _labels(obj: dict | None) -> dict:
    return ((obj or {}).get("metadata") or {}).get("labels") or {}


def _runs(pod: dict, waypoint: Waypoint) -> bool:
    meta = pod.get("metadata") or {}
    return (
        meta.get("namespace") == waypoint.namespace
        and _labels(pod).get(GATEWAY_NAME_LABEL) == waypoint.name
    )


def _terminating(pod: dict) -> bool:
    return (pod.get("status") or {}).get("display") == "Terminating"
