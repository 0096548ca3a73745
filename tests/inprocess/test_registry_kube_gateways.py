"""Gateways through KubeRegistry: listed and watched like every kind, modelled as waypoints.

The fake API server stores Gateways as the Gateway API CRDs do (defaulted allowedRoutes, a
status), so this also checks that such server-side defaults do not make a waypoint invalid.
"""

from __future__ import annotations

import copy
import threading
import time

import pytest

from controller.registry_kube import KubeRegistry
from controller.translate import translate
from tests.inprocess.kube_fake import collection_path, stored

GATEWAYS = collection_path("gateway.networking.k8s.io/v1", "gateways")
PODS = collection_path("v1", "pods")
CORE = (
    ("Namespace", "namespaces"),
    ("ServiceAccount", "serviceaccounts"),
    ("Service", "services"),
    ("Pod", "pods"),
)


def gateway(name: str, cls: str = "nodemesh-waypoint") -> dict:
    obj = {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "Gateway",
        "metadata": {"name": name, "namespace": "shop"},
        "spec": {
            "gatewayClassName": cls,
            "listeners": [{"name": "mesh", "port": 15008, "protocol": "HBONE"}],
        },
    }
    item = stored(obj, "801")
    item["spec"]["listeners"][0]["allowedRoutes"] = {"namespaces": {"from": "Same"}}  # CRD default
    item["status"] = {"conditions": [{"type": "Programmed", "status": "Unknown"}]}
    return item


def waypoint_pod(name: str, ip: str) -> dict:
    return {
        "metadata": {
            "name": name,
            "namespace": "shop",
            "uid": f"uid-{name}",
            "resourceVersion": "802",
            "labels": {"gateway.networking.k8s.io/gateway-name": "waypoint"},
        },
        "spec": {"nodeName": "node-1", "serviceAccountName": "waypoint", "containers": []},
        "status": {
            "phase": "Running",
            "podIP": ip,
            "conditions": [{"type": "Ready", "status": "True"}],
        },
    }


def listing(kind: str, items: list[dict]) -> dict:
    return {"kind": f"{kind}List", "metadata": {"resourceVersion": "900"}, "items": items}


@pytest.fixture
def server(server):
    """An API server with every core collection empty (core kinds are always served)."""
    for kind, plural in CORE:
        server.set_list(collection_path("v1", plural), listing(kind, []))
    return server


@pytest.fixture
def registry(api):
    registry = KubeRegistry(api, backoff=(0.05, 0.2), crd_recheck=0.1)
    try:
        yield registry
    finally:
        registry.stop()
        assert not [t for t in threading.enumerate() if t.name.startswith("kube-")]


def eventually(predicate, timeout: float = 5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := predicate():
            return result
        time.sleep(0.01)
    raise AssertionError(f"not true within {timeout} s: {predicate.__doc__ or predicate}")


def test_listed_gateways_become_waypoints_and_other_classes_are_skipped(server, registry):
    server.set_list(GATEWAYS, listing("Gateway", [gateway("waypoint"), gateway("in", "istio")]))
    server.set_list(PODS, listing("Pod", [waypoint_pod("waypoint-a", "10.244.1.7")]))
    registry.start()
    assert registry.wait_synced(5)

    result = translate(registry.objects())

    assert result.errors == ()
    [waypoint] = result.snapshot.waypoints
    assert (waypoint.key, waypoint.exists, waypoint.addresses) == (
        "shop/waypoint",
        True,
        ("10.244.1.7",),
    )


def test_a_watched_gateway_deletion_reaches_the_model(server, registry):
    listed = gateway("waypoint")
    server.set_list(GATEWAYS, listing("Gateway", [listed]))
    registry.start()
    assert registry.wait_synced(5)
    deleted = copy.deepcopy(listed)
    deleted["metadata"]["resourceVersion"] = "950"

    server.send(GATEWAYS, {"type": "DELETED", "object": deleted})

    def gone():
        """the Gateway's deletion is applied"""
        return translate(registry.objects()).snapshot.waypoints == ()

    eventually(gone)


def test_without_the_gateway_crd_the_registry_still_syncs(server, registry):
    """Gateway API not installed: no waypoint, and nothing else held up."""
    registry.start()

    assert registry.wait_synced(5)
    assert translate(registry.objects()).snapshot.waypoints == ()
