"""The Kubernetes waypoint deployer against the fake API server's object store.

The fake stores Deployments and ServiceAccounts as the API server does (uid, resourceVersion,
the apps/v1 defaults, 409 on a stale update), so "a second pass writes nothing" is checked
against objects that do not equal what was written, as in a real cluster.
"""

from __future__ import annotations

import logging
import threading

import pytest
from kubernetes import client

from controller.auth_kube import AUDIENCE
from controller.waypoints import MANAGED_BY_LABEL
from controller.waypoints_kube import (
    TOKEN_PATH,
    KubeWaypointDeployer,
    kube_template,
    plan_kube,
)
from nodemesh.controlplane import TOKEN_FILE_ENV
from tests.inprocess.kube_fake import FakeApiServer, deployment_defaults
from tests.inprocess.test_registry_kube import eventually
from tests.inprocess.test_registry_kube_gateways import gateway

APPS = ("apps/v1", "deployments")
ACCOUNTS = ("v1", "serviceaccounts")


@pytest.fixture
def server(server):
    server.writable(*APPS, defaults=deployment_defaults)
    server.writable(*ACCOUNTS)
    return server


def deployer(api, image: str = "registry.example/nodemesh/waypoint:1.0", **kwargs):
    return KubeWaypointDeployer(api, kube_template(image), **kwargs)


def stored(server: FakeApiServer, kind: tuple[str, str], name: str = "waypoint"):
    return server.get_object(*kind, "shop", name)


def with_kind(item: dict) -> dict:
    return dict(item, apiVersion="gateway.networking.k8s.io/v1", kind="Gateway")


def test_a_gateway_gets_its_account_and_deployment_and_a_second_pass_writes_nothing(server, api):
    waypoint = with_kind(gateway("waypoint"))

    first = deployer(api).sync([waypoint])

    assert [w.key for w in first.writes] == [
        ("ServiceAccount", "shop", "waypoint"),
        ("Deployment", "shop", "waypoint"),
    ]
    account, deployment = stored(server, ACCOUNTS), stored(server, APPS)
    for obj in (account, deployment):
        [owner] = obj["metadata"]["ownerReferences"]
        assert owner["kind"] == "Gateway" and owner["uid"] == waypoint["metadata"]["uid"]
        assert owner["controller"] and owner["blockOwnerDeletion"]
        assert obj["metadata"]["labels"][MANAGED_BY_LABEL] == "nodemesh-controller"
    pod = deployment["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "waypoint" and pod["automountServiceAccountToken"] is False
    [token] = next(v for v in pod["volumes"] if "projected" in v)["projected"]["sources"]
    assert token["serviceAccountToken"]["audience"] == AUDIENCE
    [container] = pod["containers"]
    assert {"name": TOKEN_FILE_ENV, "value": TOKEN_PATH} in container["env"]
    assert container["image"] == "registry.example/nodemesh/waypoint:1.0"
    assert container["command"][-2:] == ["--bundle", "/var/run/nodemesh/ca/root-cert.pem"]
    writes = len(server.writes())

    second = deployer(api).sync([waypoint])  # a fresh replica: only the API server's state

    assert second.writes == () and second.deletes == () and second.conflicts == ()
    assert len(server.writes()) == writes


def test_a_new_image_or_an_edited_field_is_rolled_back_out_over_the_stored_version(server, api):
    waypoint = with_kind(gateway("waypoint"))
    deployer(api).sync([waypoint])
    version = stored(server, APPS)["metadata"]["resourceVersion"]

    todo = deployer(api, image="registry.example/nodemesh/waypoint:1.1").sync([waypoint])

    assert [w.key[0] for w in todo.writes] == ["Deployment"]  # the account is as wanted
    [put] = [r for r in server.writes() if r.method == "PUT"]
    assert put.body["metadata"]["resourceVersion"] == version
    assert stored(server, APPS)["spec"]["template"]["spec"]["containers"][0]["image"].endswith(
        ":1.1"
    )

    edited = stored(server, APPS)
    edited["spec"]["replicas"] = 5  # someone scaled the waypoint by hand
    _overwrite(server, edited)
    deployer(api, image="registry.example/nodemesh/waypoint:1.1").sync([waypoint])
    assert stored(server, APPS)["spec"]["replicas"] == 1


def _overwrite(server: FakeApiServer, obj: dict) -> None:
    """Someone else's update, through the API like any client's."""
    api = server.api_client()
    try:
        client.CustomObjectsApi(api).replace_namespaced_custom_object(
            "apps", "v1", "shop", "deployments", obj["metadata"]["name"], obj
        )
    finally:
        api.close()


def test_the_objects_of_a_deleted_gateway_are_deleted(server, api):
    deployer(api).sync([with_kind(gateway("waypoint")), with_kind(gateway("other"))])

    todo = deployer(api).sync([with_kind(gateway("other"))])

    assert sorted(todo.deletes) == [
        ("Deployment", "shop", "waypoint"),
        ("ServiceAccount", "shop", "waypoint"),
    ]
    assert stored(server, APPS) is None and stored(server, ACCOUNTS) is None
    assert stored(server, APPS, "other") is not None


def test_an_unmanaged_deployment_of_the_same_name_is_reported_not_clobbered(server, api, caplog):
    theirs = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "waypoint", "namespace": "shop", "labels": {"app": "mine"}},
        "spec": {"replicas": 3},
    }
    server.put_object(*APPS, theirs)

    todo = deployer(api).sync([with_kind(gateway("waypoint"))])

    [conflict] = todo.conflicts
    assert "Deployment shop/waypoint exists and is not managed by nodemesh-controller" in conflict
    assert conflict in caplog.text
    assert stored(server, APPS)["spec"]["replicas"] == 3
    assert stored(server, APPS)["metadata"]["labels"] == {"app": "mine"}
    assert [w.key[0] for w in todo.writes] == ["ServiceAccount"]
    assert not [r for r in server.writes() if "/deployments" in r.path]


def test_a_user_service_account_of_the_waypoints_name_is_used_as_it_is(server, api):
    server.put_object(
        *ACCOUNTS, {"kind": "ServiceAccount", "metadata": {"name": "waypoint", "namespace": "shop"}}
    )

    todo = deployer(api).sync([with_kind(gateway("waypoint"))])

    assert [w.key[0] for w in todo.writes] == ["Deployment"] and todo.conflicts == ()
    assert "ownerReferences" not in stored(server, ACCOUNTS)["metadata"]


def test_only_the_leader_writes(server, api, caplog):
    """The thread: a follower hands Gateways over and writes nothing; once it leads, it syncs."""
    caplog.set_level(logging.INFO, "nodemesh.controller.waypoints")
    leading = threading.Event()
    running = deployer(api, is_leader=leading.is_set)
    running.start()
    try:
        running.reconcile([with_kind(gateway("waypoint")), {"kind": "Pod", "metadata": {}}])
        eventually(lambda: not running._wake.is_set())  # the round was woken, and skipped
        assert server.writes() == [] and server.requests == []

        leading.set()
        running.leadership_changed(True)

        eventually(lambda: stored(server, APPS) is not None)
    finally:
        running.stop()
    assert not [t for t in threading.enumerate() if t.name == "waypoint-deployer"]


def test_plan_kube_ignores_other_gateway_classes():
    todo = plan_kube([with_kind(gateway("ingress", "istio"))], [], kube_template())

    assert todo.writes == () and todo.deletes == () and todo.conflicts == ()
