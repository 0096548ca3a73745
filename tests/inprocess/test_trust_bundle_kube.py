"""The trust bundle publisher against the fake API server's object store.

Every waypoint namespace and the controller's own get ConfigMap nodemesh-ca-root-cert with the
CA's bundle; a new bundle rewrites every copy; only the leader writes; and every request made is
one the rendered ClusterRole allows (the least-privilege rules of nodemesh.install.rbac).
"""

from __future__ import annotations

import threading

import pytest

from controller.trust_bundle_kube import (
    KubeTrustBundlePublisher,
    bundle_namespaces,
    plan_bundle,
)
from controller.waypoints import MANAGED_BY, MANAGED_BY_LABEL
from controller.waypoints_kube import BUNDLE_CONFIGMAP, BUNDLE_KEY
from nodemesh.install import rbac
from nodemesh.install.values import Values
from tests.inprocess.kube_fake import FakeApiServer
from tests.inprocess.test_registry_kube import eventually
from tests.inprocess.test_registry_kube_gateways import gateway

CONFIGMAPS = ("v1", "configmaps")
HOME = "nodemesh-system"
ROOT_1 = "-----BEGIN CERTIFICATE-----\nroot one\n-----END CERTIFICATE-----\n"
ROOT_2 = "-----BEGIN CERTIFICATE-----\nroot two\n-----END CERTIFICATE-----\n"
# kubectl verb for each HTTP method on a named object, or on the collection (POST).
VERBS = {"GET": "get", "PUT": "update", "POST": "create", "DELETE": "delete"}


@pytest.fixture
def server(server):
    server.writable(*CONFIGMAPS)
    return server


class Bundle:
    """The CA's trust bundle as the publisher reads it, changeable by the test."""

    def __init__(self, pem: str = ROOT_1) -> None:
        self.pem = pem

    def __call__(self) -> str:
        return self.pem


def waypoint_in(namespace: str, name: str = "waypoint") -> dict:
    obj = dict(gateway(name), kind="Gateway")
    obj["metadata"] = dict(obj["metadata"], namespace=namespace)
    return obj


def copy_in(server: FakeApiServer, namespace: str) -> dict | None:
    return server.get_object(*CONFIGMAPS, namespace, BUNDLE_CONFIGMAP)


def test_namespaces_are_the_waypoints_and_the_controllers_own():
    objects = [
        waypoint_in("shop"),
        waypoint_in("shop", "second"),
        waypoint_in("bank"),
        dict(gateway("ingress", "istio"), kind="Gateway"),  # not a nodemesh waypoint
        {"kind": "Namespace", "metadata": {"name": "other"}},
    ]
    assert bundle_namespaces(objects, HOME) == {"shop", "bank", HOME}


def test_each_namespace_gets_the_bundle_and_a_second_round_writes_nothing(server, api):
    publisher = KubeTrustBundlePublisher(api, Bundle(), HOME)
    namespaces = bundle_namespaces([waypoint_in("shop"), waypoint_in("bank")], HOME)

    first = publisher.sync(namespaces)

    assert sorted(w.namespace for w in first.written) == ["bank", HOME, "shop"]
    for namespace in namespaces:
        stored = copy_in(server, namespace)
        assert stored["data"] == {BUNDLE_KEY: ROOT_1}
        assert stored["metadata"]["labels"][MANAGED_BY_LABEL] == MANAGED_BY
    before = len(server.writes())
    second = publisher.sync(namespaces)
    assert second.written == () and len(server.writes()) == before


def test_a_new_bundle_rewrites_every_copy_keeping_what_others_added(server, api):
    server.put_object(
        *CONFIGMAPS,
        {
            "metadata": {
                "name": BUNDLE_CONFIGMAP,
                "namespace": HOME,
                "labels": {"app.kubernetes.io/managed-by": "meshctl"},
            },
            "data": {BUNDLE_KEY: ROOT_1, "note.txt": "written by meshctl install"},
        },
    )
    bundle = Bundle()
    publisher = KubeTrustBundlePublisher(api, bundle, HOME)
    publisher.sync({HOME, "shop"})

    bundle.pem = ROOT_1 + ROOT_2  # a root rotation: both roots trusted
    rotated = publisher.sync({HOME, "shop"})

    assert sorted(w.namespace for w in rotated.written) == [HOME, "shop"]
    home = copy_in(server, HOME)
    assert home["data"] == {BUNDLE_KEY: ROOT_1 + ROOT_2, "note.txt": "written by meshctl install"}
    assert home["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "meshctl"
    assert copy_in(server, "shop")["data"][BUNDLE_KEY] == ROOT_1 + ROOT_2


def test_an_edited_copy_is_repaired_over_the_version_read():
    stored = {
        "metadata": {
            "name": BUNDLE_CONFIGMAP,
            "namespace": "shop",
            "resourceVersion": "42",
            "labels": {MANAGED_BY_LABEL: MANAGED_BY},
        },
        "data": {BUNDLE_KEY: "tampered"},
    }
    write = plan_bundle("shop", stored, ROOT_1)
    assert write.version == "42" and write.obj["data"] == {BUNDLE_KEY: ROOT_1}
    assert stored["data"] == {BUNDLE_KEY: "tampered"}  # the stored object is not mutated
    assert plan_bundle("shop", write.obj, ROOT_1) is None


def test_only_the_leader_writes_and_a_new_leader_publishes_at_once(server, api):
    leading = False
    publisher = KubeTrustBundlePublisher(api, Bundle(), HOME, lambda: leading, resync=3600)
    publisher.start()
    try:
        publisher.reconcile([waypoint_in("shop")])
        publisher.leadership_changed(False)
        leading = True
        publisher.leadership_changed(True)

        def published():
            """the leader wrote both copies"""
            return copy_in(server, "shop") and copy_in(server, HOME)

        eventually(published)
    finally:
        publisher.stop()


def test_a_follower_writes_nothing(server, api):
    asked = threading.Event()

    def follower() -> bool:
        asked.set()
        return False

    publisher = KubeTrustBundlePublisher(api, Bundle(), HOME, follower)
    publisher.start()
    try:
        publisher.reconcile([waypoint_in("shop")])
        assert asked.wait(5.0), "the publisher never asked whether it leads"
    finally:
        publisher.stop()
    assert server.requests == []


def test_every_request_is_one_the_rendered_cluster_role_allows(server, api):
    bundle = Bundle()
    publisher = KubeTrustBundlePublisher(api, bundle, HOME)
    publisher.sync({HOME, "shop"})
    bundle.pem = ROOT_2
    publisher.sync({HOME, "shop"})

    [cluster_role, *_] = rbac.controller_rbac(Values())
    allowed = [r for r in cluster_role["rules"] if "configmaps" in r["resources"]]
    made = {(VERBS[r.method], r.path.rsplit("/", 1)[-1]) for r in server.requests}
    assert {verb for verb, _ in made} == {"get", "create", "update"}
    for verb, last in made:
        name = "" if last == "configmaps" else last  # a POST names no object
        assert any(
            verb in rule["verbs"]
            and (not rule.get("resourceNames") or name in rule["resourceNames"])
            for rule in allowed
        ), (verb, name)
    assert not any(
        verb in rule["verbs"] for rule in allowed for verb in ("list", "watch", "delete", "patch")
    )
