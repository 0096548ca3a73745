"""translate() and waypoints: Gateways of class nodemesh-waypoint, their pods, and missing ones."""

from __future__ import annotations

import pytest

from controller.model import Waypoint
from controller.translate import translate
from tests.unit.controller.test_translate import AMBIENT, namespace, pod, service

GATEWAY_NAME = "gateway.networking.k8s.io/gateway-name"
USE_WAYPOINT = "nodemesh.io/use-waypoint"


def gateway(name: str = "waypoint", ns: str = "shop", cls: str = "nodemesh-waypoint", **spec):
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "Gateway",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"gatewayClassName": cls, **spec},
    }


def waypoint_pod(name: str, ip: str, *, gw: str = "waypoint", ns: str = "shop", **kwargs):
    """A pod of waypoint `gw`, as the deployer's Deployment makes them."""
    labels = {GATEWAY_NAME: gw, "nodemesh.io/dataplane-mode": "none"}
    return pod(name, ip, ns=ns, sa=kwargs.pop("sa", gw), labels=labels, **kwargs)


def waypoints(objects: list[dict]) -> dict[str, Waypoint]:
    result = translate(objects)
    assert result.errors == ()
    return {w.key: w for w in result.snapshot.waypoints}


def test_a_gateway_with_ready_pods_is_a_waypoint_at_their_addresses():
    found = waypoints(
        [
            namespace("shop"),
            gateway(),
            waypoint_pod("waypoint-b", "198.18.2.7"),
            waypoint_pod("waypoint-a", "198.18.1.7"),
            waypoint_pod("waypoint-c", "198.18.1.9", ready=False),
        ]
    )

    assert found == {
        "shop/waypoint": Waypoint(
            name="waypoint",
            namespace="shop",
            identity="spiffe://cluster.local/ns/shop/sa/waypoint",
            addresses=("198.18.1.7", "198.18.2.7"),  # ascending, the unready pod left out
            hbone_port=15008,
            exists=True,
        )
    }
    assert found["shop/waypoint"].unavailable() is None


def test_a_gateway_without_a_ready_pod_says_so():
    [found] = waypoints([gateway(), waypoint_pod("waypoint-a", "198.18.1.7", ready=False)]).values()

    assert found.exists and found.addresses == ()
    assert found.unavailable().startswith("waypoint shop/waypoint has no ready pod")


@pytest.mark.parametrize(
    "stranger",
    [
        waypoint_pod("other-sa", "198.18.1.8", sa="default"),  # cannot prove the identity
        waypoint_pod("other-ns", "198.18.1.8", ns="web"),  # another namespace's pod
        waypoint_pod("other-gw", "198.18.1.8", gw="east"),  # another waypoint's pod
        pod("plain", "198.18.1.8", ns="shop", sa="waypoint"),  # not labelled as a gateway pod
    ],
    ids=["service-account", "namespace", "gateway-name", "unlabelled"],
)
def test_only_the_gateways_own_pods_are_its_addresses(stranger):
    found = waypoints([gateway(), stranger])

    assert found["shop/waypoint"].addresses == ()


def test_a_waypoint_labels_name_but_no_gateway_declares_is_modelled_missing():
    objects = [
        namespace("shop", labels={USE_WAYPOINT: "waypoint"}),
        service("web", ns="shop"),
        pod("web-1", "198.18.1.2", ns="shop"),
    ]

    [missing] = waypoints(objects).values()

    assert missing == Waypoint(
        name="waypoint",
        namespace="shop",
        identity="spiffe://cluster.local/ns/shop/sa/waypoint",
        addresses=(),
        hbone_port=15008,
        exists=False,
    )
    assert "does not exist: no Gateway 'waypoint' of class nodemesh-waypoint" in (
        missing.unavailable() or ""
    )


def test_a_service_label_alone_brings_its_missing_waypoint():
    found = waypoints([service("web", ns="shop", labels={USE_WAYPOINT: "east"})])

    assert list(found) == ["shop/east"] and not found["shop/east"].exists


def test_nothing_referenced_and_nothing_declared_means_no_waypoint():
    assert waypoints([namespace("shop"), service("web", ns="shop"), pod(ns="shop")]) == {}


def test_a_gateway_of_another_class_belongs_to_someone_else_and_is_skipped_quietly():
    result = translate([gateway("ingress", cls="istio"), gateway("eg", cls="envoy-gateway")])

    assert result.errors == ()
    assert result.snapshot.waypoints == ()


def test_a_broken_waypoint_gateway_is_reported_and_left_out():
    broken = gateway(listeners=[{"name": "http", "port": 80, "protocol": "HTTP"}])

    result = translate([broken, gateway("east")])

    assert [w.key for w in result.snapshot.waypoints] == ["shop/east"]
    [error] = result.errors
    assert (error.kind, error.namespace, error.name) == ("Gateway", "shop", "waypoint")
    assert "spec.listeners[0].protocol: must be HBONE" in error.message


def test_two_gateways_with_one_name_keep_the_first():
    result = translate([gateway(), gateway()])

    assert len(result.snapshot.waypoints) == 1
    assert [e.message for e in result.errors] == ["another Gateway has the same namespace and name"]


def test_a_waypoints_own_pods_are_never_enrolled_nor_sent_to_a_waypoint():
    """Even without the opt-out label: capturing a waypoint would loop its traffic to itself."""
    labels = {GATEWAY_NAME: "waypoint"}  # no nodemesh.io/dataplane-mode: none
    objects = [
        namespace("shop", labels={**AMBIENT, USE_WAYPOINT: "waypoint"}),
        gateway(),
        pod("waypoint-a", "198.18.1.7", ns="shop", sa="waypoint", labels=labels),
        pod("web-1", "198.18.1.2", ns="shop"),
    ]

    snapshot = translate(objects).snapshot
    by_name = {w.name: w for w in snapshot.workloads}

    assert (by_name["waypoint-a"].enrolled, by_name["waypoint-a"].waypoint) == (False, "")
    assert (by_name["web-1"].enrolled, by_name["web-1"].waypoint) == (True, "waypoint")
    assert snapshot.waypoint("shop", "waypoint").addresses == ("198.18.1.7",)


def test_a_gateway_pod_of_another_implementation_stays_enrolled():
    """Only a declared waypoint's pods are exempt; an ingress gateway's pods are workloads."""
    labels = {GATEWAY_NAME: "ingress"}
    objects = [namespace("shop", labels=AMBIENT), pod("ingress-a", ns="shop", labels=labels)]

    [workload] = translate(objects).snapshot.workloads

    assert workload.enrolled


def test_waypoints_change_the_snapshot_version():
    base = [namespace("shop"), gateway()]
    without = translate(base).snapshot
    ready = translate([*base, waypoint_pod("waypoint-a", "198.18.1.7")]).snapshot

    assert without.version != ready.version
    assert translate(base).snapshot.version == without.version
