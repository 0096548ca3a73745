"""The waypoint deployer in Kubernetes mode: controller.waypoints' plan, carried out through the
API server.

What differs from local mode is only the executor and what a pod needs in a real cluster; which
objects each Gateway of class nodemesh-waypoint wants, what counts as managed, what is a conflict
and what is deleted stay `controller.waypoints.plan`'s decisions. On top of the plan's objects:

- Owner references: both objects name their Gateway as controller owner, so deleting the
  Gateway deletes them through Kubernetes' garbage collector even while no controller runs.
- The pod authenticates with a projected service-account token of audience `nodemesh`, bound to
  the pod (controller.auth_kube checks both), mounted at TOKEN_PATH and named by
  NODEMESH_TOKEN_FILE; the API token is not mounted (the waypoint never calls the API server).
  The mesh's trust bundle comes from the ConfigMap BUNDLE_CONFIGMAP, mounted for `--bundle`.
  The pod runs as a non-root user with the "restricted" Pod Security settings, and gets the
  controller's `--trust-domain` (it checks its peers' SPIFFE IDs against it) and log level.
- Idempotence like server-side apply's: the API server adds defaults to every object it stores
  (a Deployment's strategy, a container's terminationMessagePath, ...), so a stored object never
  equals the one written. What counts is whether every field nodemesh sets still has the value it
  wants (`holds`: the wanted object is contained in the stored one, server additions aside). If
  so, `plan` is shown the wanted object itself (unchanged: no write); if not (a new template, or
  someone edited a field nodemesh owns), the stored one, and it is rewritten. As with SSA, fields
  others add are kept; unlike SSA, a field nodemesh stops setting is not removed by an update.
  Only objects that carry the managed labels are ever updated or deleted; a Deployment of the
  waypoint's name without them is a conflict, reported and left alone.
- Updates carry the resourceVersion read (optimistic concurrency): a 409 means someone changed
  the object meanwhile, and the next round re-reads and re-plans.
- Only the leader writes (controller.leader); followers plan nothing. `KubeWaypointDeployer`
  runs in a thread of its own (controller.leader_worker): `reconcile` (called by the controller
  on every registry change) only hands the Gateways over, so the event loop never waits on API
  writes, and a round runs when the waypoint Gateways change, when leadership is gained, after a
  failed round or a 409, and every `resync` seconds (which repairs a managed object someone
  edited or deleted).
"""

from __future__ import annotations

import copy
import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from controller.auth_kube import AUDIENCE
from controller.leader_worker import LeaderWorker
from controller.model import canonical_json
from controller.model_waypoint import GATEWAY_NAME_LABEL
from controller.waypoints import (
    MANAGED_BY,
    MANAGED_BY_LABEL,
    Key,
    WaypointPlan,
    WaypointTemplate,
    plan,
)
from nodemesh.controlplane import CONTROLLER_NAME, TOKEN_FILE_ENV
from nodemesh.logsetup import DEFAULT_LEVEL, LOG_LEVEL_ENV
from nodemesh.manifests.validate_gateway import API_VERSION as GATEWAY_API_VERSION
from nodemesh.manifests.validate_gateway import is_waypoint_gateway

log = logging.getLogger("nodemesh.controller.waypoints")

# The waypoint is an unprivileged proxy on ports above 1024 that writes no file: the
# "restricted" Pod Security level, as a non-root user (distroless' "nonroot").
WAYPOINT_UID = 65532
POD_SECURITY = {
    "runAsNonRoot": True,
    "runAsUser": WAYPOINT_UID,
    "runAsGroup": WAYPOINT_UID,
    "seccompProfile": {"type": "RuntimeDefault"},
}
CONTAINER_SECURITY = {
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "runAsNonRoot": True,
    "capabilities": {"drop": ["ALL"]},
}
TOKEN_DIR = "/var/run/secrets/nodemesh"
TOKEN_PATH = f"{TOKEN_DIR}/token"
TOKEN_SECONDS = 3600  # the kubelet rotates it at 80 %; the waypoint re-reads it per bootstrap
BUNDLE_CONFIGMAP = "nodemesh-ca-root-cert"
BUNDLE_KEY = "root-cert.pem"
BUNDLE_DIR = "/var/run/nodemesh/ca"
DEFAULT_IMAGE = "ghcr.io/nodemesh/waypoint:latest"
RESYNC_SECONDS = 300.0
REQUEST_TIMEOUT = (5.0, 15.0)
_SELECTOR = f"{MANAGED_BY_LABEL}={MANAGED_BY}"


@dataclass(frozen=True)
class KubeWaypointTemplate(WaypointTemplate):
    """The waypoint's command line and image in a cluster: the trust bundle from a mounted
    ConfigMap instead of a local state directory (`state_dir` is unused here)."""

    image: str = DEFAULT_IMAGE
    bundle: str = f"{BUNDLE_DIR}/{BUNDLE_KEY}"
    trust_domain: str = "cluster.local"  # must be the controller's: it checks peers' SPIFFE IDs
    log_level: str = DEFAULT_LEVEL  # NODEMESH_LOG_LEVEL of the pods: the controller's own

    def trust_args(self) -> list[str]:
        return ["--trust-domain", self.trust_domain, "--bundle", self.bundle]


def kube_template(
    image: str = DEFAULT_IMAGE, trust_domain: str = "cluster.local", log_level: str = DEFAULT_LEVEL
) -> KubeWaypointTemplate:
    return KubeWaypointTemplate(
        python="python3",
        controller=CONTROLLER_NAME,
        state_dir="",
        image=image,
        trust_domain=trust_domain,
        log_level=log_level,
    )


# --- sans-I/O: what to write ----------------------------------------------------------------------


@dataclass(frozen=True)
class Write:
    """One object to create (`version` "") or to replace over `version`."""

    obj: dict  # complete, as it is sent
    version: str  # the stored object's resourceVersion; "" to create

    @property
    def key(self) -> Key:
        meta = self.obj["metadata"]
        return (self.obj["kind"], meta["namespace"], meta["name"])


@dataclass(frozen=True)
class KubePlan:
    writes: tuple[Write, ...] = ()
    deletes: tuple[Key, ...] = ()
    conflicts: tuple[str, ...] = ()


def plan_kube(
    gateways: Iterable[dict], stored: Iterable[dict], template: KubeWaypointTemplate
) -> KubePlan:
    """What the Gateways want, against the stored objects of their names and the managed ones."""
    gateways = [g for g in gateways if g.get("kind") == "Gateway" and is_waypoint_gateway(g)]
    owners = {_gateway_key(g): g for g in gateways}
    wanted = {m.key: for_cluster(m.obj, owners, template) for m in plan(gateways, template).apply}
    live = {_key(obj): obj for obj in stored}
    views = [_view(obj, wanted.get(key)) for key, obj in live.items()]
    todo: WaypointPlan = plan([*gateways, *views], template)
    writes = []
    for manifest in todo.apply:
        current = live.get(manifest.key)
        version = current["metadata"].get("resourceVersion", "") if current else ""
        writes.append(Write(wanted[manifest.key], version))
    deletes = tuple(m.key for m in todo.delete)
    return KubePlan(tuple(writes), deletes, todo.conflicts)


def for_cluster(
    obj: dict, owners: dict[tuple[str, str], dict], template: KubeWaypointTemplate
) -> dict:
    """The plan's object as written to the API server: its owner and the pod's credentials."""
    obj = copy.deepcopy(obj)
    meta = obj["metadata"]
    gateway = owners[(meta["namespace"], meta["labels"][GATEWAY_NAME_LABEL])]
    meta["ownerReferences"] = [_owner(gateway)]
    if obj["kind"] == "Deployment":
        _add_pod_credentials(obj["spec"]["template"]["spec"], template)
    return obj


def holds(stored: object, wanted: object) -> bool:
    """Every field of `wanted` has its value in `stored` (maps may have more keys; lists are
    compared element by element, so a list nodemesh owns must not grow)."""
    if isinstance(wanted, dict):
        return isinstance(stored, dict) and all(
            key in stored and holds(stored[key], value) for key, value in wanted.items()
        )
    if isinstance(wanted, list):
        return (
            isinstance(stored, list)
            and len(stored) == len(wanted)
            and all(holds(s, w) for s, w in zip(stored, wanted, strict=True))
        )
    return stored == wanted


def _view(stored: dict, wanted: dict | None) -> dict:
    """What `plan` compares: the wanted object when the stored one holds it, else the stored."""
    return _plan_shape(wanted) if wanted is not None and holds(stored, wanted) else stored


def _plan_shape(obj: dict) -> dict:
    """Undo `for_cluster` (the plan compares objects in its own shape)."""
    obj = copy.deepcopy(obj)
    meta = obj["metadata"]
    meta.pop("ownerReferences", None)
    if obj["kind"] == "Deployment":
        pod = obj["spec"]["template"]["spec"]
        for field in ("automountServiceAccountToken", "volumes", "securityContext"):
            pod.pop(field)
        container = pod["containers"][0]
        for field in ("image", "volumeMounts", "securityContext"):
            container.pop(field)
        added = (TOKEN_FILE_ENV, LOG_LEVEL_ENV)
        container["env"] = [e for e in container["env"] if e["name"] not in added]
    return obj


def _add_pod_credentials(pod: dict, template: KubeWaypointTemplate) -> None:
    pod["automountServiceAccountToken"] = False
    pod["securityContext"] = copy.deepcopy(POD_SECURITY)
    pod["volumes"] = [
        {
            "name": "nodemesh-token",
            "projected": {
                "sources": [
                    {
                        "serviceAccountToken": {
                            "audience": AUDIENCE,
                            "expirationSeconds": TOKEN_SECONDS,
                            "path": "token",
                        }
                    }
                ]
            },
        },
        {"name": "nodemesh-ca", "configMap": {"name": BUNDLE_CONFIGMAP}},
    ]
    container = pod["containers"][0]
    container["image"] = template.image
    container["securityContext"] = copy.deepcopy(CONTAINER_SECURITY)
    container["env"] = [
        *container.get("env", []),
        {"name": TOKEN_FILE_ENV, "value": TOKEN_PATH},
        {"name": LOG_LEVEL_ENV, "value": template.log_level},
    ]
    container["volumeMounts"] = [
        {"name": "nodemesh-token", "mountPath": TOKEN_DIR, "readOnly": True},
        {"name": "nodemesh-ca", "mountPath": BUNDLE_DIR, "readOnly": True},
    ]


def _owner(gateway: dict) -> dict:
    meta = gateway["metadata"]
    return {
        "apiVersion": GATEWAY_API_VERSION,
        "kind": "Gateway",
        "name": meta["name"],
        "uid": meta.get("uid") or "",
        "controller": True,
        "blockOwnerDeletion": True,
    }


def _gateway_key(gateway: dict) -> tuple[str, str]:
    meta = gateway["metadata"]
    return (meta.get("namespace") or "default", meta["name"])


def _key(obj: dict) -> Key:
    meta = obj.get("metadata") or {}
    return (obj["kind"], meta.get("namespace") or "", meta.get("name") or "")


def wanted_keys(gateways: Iterable[dict], template: KubeWaypointTemplate) -> list[Key]:
    return [m.key for m in plan(gateways, template).apply]


# --- I/O: the API server --------------------------------------------------------------------------


class KubeWaypointDeployer(LeaderWorker[list[dict]]):
    """Carries `plan_kube` out through the API server while `is_leader()`; see the module doc."""

    def __init__(
        self,
        api_client: client.ApiClient,
        template: KubeWaypointTemplate,
        is_leader: Callable[[], bool] = lambda: True,
        *,
        resync: float = RESYNC_SECONDS,
    ) -> None:
        super().__init__("waypoint deployer", is_leader, resync, log)
        self.core = client.CoreV1Api(api_client)
        self.custom = client.CustomObjectsApi(api_client)
        self.template = template
        self.conflicts: tuple[str, ...] = ()

    def reconcile(self, objects: Iterable[dict]) -> None:
        """Hand over the registry's Gateways; the deployer's thread does the rest."""
        self._hand_over(
            [o for o in objects if o.get("kind") == "Gateway" and is_waypoint_gateway(o)]
        )

    # --- one round

    def sync(self, gateways: list[dict]) -> KubePlan:
        """Read, plan, write: one round, synchronously (the thread's work; tests call it)."""
        return self._sync(gateways)[0]

    def _sync(self, gateways: list[dict]) -> tuple[KubePlan, bool]:
        """The round's plan, and whether every write went through (no 409)."""
        todo = plan_kube(gateways, self._stored(gateways), self.template)
        self._report(todo.conflicts)
        written = [self._write(write) for write in todo.writes]
        for key in todo.deletes:
            self._delete(key)
        return todo, all(written)

    def _fingerprint(self, gateways: list[dict]) -> object:
        return canonical_json(sorted(map(canonical_json, gateways)))

    def _work(self, gateways: list[dict]) -> bool:
        return self._sync(gateways)[1]

    def _rbac_hint(self) -> str:
        return (
            "; check the controller's RBAC allows get, list, create, update and delete on "
            "deployments (apps) and serviceaccounts"
        )

    def _stored(self, gateways: list[dict]) -> list[dict]:
        """The managed ServiceAccounts and Deployments, and whatever holds a wanted name."""
        accounts = self.core.list_service_account_for_all_namespaces(
            label_selector=_SELECTOR, _request_timeout=REQUEST_TIMEOUT, _preload_content=False
        )
        deployments = self.custom.list_cluster_custom_object(
            "apps", "v1", "deployments", label_selector=_SELECTOR, _request_timeout=REQUEST_TIMEOUT
        )
        stored = {
            _key(obj): obj
            for kind, listing in (
                ("ServiceAccount", _json(accounts)),
                ("Deployment", deployments),
            )
            for obj in (dict(item, kind=kind) for item in listing.get("items") or [])
        }
        for key in wanted_keys(gateways, self.template):
            if key not in stored and (found := self._get(key)) is not None:
                stored[key] = found
        return list(stored.values())

    def _get(self, key: Key) -> dict | None:
        kind, namespace, name = key
        try:
            if kind == "ServiceAccount":
                response = self.core.read_namespaced_service_account(
                    name, namespace, _request_timeout=REQUEST_TIMEOUT, _preload_content=False
                )
                return dict(_json(response), kind=kind)
            found = self.custom.get_namespaced_custom_object(
                "apps", "v1", namespace, "deployments", name, _request_timeout=REQUEST_TIMEOUT
            )
            return dict(found, kind=kind)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def _write(self, write: Write) -> bool:
        """Whether it was written; a 409 (changed meanwhile) makes the thread re-plan at once."""
        kind, namespace, name = write.key
        body = copy.deepcopy(write.obj)
        try:
            if write.version:
                body["metadata"]["resourceVersion"] = write.version
                self._replace(kind, namespace, name, body)
            else:
                self._create(kind, namespace, body)
        except ApiException as exc:
            if exc.status != 409:
                raise
            log.info(
                "waypoint deployer: %s %s/%s changed meanwhile (409 %s); re-planning next round",
                kind,
                namespace,
                name,
                exc.reason,
            )
            return False
        log.info(
            "waypoint deployer: %s %s/%s %s",
            kind,
            namespace,
            name,
            "configured" if write.version else "created",
        )
        return True

    def _create(self, kind: str, namespace: str, body: dict) -> None:
        if kind == "ServiceAccount":
            self.core.create_namespaced_service_account(
                namespace, body, _request_timeout=REQUEST_TIMEOUT, _preload_content=False
            )
        else:
            self.custom.create_namespaced_custom_object(
                "apps", "v1", namespace, "deployments", body, _request_timeout=REQUEST_TIMEOUT
            )

    def _replace(self, kind: str, namespace: str, name: str, body: dict) -> None:
        if kind == "ServiceAccount":
            self.core.replace_namespaced_service_account(
                name, namespace, body, _request_timeout=REQUEST_TIMEOUT, _preload_content=False
            )
        else:
            self.custom.replace_namespaced_custom_object(
                "apps", "v1", namespace, "deployments", name, body, _request_timeout=REQUEST_TIMEOUT
            )

    def _delete(self, key: Key) -> None:
        kind, namespace, name = key
        try:
            if kind == "ServiceAccount":
                self.core.delete_namespaced_service_account(
                    name, namespace, _request_timeout=REQUEST_TIMEOUT, _preload_content=False
                )
            else:
                self.custom.delete_namespaced_custom_object(
                    "apps",
                    "v1",
                    namespace,
                    "deployments",
                    name,
                    propagation_policy="Background",
                    _request_timeout=REQUEST_TIMEOUT,
                )
        except ApiException as exc:
            if exc.status != 404:  # already gone (the garbage collector was first)
                raise
        log.info("waypoint deployer: %s %s/%s deleted", kind, namespace, name)

    def _report(self, conflicts: tuple[str, ...]) -> None:
        if conflicts != self.conflicts:
            for line in conflicts:
                log.warning("%s", line)
            self.conflicts = conflicts


def _json(response) -> dict:
    try:
        return json.loads(response.data)
    finally:
        response.release_conn()
