"""Publishing the mesh's trust bundle as a ConfigMap, in Kubernetes mode (leader only).

Waypoint pods mount ConfigMap BUNDLE_CONFIGMAP (key BUNDLE_KEY) of their own namespace for
`--bundle`, and node agents the one in the controller's namespace: a pod cannot mount a
ConfigMap of another namespace, so the controller writes one copy into every namespace that has
a nodemesh waypoint Gateway, plus its own, as istiod publishes istio-ca-root-cert. A copy is
rewritten whenever the CA's bundle changes (a root rotation adds a root), so pods that start
later trust the new root.

Least privilege, so RBAC can stay narrow (nodemesh.install.rbac): the publisher only ever gets,
creates and updates ConfigMaps of that one name. It never lists or watches (it knows which
namespaces it wants from the registry) and never deletes: a copy left in a namespace whose
waypoint is gone is public data, and a pod of a re-created waypoint finds it at once.

Only the BUNDLE_KEY entry and the managed-by label are nodemesh's: other keys and labels someone
added are kept on update. The decision (`plan_bundle`) is sans-I/O; `KubeTrustBundlePublisher`
carries it out in a controller.leader_worker thread, like controller.waypoints_kube's deployer:
on registry changes, on a new bundle, on gaining leadership, after a failed round and every
`resync` seconds (which also repairs a copy someone edited or deleted).
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from controller.leader_worker import LeaderWorker
from controller.waypoints import MANAGED_BY, MANAGED_BY_LABEL
from controller.waypoints_kube import BUNDLE_CONFIGMAP, BUNDLE_KEY, REQUEST_TIMEOUT
from nodemesh.manifests.validate_gateway import is_waypoint_gateway

log = logging.getLogger("nodemesh.controller.trust_bundle")

RESYNC_SECONDS = 300.0


# --- sans-I/O: what to write ----------------------------------------------------------------------


def bundle_namespaces(objects: Iterable[dict], home: str) -> frozenset[str]:
    """Where a copy is wanted: every namespace with a waypoint Gateway, and `home` (agents)."""
    wanted = {home} if home else set()
    for obj in objects:
        if obj.get("kind") == "Gateway" and is_waypoint_gateway(obj):
            wanted.add((obj.get("metadata") or {}).get("namespace") or "default")
    return frozenset(wanted)


@dataclass(frozen=True)
class BundleRound:
    """What one round wrote, and the namespaces whose copy changed under it (409)."""

    written: tuple[BundleWrite, ...] = ()
    conflicted: tuple[str, ...] = ()


@dataclass(frozen=True)
class BundleWrite:
    """One ConfigMap to create (`version` "") or to replace over `version`."""

    namespace: str
    obj: dict  # complete, as it is sent
    version: str


def configmap(namespace: str, bundle_pem: str) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": BUNDLE_CONFIGMAP,
            "namespace": namespace,
            "labels": {MANAGED_BY_LABEL: MANAGED_BY},
        },
        "data": {BUNDLE_KEY: bundle_pem},
    }


def plan_bundle(namespace: str, stored: dict | None, bundle_pem: str) -> BundleWrite | None:
    """The write that makes `stored` (None: absent) carry `bundle_pem`, or None if it does."""
    if stored is None:
        return BundleWrite(namespace, configmap(namespace, bundle_pem), "")
    meta = stored.get("metadata") or {}
    labels = meta.get("labels") or {}
    data = stored.get("data") or {}
    if data.get(BUNDLE_KEY) == bundle_pem and labels.get(MANAGED_BY_LABEL) == MANAGED_BY:
        return None
    obj = copy.deepcopy(stored)
    obj.update(apiVersion="v1", kind="ConfigMap")
    obj["metadata"]["labels"] = {**labels, MANAGED_BY_LABEL: MANAGED_BY}
    obj["data"] = {**data, BUNDLE_KEY: bundle_pem}
    return BundleWrite(namespace, obj, meta.get("resourceVersion", ""))


# --- I/O: the API server --------------------------------------------------------------------------


class KubeTrustBundlePublisher(LeaderWorker[frozenset[str]]):
    """Keeps BUNDLE_CONFIGMAP current in every wanted namespace while `is_leader()`."""

    def __init__(
        self,
        api_client: client.ApiClient,
        bundle: Callable[[], str],
        home: str,
        is_leader: Callable[[], bool] = lambda: True,
        *,
        resync: float = RESYNC_SECONDS,
    ) -> None:
        super().__init__("trust bundle", is_leader, resync, log)
        self.core = client.CoreV1Api(api_client)
        self.bundle = bundle  # the CA's current trust bundle (PEM), read at every round
        self.home = home

    def reconcile(self, objects: Iterable[dict]) -> None:
        """Hand over the registry's objects; the publisher's thread does the rest."""
        self._hand_over(bundle_namespaces(objects, self.home))

    # --- one round

    def sync(self, namespaces: Iterable[str]) -> BundleRound:
        """Read, plan, write each namespace's copy: one round, synchronously (tests call it)."""
        bundle = self.bundle()
        written, conflicted = [], []
        for namespace in sorted(namespaces):
            write = plan_bundle(namespace, self._get(namespace), bundle)
            if write is None:
                continue
            (written if self._write(write) else conflicted).append(write)
        return BundleRound(tuple(written), tuple(w.namespace for w in conflicted))

    def _fingerprint(self, namespaces: frozenset[str]) -> object:
        return (namespaces, self.bundle())  # a new root rewrites every copy

    def _work(self, namespaces: frozenset[str]) -> bool:
        return not self.sync(namespaces).conflicted  # re-read and re-plan those at once

    def _rbac_hint(self) -> str:
        return (
            f"; check the controller's RBAC allows create, and get and update of "
            f"{BUNDLE_CONFIGMAP}, on configmaps"
        )

    def _get(self, namespace: str) -> dict | None:
        try:
            found = self.core.read_namespaced_config_map(
                BUNDLE_CONFIGMAP, namespace, _request_timeout=REQUEST_TIMEOUT
            )
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        return self.core.api_client.sanitize_for_serialization(found)

    def _write(self, write: BundleWrite) -> bool:
        """Whether it was written; a 409 (changed or created meanwhile) waits for a re-plan."""
        try:
            if write.version:
                body = copy.deepcopy(write.obj)
                body["metadata"]["resourceVersion"] = write.version
                self.core.replace_namespaced_config_map(
                    BUNDLE_CONFIGMAP, write.namespace, body, _request_timeout=REQUEST_TIMEOUT
                )
            else:
                self.core.create_namespaced_config_map(
                    write.namespace, write.obj, _request_timeout=REQUEST_TIMEOUT
                )
        except ApiException as exc:
            if exc.status != 409:
                raise
            log.info(
                "trust bundle: ConfigMap %s/%s changed meanwhile (409); re-planning",
                write.namespace,
                BUNDLE_CONFIGMAP,
            )
            return False
        log.info(
            "trust bundle: ConfigMap %s/%s %s",
            write.namespace,
            BUNDLE_CONFIGMAP,
            "updated" if write.version else "created",
        )
        return True
