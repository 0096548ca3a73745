"""Outbound routing decisions, built through the real path: objects → model → resources → agent.

The mesh below: namespace `shop` is enrolled; `web` (2 pods, node1 and node2) and `db` (node2,
behind waypoint `wp`) are Services; `legacy` is a namespace outside the mesh.
"""

from __future__ import annotations

import pytest

from controller import scope
from controller.translate import translate
from controller.wanted import wanted_for
from node_agent.routing import HBONE_PORT, RoundRobin, Route, build_request
from node_agent.state import AgentConfig
from nodemesh.xds.resources import XdsResource

TD = "cluster.local"


def ns(name, labels=None):
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": name, "labels": labels or {}},
    }


def pod(name, namespace, node, ip, labels, sa="default"):
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "uid": f"uid-{name}", "labels": labels},
        "spec": {
            "nodeName": node,
            "serviceAccountName": sa,
            "containers": [
                {"name": "c", "command": ["x"], "ports": [{"name": "http", "containerPort": 8080}]}
            ],
        },
        "status": {
            "phase": "Running",
            "podIP": ip,
            "conditions": [{"type": "Ready", "status": "True"}],
        },
    }


def svc(name, namespace, vip, selector, labels=None, port=80, target="http"):
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": namespace, "labels": labels or {}},
        "spec": {
            "clusterIP": vip,
            "selector": selector,
            "ports": [{"name": "http", "port": port, "targetPort": target, "protocol": "TCP"}],
        },
    }


OBJECTS = [
    ns("shop", {"nodemesh.io/dataplane-mode": "ambient"}),
    ns("legacy"),
    pod("client", "shop", "node1", "198.18.1.2", {"app": "client"}, sa="client"),
    pod("web-1", "shop", "node1", "198.18.1.3", {"app": "web"}, sa="web"),
    pod("web-2", "shop", "node2", "198.18.2.3", {"app": "web"}, sa="web"),
    pod("db-1", "shop", "node2", "198.18.2.4", {"app": "db"}, sa="db"),
    pod(
        "wp-1",
        "shop",
        "node2",
        "198.18.2.9",
        {"app": "wp", "gateway.networking.k8s.io/gateway-name": "wp"},
        sa="wp",
    ),
    pod("old-1", "legacy", "node2", "198.18.2.7", {"app": "old"}),
    svc("web", "shop", "198.19.0.10", {"app": "web"}),
    svc("db", "shop", "198.19.0.11", {"app": "db"}, labels={"nodemesh.io/use-waypoint": "wp"}),
    svc("wp", "shop", "198.19.0.12", {"app": "wp"}, port=15008, target=15008),
    svc("old", "legacy", "198.19.0.13", {"app": "old"}),
    svc("empty", "shop", "198.19.0.14", {"app": "nobody"}),
    svc("cart", "shop", "198.19.0.15", {"app": "web"}, labels={"nodemesh.io/use-waypoint": "gone"}),
    {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "Gateway",
        "metadata": {"name": "wp", "namespace": "shop"},
        "spec": {
            "gatewayClassName": "nodemesh-waypoint",
            "listeners": [{"name": "mesh", "port": 15008, "protocol": "HBONE"}],
        },
    },
]


def agent_config(objects=OBJECTS, node="node1") -> AgentConfig:
    result = translate(objects, trust_domain=TD)
    assert not result.errors, result.errors
    config = AgentConfig()
    for type_url, resources in wanted_for(
        result.snapshot, scope.for_node(result.snapshot, node)
    ).items():
        assert config.apply(type_url, list(resources.values()), []) == {}
    return config


def route(dst_ip, dst_port, source="uid-client", node="node1", pick=None):
    state = agent_config(node=node).state
    return build_request(
        state.local[source], dst_ip, dst_port, state, pick or (lambda s, eps: eps[-1])
    )


def test_a_service_vip_resolves_to_an_endpoint_reached_over_hbone():
    req = route("198.19.0.10", 80)
    assert req.route is Route.DIRECT
    assert req.authority == ("198.18.2.3", 8080)  # the named targetPort, resolved per pod
    assert req.tunnel_to == ("198.18.2.3", HBONE_PORT)
    assert req.expected_identity == f"spiffe://{TD}/ns/shop/sa/web"
    assert req.service.key == "shop/web" and req.destination.name == "web-2"


def test_round_robin_spreads_connections_over_the_endpoints():
    state = agent_config().state
    rr = RoundRobin()
    seen = [
        build_request(state.local["uid-client"], "198.19.0.10", 80, state, rr).destination.name
        for _ in range(4)
    ]
    assert seen == ["web-1", "web-2", "web-1", "web-2"]


@pytest.mark.parametrize(
    ("dst", "port", "route_", "reason"),
    [
        ("198.18.2.3", 8080, Route.DIRECT, "pod shop/web-2 on node2"),
        ("198.18.1.3", 8080, Route.DIRECT, "pod shop/web-1 on node1"),  # same node: still HBONE
        ("198.18.2.7", 8080, Route.PASSTHROUGH, "not enrolled"),
        ("198.51.100.9", 443, Route.PASSTHROUGH, "unknown to the mesh"),
        ("198.19.0.13", 80, Route.PASSTHROUGH, "not in the mesh"),
        ("198.19.0.10", 81, Route.PASSTHROUGH, "has no port 81"),
        ("198.19.0.14", 80, Route.NO_ENDPOINTS, "no ready endpoint"),
    ],
)
def test_routes_and_their_reasons(dst, port, route_, reason):
    req = route(dst, port)
    assert req.route is route_
    assert reason in req.reason
    if route_ is Route.PASSTHROUGH:
        assert req.tunnel_to is None and req.expected_identity is None


def test_a_service_with_a_waypoint_is_reached_through_it():
    req = route("198.19.0.11", 80)
    assert req.route is Route.WAYPOINT
    assert req.authority == ("198.19.0.11", 80)  # the waypoint sees what the client addressed
    assert req.tunnel_to == ("198.18.2.9", HBONE_PORT)
    assert req.expected_identity == f"spiffe://{TD}/ns/shop/sa/wp"


def test_a_service_whose_waypoint_does_not_exist_is_refused_not_bypassed():
    req = route("198.19.0.15", 80)
    assert req.route is Route.NO_WAYPOINT and req.tunnel_to is None
    assert "waypoint shop/gone does not exist" in req.reason


def test_the_waypoint_itself_goes_direct():
    req = route("198.19.0.11", 80, source="uid-wp-1", node="node2")
    assert req.route is Route.DIRECT and req.destination.name == "db-1"


def test_a_resource_that_does_not_decode_is_rejected_alone():
    config = agent_config()
    before = config.state
    snapshot = translate(OBJECTS, trust_domain=TD).snapshot
    good = wanted_for(snapshot, scope.for_node(snapshot, "node1"))[scope.SERVICE]["shop/web"]
    bad = XdsResource.build(scope.SERVICE, "shop/broken", b"\xff\xff not a message")
    rejected = config.apply(scope.SERVICE, [bad, good], ["shop/empty"])
    assert set(rejected) == {"shop/broken"}
    assert "shop/empty" not in config.state.services  # the removal in the same response applied
    assert "shop/web" in config.state.services
    assert before is not config.state and "shop/empty" in before.services  # old value untouched
