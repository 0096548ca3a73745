"""Who gets which Waypoint: every agent all of them, a waypoint its own."""

from __future__ import annotations

from controller.model import MeshSnapshot, Waypoint
from controller.model_waypoint import missing_waypoint
from controller.scope import WAYPOINT, ResourceKey, for_node, for_waypoint, key_of
from tests.unit.controller.test_scope import names, service, workload

SHOP = Waypoint(
    name="waypoint",
    namespace="shop",
    identity="spiffe://cluster.local/ns/shop/sa/waypoint",
    addresses=("198.18.1.7",),
    hbone_port=15008,
    exists=True,
)
EAST = missing_waypoint("web", "east", "spiffe://cluster.local/ns/web/sa/east")


def snapshot(*waypoints: Waypoint, services=()) -> MeshSnapshot:
    return MeshSnapshot.build(
        [workload("a")], services, (), (), (), "cluster.local", waypoints=waypoints
    )


def test_a_waypoint_is_keyed_by_namespace_and_name():
    assert key_of(SHOP) == ResourceKey("type.googleapis.com/nodemesh.v1.Waypoint", "shop/waypoint")


def test_every_agent_gets_every_waypoint_declared_or_missing():
    snap = snapshot(SHOP, EAST)

    assert names(for_node(snap, "node1"), WAYPOINT) == {"shop/waypoint", "web/east"}
    assert names(for_node(snap, "a-node-with-no-pods"), WAYPOINT) == {"shop/waypoint", "web/east"}


def test_an_agent_gets_no_waypoint_when_there_is_none():
    assert names(for_node(snapshot(), "node1"), WAYPOINT) == set()


def test_a_waypoint_gets_its_own_waypoint_and_no_other():
    snap = snapshot(SHOP, EAST, services=[service("web", ns="shop", waypoint="waypoint")])

    assert names(for_waypoint(snap, "shop", "waypoint"), WAYPOINT) == {"shop/waypoint"}
    assert names(for_waypoint(snap, "web", "east"), WAYPOINT) == {"web/east"}
    assert names(for_waypoint(snap, "shop", "nobody"), WAYPOINT) == set()


def test_the_snapshot_indexes_waypoints_and_refuses_duplicates():
    snap = snapshot(EAST, SHOP)

    assert snap.waypoints == (SHOP, EAST)  # sorted by (namespace, name)
    assert snap.waypoint("shop", "waypoint") is SHOP
    assert snap.waypoint("shop", "east") is None
    try:
        snapshot(SHOP, SHOP)
    except ValueError as exc:
        assert "duplicate Waypoint 'shop/waypoint'" in str(exc)
    else:
        raise AssertionError("a snapshot with two equal waypoint keys was built")


def test_route_backends_are_the_services_a_route_forwards_and_mirrors_to():
    import json

    from controller.model import HttpRoute, RouteParent
    from controller.scope import route_backends

    rules = [
        {
            "backendRefs": [
                {"group": "", "kind": "Service", "name": "web-v1", "port": 80},
                {"group": "", "kind": "Service", "name": "web-v2", "namespace": "canary"},
            ],
            "filters": [
                {"type": "RequestMirror", "requestMirror": {"backendRef": {"name": "shadow"}}}
            ],
        },
        {"backendRefs": [{"group": "example.com", "kind": "Bucket", "name": "not-a-service"}]},
    ]
    route = HttpRoute("split", "shop", (RouteParent("shop", "web", 0, ""),), (), json.dumps(rules))
    assert route_backends(route) == {"shop/web-v1", "canary/web-v2", "shop/shadow"}
