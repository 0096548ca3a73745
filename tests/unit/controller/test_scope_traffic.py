"""Who gets which TrafficPolicy: a waypoint those of every Service it sends to, agents none."""

from __future__ import annotations

import json

from controller.model import HttpRoute, MeshSnapshot, RouteParent, TrafficPolicy
from controller.scope import TRAFFIC_POLICY, WAYPOINT_TYPE_URLS, for_node, for_waypoint
from tests.unit.controller.test_scope import names, service, workload


def policy(name: str, *services: str, ns: str = "shop") -> TrafficPolicy:
    return TrafficPolicy(name, ns, services, "{}", "2025-06-02T09:14:27Z")


def split(name: str, parent: str, *backends: str, ns: str = "shop") -> HttpRoute:
    """A route on Service `parent` sending to `backends` (a 90/10 split has two)."""
    rules = [{"backendRefs": [{"name": backend, "port": 80} for backend in backends]}]
    return HttpRoute(name, ns, (RouteParent(ns, parent, 0, ""),), (), json.dumps(rules))


SERVICES = [
    service("web", ns="shop", waypoint="waypoint", members=("a",)),
    service("web-v1", ns="shop"),
    service("web-v2", ns="shop"),
    service("db", ns="shop"),
    service("web", ns="east", waypoint="waypoint"),
]


def snapshot(*policies: TrafficPolicy, routes=()) -> MeshSnapshot:
    return MeshSnapshot.build(
        [workload("a", ns="shop")], SERVICES, (), (), routes, traffic_policies=policies
    )


def test_a_waypoint_gets_the_policy_of_a_service_it_serves():
    snap = snapshot(policy("web-policy", "web"), policy("db-policy", "db"))

    assert names(for_waypoint(snap, "shop", "waypoint"), TRAFFIC_POLICY) == {"shop/web-policy"}


def test_a_waypoint_gets_the_policies_of_its_route_backends():
    snap = snapshot(
        policy("v1", "web-v1"),
        policy("v2", "web-v2"),
        policy("db-policy", "db"),
        routes=[split("split", "web", "web-v1", "web-v2")],
    )

    assert names(for_waypoint(snap, "shop", "waypoint"), TRAFFIC_POLICY) == {"shop/v1", "shop/v2"}


def test_a_policy_is_sent_once_when_several_of_its_services_are_in_scope():
    snap = snapshot(policy("all", "web", "web-v1", "db"), routes=[split("s", "web", "web-v1")])

    keys = for_waypoint(snap, "shop", "waypoint")

    assert names(keys, TRAFFIC_POLICY) == {"shop/all"}


def test_a_waypoint_gets_no_policy_of_another_namespaces_service_of_the_same_name():
    snap = snapshot(policy("east-web", "web", ns="east"))

    assert names(for_waypoint(snap, "shop", "waypoint"), TRAFFIC_POLICY) == set()
    assert names(for_waypoint(snap, "east", "waypoint"), TRAFFIC_POLICY) == {"east/east-web"}


def test_an_agent_gets_no_traffic_policy():
    snap = snapshot(policy("web-policy", "web"), policy("db-policy", "db"))

    assert names(for_node(snap, "node1"), TRAFFIC_POLICY) == set()


def test_a_waypoint_subscribes_to_traffic_policies():
    assert TRAFFIC_POLICY in WAYPOINT_TYPE_URLS
