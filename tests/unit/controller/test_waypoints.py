"""The waypoint deployer: Gateways in, a ServiceAccount and a Deployment each, written once."""

from __future__ import annotations

import copy
import logging

import pytest
import yaml

from controller.registry_local import LocalRegistry
from controller.translate import translate
from controller.waypoints import (
    LocalStoreDeployer,
    WaypointTemplate,
    plan,
    waypoint_objects,
)
from nodemesh.local.state import StateDir
from nodemesh.local.store import Store
from nodemesh.manifests.load import parse_documents

TEMPLATE = WaypointTemplate("/opt/py/bin/python", "198.18.0.2", "/run/nodemesh/clusters/t")
MANAGED = {
    "gateway.networking.k8s.io/gateway-name": "waypoint",
    "nodemesh.io/dataplane-mode": "none",
    "nodemesh.io/managed-by": "nodemesh-controller",
}
SHOP = """
apiVersion: v1
kind: Namespace
metadata: {name: shop, labels: {nodemesh.io/dataplane-mode: ambient}}
"""
GATEWAY = """
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: waypoint, namespace: shop}
spec: {gatewayClassName: nodemesh-waypoint}
"""

USERS_ACCOUNT = "apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: waypoint, namespace: shop}"


class Wakes:
    """A stand-in for wake_runtime that counts the calls."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, state: StateDir) -> None:
        self.calls += 1


@pytest.fixture
def state(tmp_path) -> StateDir:
    state = StateDir("t", tmp_path)
    Store(state).apply(parse_documents(SHOP + "---" + GATEWAY, "shop.yaml"))
    return state


def apply(state: StateDir, text: str) -> None:
    Store(state).apply(parse_documents(text, "test.yaml"))


def stored(state: StateDir, kind: str) -> list[dict]:
    return [o for o in Store(state).objects() if o["kind"] == kind]


# --- the objects ----------------------------------------------------------------------------------


def test_a_waypoint_is_a_service_account_and_a_one_replica_deployment():
    account, deployment = waypoint_objects("shop", "waypoint", TEMPLATE)

    assert account == {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {"name": "waypoint", "namespace": "shop", "labels": MANAGED},
    }
    assert deployment["metadata"]["labels"] == MANAGED
    spec = deployment["spec"]
    assert spec["replicas"] == 1
    assert spec["selector"] == {
        "matchLabels": {"gateway.networking.k8s.io/gateway-name": "waypoint"}
    }
    assert spec["template"]["metadata"]["labels"] == MANAGED
    assert spec["template"]["spec"]["serviceAccountName"] == "waypoint"


def test_the_waypoint_container_runs_the_waypoint_module_for_its_gateway():
    [container] = waypoint_objects("shop", "waypoint", TEMPLATE)[1]["spec"]["template"]["spec"][
        "containers"
    ]

    assert container["command"] == [
        "/opt/py/bin/python",
        "-m",
        "waypoint",
        "--name",
        "waypoint",
        "--namespace",
        "shop",
        "--controller",
        "198.18.0.2",
        "--local-state",
        "/run/nodemesh/clusters/t",
    ]
    assert container["env"] == [
        {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}
    ]
    assert container["readinessProbe"]["httpGet"] == {"port": 15021, "path": "/healthz/ready"}
    assert {"name": "mesh", "containerPort": 15008} in container["ports"]


def test_the_objects_are_valid_manifests_for_meshctl_apply():
    """What the deployer writes must load like any user's manifest."""
    text = yaml.safe_dump_all(waypoint_objects("shop", "waypoint", TEMPLATE))

    kinds = [m.kind for m in parse_documents(text, "waypoint.yaml")]

    assert kinds == ["ServiceAccount", "Deployment"]


# --- planning -------------------------------------------------------------------------------------


def test_a_new_gateway_plans_both_objects(state):
    todo = plan(Store(state).objects(), TEMPLATE)

    assert [m.key for m in todo.apply] == [
        ("ServiceAccount", "shop", "waypoint"),
        ("Deployment", "shop", "waypoint"),
    ]
    assert todo.delete == () and todo.conflicts == ()


def test_a_gateway_of_another_class_is_not_deployed():
    other = yaml.safe_load(GATEWAY)
    other["spec"]["gatewayClassName"] = "istio"

    assert not plan([other], TEMPLATE).changes


def test_what_is_stored_already_is_not_planned_again(state):
    LocalStoreDeployer(state, TEMPLATE, Wakes()).reconcile(Store(state).objects())

    todo = plan(Store(state).objects(), TEMPLATE)

    assert not todo.changes


def test_a_changed_template_updates_the_deployment_only(state):
    LocalStoreDeployer(state, TEMPLATE, Wakes()).reconcile(Store(state).objects())
    moved = WaypointTemplate(TEMPLATE.python, "198.18.0.3", TEMPLATE.state_dir)

    todo = plan(Store(state).objects(), moved)

    assert [m.key for m in todo.apply] == [("Deployment", "shop", "waypoint")]


def test_a_managed_deployment_edited_by_hand_is_put_back(state):
    deployer = LocalStoreDeployer(state, TEMPLATE, Wakes())
    deployer.reconcile(Store(state).objects())
    [deployment] = stored(state, "Deployment")
    edited = copy.deepcopy(deployment)
    edited["spec"]["replicas"] = 3
    for key in ("uid", "creationTimestamp", "generation"):
        del edited["metadata"][key]
    apply(state, yaml.safe_dump(edited))

    deployer.reconcile(Store(state).objects())

    assert stored(state, "Deployment")[0]["spec"]["replicas"] == 1


def test_a_deleted_gateway_plans_its_objects_away(state):
    LocalStoreDeployer(state, TEMPLATE, Wakes()).reconcile(Store(state).objects())
    Store(state).delete(parse_documents(GATEWAY, "gw.yaml"))

    todo = plan(Store(state).objects(), TEMPLATE)

    assert sorted((m.kind, m.namespace, m.name) for m in todo.delete) == [
        ("Deployment", "shop", "waypoint"),
        ("ServiceAccount", "shop", "waypoint"),
    ]
    assert todo.apply == ()


def test_a_users_own_deployment_of_that_name_is_a_conflict_left_alone(state):
    users = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: waypoint, namespace: shop}
spec:
  selector: {matchLabels: {app: mine}}
  template:
    metadata: {labels: {app: mine}}
    spec: {containers: [{name: app, command: [sleep, infinity]}]}
"""
    apply(state, users)

    todo = plan(Store(state).objects(), TEMPLATE)

    assert [m.key for m in todo.apply] == [("ServiceAccount", "shop", "waypoint")]
    [conflict] = todo.conflicts
    assert conflict.startswith("waypoint shop/waypoint is not deployed: Deployment shop/waypoint")
    assert "not managed by nodemesh-controller" in conflict


def test_a_users_own_service_account_is_used_as_it_is(state):
    apply(
        state, "apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: waypoint, namespace: shop}"
    )

    todo = plan(Store(state).objects(), TEMPLATE)

    assert [m.key for m in todo.apply] == [("Deployment", "shop", "waypoint")]
    assert todo.conflicts == ()


def test_unmanaged_objects_are_never_deleted(state):
    apply(
        state, "apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: waypoint, namespace: shop}"
    )
    Store(state).delete(parse_documents(GATEWAY, "gw.yaml"))

    assert not plan(Store(state).objects(), TEMPLATE).changes


# --- carrying it out in the local store -----------------------------------------------------------


def test_reconcile_writes_the_store_once_and_wakes_the_runtime(state):
    wakes = Wakes()
    deployer = LocalStoreDeployer(state, TEMPLATE, wakes)

    deployer.reconcile(Store(state).objects())
    generation = Store(state).generation()
    again = deployer.reconcile(Store(state).objects())

    assert {o["metadata"]["name"] for o in stored(state, "Deployment")} == {"waypoint"}
    assert {o["metadata"]["name"] for o in stored(state, "ServiceAccount")} == {"waypoint"}
    assert not again.changes
    assert Store(state).generation() == generation  # nothing written the second time
    assert wakes.calls == 1


def test_reconcile_removes_the_objects_with_the_gateway(state):
    wakes = Wakes()
    deployer = LocalStoreDeployer(state, TEMPLATE, wakes)
    deployer.reconcile(Store(state).objects())
    Store(state).delete(parse_documents(GATEWAY, "gw.yaml"))

    deployer.reconcile(Store(state).objects())

    assert stored(state, "Deployment") == [] and stored(state, "ServiceAccount") == []
    assert wakes.calls == 2


def test_a_failed_write_is_logged_not_raised(state, caplog):
    """The Gateway's namespace vanished between the read and the write: retry later."""
    objects = Store(state).objects()
    Store(state).delete(parse_documents(SHOP, "shop.yaml"))  # cascades to the Gateway
    wakes = Wakes()

    with caplog.at_level(logging.WARNING, logger="nodemesh.controller.waypoints"):
        LocalStoreDeployer(state, TEMPLATE, wakes).reconcile(objects)

    assert "waypoint deployment not written" in caplog.text
    assert "namespace 'shop' not found" in caplog.text
    assert wakes.calls == 0


def test_conflicts_are_logged_when_they_change_not_on_every_reconcile(state, caplog):
    apply(state, "apiVersion: v1\nkind: Namespace\nmetadata: {name: web}")
    deployer = LocalStoreDeployer(state, TEMPLATE, Wakes())
    users = waypoint_objects("web", "waypoint", TEMPLATE)[1]
    users["metadata"]["labels"] = {"app": "mine"}  # same name, not managed
    apply(state, yaml.safe_dump(users) + "---" + GATEWAY.replace("shop", "web"))

    with caplog.at_level(logging.WARNING, logger="nodemesh.controller.waypoints"):
        deployer.reconcile(Store(state).objects())
        deployer.reconcile(Store(state).objects())

    assert caplog.text.count("waypoint web/waypoint is not deployed") == 1


def test_the_local_registry_hands_gateways_to_translate(state):
    """Gateways reach the model through the local registry like any stored object."""
    registry = LocalRegistry(state.path)

    snapshot = translate(registry.objects()).snapshot

    assert [(w.key, w.exists, w.addresses) for w in snapshot.waypoints] == [
        ("shop/waypoint", True, ())
    ]
