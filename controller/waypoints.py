"""The waypoint deployer: each Gateway of class nodemesh-waypoint becomes a ServiceAccount and a
one-replica Deployment of the waypoint proxy, in the Gateway's namespace.

Theory of operation. The controller hands `reconcile` every object its registry holds, each time
the registry changes. `plan` is pure: it computes the objects every waypoint Gateway wants
(`waypoint_objects`, validated and normalized as `meshctl apply` would), compares them with what
is stored, and answers with what to create or update, what to delete, and what it must leave
alone. An executor carries the plan out; `LocalStoreDeployer` writes the local cluster's store
(`Store.apply` / `Store.delete`, each under the store's lock) and wakes the runtime, which starts
and stops the pods like any Deployment's. In Kubernetes mode the same plan will be carried out
through the API server (issue 7): only the executor differs.

- Ownership is a label: objects nodemesh writes carry `nodemesh.io/managed-by:
  nodemesh-controller` and `gateway.networking.k8s.io/gateway-name: <name>`. Only those are ever
  changed or deleted. A Deployment of the same name that nodemesh does not manage is a conflict,
  reported and left alone (the waypoint is then not deployed); a ServiceAccount of that name
  that the user made is simply used.
- Idempotent: an object equal to the stored one (server-set metadata aside) is not written, so a
  reconcile after the deployer's own write, or after any unrelated change, writes nothing.
- Updated when the template changes (a new interpreter path, controller address or flag): the
  stored Deployment differs from the wanted one, so it is applied and the runtime rolls it.
- Removed when the Gateway goes: managed objects whose Gateway no longer exists are deleted.

The waypoint's pods are labelled `nodemesh.io/dataplane-mode: none`: they are never captured, and
with the gateway-name label they never get a waypoint themselves (controller.translate).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from controller.model import DATAPLANE_MODE_LABEL, DATAPLANE_MODE_NONE
from controller.model_waypoint import GATEWAY_NAME_LABEL
from nodemesh.local.prometheus_targets import scrape_annotations
from nodemesh.local.state import StateDir
from nodemesh.local.store import Store
from nodemesh.manifests.errors import ManifestErrors
from nodemesh.manifests.model import Manifest
from nodemesh.manifests.validate import validate_object
from nodemesh.manifests.validate_gateway import HBONE_PORT, is_waypoint_gateway

log = logging.getLogger("nodemesh.controller.waypoints")

MANAGED_BY_LABEL = "nodemesh.io/managed-by"
MANAGED_BY = "nodemesh-controller"
STATUS_PORT = 15021  # the waypoint's readiness endpoint, as Istio's proxies serve it
METRICS_PORT = 15020
READY_PATH = "/healthz/ready"
_MANAGED_KINDS = ("ServiceAccount", "Deployment")
_SERVER_FIELDS = ("uid", "creationTimestamp", "generation", "resourceVersion")
_SOURCE = "nodemesh-controller (waypoint deployer)"  # where errors say the objects came from

Key = tuple[str, str, str]  # (kind, namespace, name)


@dataclass(frozen=True)
class WaypointTemplate:
    """What every waypoint pod's command line needs to know about this cluster."""

    python: str  # interpreter that runs `-m waypoint` (the controller's own, in local mode)
    controller: str  # host the waypoint dials for certificates and config
    state_dir: str  # the local cluster's state directory (credentials, trust bundle)

    def command(self, namespace: str, name: str) -> list[str]:
        return [
            self.python,
            "-m",
            "waypoint",
            "--name",
            name,
            "--namespace",
            namespace,
            "--controller",
            self.controller,
            *self.trust_args(),
        ]

    def trust_args(self) -> list[str]:
        """Where the waypoint finds its trust bundle and credentials: the local state directory
        (a Kubernetes template replaces this with a mounted bundle)."""
        return ["--local-state", self.state_dir]


@dataclass(frozen=True)
class WaypointPlan:
    """What one reconcile must do; empty when the store already matches the Gateways."""

    apply: tuple[Manifest, ...] = ()  # objects to create or update
    delete: tuple[Manifest, ...] = ()  # managed objects whose Gateway is gone
    conflicts: tuple[str, ...] = ()  # why a waypoint is not deployed, one line each

    @property
    def changes(self) -> bool:
        return bool(self.apply or self.delete)


def managed_labels(name: str) -> dict[str, str]:
    """The labels of everything nodemesh deploys for waypoint `name`, and of its pods."""
    return {
        GATEWAY_NAME_LABEL: name,
        DATAPLANE_MODE_LABEL: DATAPLANE_MODE_NONE,
        MANAGED_BY_LABEL: MANAGED_BY,
    }


def waypoint_objects(namespace: str, name: str, template: WaypointTemplate) -> list[dict]:
    """The ServiceAccount and Deployment that run waypoint `namespace/name`."""
    meta = {"name": name, "namespace": namespace, "labels": managed_labels(name)}
    account = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta}
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": meta,
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {GATEWAY_NAME_LABEL: name}},
            "template": {
                "metadata": {
                    "labels": managed_labels(name),
                    "annotations": scrape_annotations(METRICS_PORT),  # for Prometheus
                },
                "spec": {
                    "serviceAccountName": name,
                    "containers": [_container(namespace, name, template)],
                },
            },
        },
    }
    return [account, deployment]


def _container(namespace: str, name: str, template: WaypointTemplate) -> dict:
    return {
        "name": "waypoint",
        "command": template.command(namespace, name),
        "env": [{"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}],
        "ports": [
            {"name": "mesh", "containerPort": HBONE_PORT},
            {"name": "metrics", "containerPort": METRICS_PORT},
            {"name": "status-port", "containerPort": STATUS_PORT},
        ],
        "readinessProbe": {
            "httpGet": {"port": STATUS_PORT, "path": READY_PATH},
            "periodSeconds": 2,
        },
    }


def plan(objects: Iterable[dict], template: WaypointTemplate) -> WaypointPlan:
    """Compare what the waypoint Gateways want with what is stored; see the module docstring."""
    objects = list(objects)
    stored = {_key(obj): obj for obj in objects if obj.get("kind") in _MANAGED_KINDS}
    gateways = [obj for obj in objects if obj.get("kind") == "Gateway" and is_waypoint_gateway(obj)]
    wanted, conflicts = _wanted(gateways, template)
    apply = []
    for key, manifest in wanted.items():
        current = stored.get(key)
        if current is None:
            apply.append(manifest)
        elif not _managed(current):
            if key[0] == "Deployment":  # a user's own ServiceAccount is used as it is
                conflicts.append(_conflict(key))
        elif _as_applied(current) != _jsonable(manifest.obj):
            apply.append(manifest)
    delete = [
        Manifest(_SOURCE, 1, _as_applied(obj))
        for key, obj in stored.items()
        if _managed(obj) and key not in wanted
    ]
    return WaypointPlan(tuple(apply), tuple(delete), tuple(conflicts))


def _wanted(
    gateways: list[dict], template: WaypointTemplate
) -> tuple[dict[Key, Manifest], list[str]]:
    """Validated, normalized objects by key; and why a Gateway's objects would not validate."""
    wanted: dict[Key, Manifest] = {}
    problems: list[str] = []
    for gateway in gateways:
        meta = gateway["metadata"]
        namespace, name = meta.get("namespace") or "default", meta["name"]
        for obj in waypoint_objects(namespace, name, template):
            manifest, errors = validate_object(obj, _SOURCE, 1, None)
            if manifest is None:
                details = "; ".join(str(error) for error in errors)
                problems.append(f"waypoint {namespace}/{name} cannot be deployed: {details}")
                continue
            wanted[manifest.key] = manifest
    return wanted, problems


def _key(obj: dict) -> Key:
    meta = obj.get("metadata") or {}
    return (obj["kind"], meta.get("namespace") or "", meta.get("name") or "")


def _managed(obj: dict) -> bool:
    labels = (obj.get("metadata") or {}).get("labels") or {}
    return labels.get(MANAGED_BY_LABEL) == MANAGED_BY and GATEWAY_NAME_LABEL in labels


def _conflict(key: Key) -> str:
    kind, namespace, name = key
    return (
        f"waypoint {namespace}/{name} is not deployed: {kind} {namespace}/{name} exists and is "
        f"not managed by {MANAGED_BY} (no {MANAGED_BY_LABEL} label); delete or rename it, or "
        "give the Gateway another name"
    )


def _as_applied(obj: dict) -> dict:
    """A stored object without what the store adds (uid, timestamps): what was applied."""
    meta = {k: v for k, v in obj["metadata"].items() if k not in _SERVER_FIELDS}
    return {**obj, "metadata": meta}


def _jsonable(obj: dict) -> dict:
    """The object as the store keeps it (JSON), so equal content compares equal."""
    return json.loads(json.dumps(obj))


# --- carrying a plan out in a local cluster -------------------------------------------------------


class LocalStoreDeployer:
    """Carries plans out in a local cluster's store; the runtime then runs the pods.

    `wake` tells the runtime the store changed (nodemesh.local.cluster.wake_runtime; injected so
    tests need no runtime). A failed write (the namespace was deleted meanwhile, the runtime is
    down) is logged, not raised: the controller keeps serving, and the next registry change
    reconciles again.
    """

    def __init__(
        self, state: StateDir, template: WaypointTemplate, wake: Callable[[StateDir], None]
    ) -> None:
        self.state = state
        self.template = template
        self.wake = wake
        self._reported: tuple[str, ...] = ()

    def reconcile(self, objects: Iterable[dict]) -> WaypointPlan:
        """Plan against `objects` (the registry's) and carry it out; the plan, for the record."""
        todo = plan(objects, self.template)
        self._report(todo.conflicts)
        if not todo.changes:
            return todo
        store = Store(self.state)
        try:
            changes = [*store.apply(todo.apply), *store.delete(todo.delete)]
            self.wake(self.state)
        except (ManifestErrors, OSError, RuntimeError) as exc:
            log.warning("waypoint deployment not written, will retry on the next change: %s", exc)
            return todo
        for change in changes:
            log.info("waypoint deployer: %s", change)
        return todo

    def _report(self, conflicts: tuple[str, ...]) -> None:
        """Log conflicts when they change, not on every reconcile."""
        if conflicts != self._reported:
            for line in conflicts:
                log.warning("%s", line)
            self._reported = conflicts
