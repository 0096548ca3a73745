"""Who gets what: resource keys per node agent and per waypoint, from hand-built snapshots."""

from __future__ import annotations

import pytest

from controller.model import (
    AuthorizationPolicy,
    Endpoint,
    HttpRoute,
    MeshSnapshot,
    Operation,
    PeerAuthentication,
    PeerWorkload,
    RouteParent,
    Rule,
    Service,
    TargetRef,
    Workload,
)
from controller.scope import (
    AUTHORIZATION_POLICY,
    HTTP_ROUTE,
    PEER_AUTHENTICATION,
    PEER_WORKLOAD,
    SERVICE,
    WORKLOAD,
    ResourceKey,
    for_node,
    for_waypoint,
    key_of,
)

ROOT = "nodemesh-system"
L7_RULE = Rule(operations=(Operation(methods=("GET",)),))
L4_RULE = Rule(operations=(Operation(ports=("80",)),))


def workload(uid: str, node: str = "node1", ns: str = "demo", **labels: str) -> Workload:
    return Workload(
        uid=uid,
        name=uid,
        namespace=ns,
        node=node,
        addresses=(f"198.18.{len(uid)}.{sum(map(ord, uid)) % 250}",),
        service_account="default",
        identity=f"spiffe://cluster.local/ns/{ns}/sa/default",
        labels=tuple(sorted(labels.items())),
        enrolled=True,
        waypoint="",
        ready=True,
        netns="",
        cgroup="",
        owner="",
    )


def service(name: str, ns: str = "demo", waypoint: str = "", members: tuple[str, ...] = ()):
    return Service(
        name=name,
        namespace=ns,
        hostname=f"{name}.{ns}.svc.cluster.local",
        vips=(),
        ports=(),
        endpoints=tuple(Endpoint(uid, "198.18.0.1", ()) for uid in members),
        waypoint=waypoint,
    )


def policy(
    name: str,
    ns: str = "demo",
    selector: dict | None = None,
    rules: tuple[Rule, ...] = (),
    target_refs: tuple[TargetRef, ...] = (),
) -> AuthorizationPolicy:
    return AuthorizationPolicy(
        name=name,
        namespace=ns,
        selector=None if selector is None else tuple(sorted(selector.items())),
        target_refs=target_refs,
        action="ALLOW",
        rules=rules,
        is_root=ns == ROOT,
        needs_l7=any(r is L7_RULE for r in rules),
    )


def peer_authn(name: str, ns: str = "demo", selector: dict | None = None) -> PeerAuthentication:
    return PeerAuthentication(
        name=name,
        namespace=ns,
        selector=None if selector is None else tuple(sorted(selector.items())),
        mode="STRICT",
        port_level=(),
        is_root=ns == ROOT,
    )


def http_route(name: str, *parents: tuple[str, str], ns: str = "demo") -> HttpRoute:
    return HttpRoute(
        name=name,
        namespace=ns,
        parents=tuple(RouteParent(p_ns, p_name, 0, "") for p_ns, p_name in parents),
        hostnames=(),
        rules="[]",
    )


def snapshot(workloads=(), services=(), authz=(), peerauthn=(), routes=()) -> MeshSnapshot:
    return MeshSnapshot.build(workloads, services, authz, peerauthn, routes, "cluster.local")


def names(keys: frozenset[ResourceKey], type_url: str) -> set[str]:
    return {key.name for key in keys if key.type_url == type_url}


# --- node agents ----------------------------------------------------------------------------------


def test_a_node_gets_its_own_workloads_in_full_and_everyone_else_as_peers():
    snap = snapshot([workload("a"), workload("b", node="node2"), workload("c", ns="other")])
    keys = for_node(snap, "node1")
    assert names(keys, WORKLOAD) == {"a", "c"}
    assert names(keys, PEER_WORKLOAD) == {"b"}
    assert names(for_node(snap, "node3"), PEER_WORKLOAD) == {"a", "b", "c"}
    assert names(for_node(snap, "node3"), WORKLOAD) == set()


def test_a_node_gets_every_service():
    snap = snapshot([workload("a")], [service("web"), service("db", ns="other")])
    assert names(for_node(snap, "node1"), SERVICE) == {"demo/web", "other/db"}
    assert names(for_node(snap, "empty-node"), SERVICE) == {"demo/web", "other/db"}


LOCAL = [workload("a", app="web"), workload("b", node="node2", app="db")]


@pytest.mark.parametrize(
    ("authz", "sent"),
    [
        (policy("ns-wide"), True),
        (policy("other-ns", ns="other"), False),
        (policy("root", ns=ROOT), True),
        (policy("selects-local", selector={"app": "web"}), True),
        (policy("selects-remote-only", selector={"app": "db"}), False),
        (policy("root-selects-local", ns=ROOT, selector={"app": "web"}), True),
        (policy("root-selects-nothing-here", ns=ROOT, selector={"app": "db"}), False),
        (policy("l7-ns-wide", rules=(L7_RULE,)), True),
        (policy("targets-service", target_refs=(TargetRef("", "Service", "web", "demo"),)), False),
    ],
    ids=lambda v: v.name if isinstance(v, AuthorizationPolicy) else str(v),
)
def test_a_node_gets_the_authorization_policies_that_can_apply_to_its_pods(authz, sent):
    keys = for_node(snapshot(LOCAL, authz=[authz]), "node1")
    assert names(keys, AUTHORIZATION_POLICY) == ({authz.key} if sent else set())


@pytest.mark.parametrize(
    ("pa", "sent"),
    [
        (peer_authn("ns-wide"), True),
        (peer_authn("other-ns", ns="other"), False),
        (peer_authn("mesh-wide", ns=ROOT), True),
        (peer_authn("selects-local", selector={"app": "web"}), True),
        (peer_authn("selects-remote-only", selector={"app": "db"}), False),
    ],
    ids=lambda v: v.name if isinstance(v, PeerAuthentication) else str(v),
)
def test_a_node_gets_the_peer_authentications_that_can_apply_to_its_pods(pa, sent):
    keys = for_node(snapshot(LOCAL, peerauthn=[pa]), "node1")
    assert names(keys, PEER_AUTHENTICATION) == ({pa.key} if sent else set())


def test_a_node_without_pods_gets_no_policies():
    snap = snapshot([workload("b", node="node2")], authz=[policy("root", ns=ROOT)])
    assert names(for_node(snap, "node1"), AUTHORIZATION_POLICY) == set()


def test_a_node_gets_no_routes():
    snap = snapshot([workload("a")], [service("web")], routes=[http_route("r", ("demo", "web"))])
    assert names(for_node(snap, "node1"), HTTP_ROUTE) == set()


# --- waypoints ------------------------------------------------------------------------------------

WAYPOINT_MESH = snapshot(
    workloads=[
        workload("w1"),
        workload("w2", node="node2"),
        workload("x1"),
        workload("o1", "n", "other"),
    ],
    services=[
        service("web", waypoint="wp", members=("w1", "w2", "gone")),
        service("api", waypoint="other-wp", members=("x1",)),
        service("plain", members=("x1",)),
        service("web", ns="other", waypoint="wp", members=("o1",)),
    ],
    routes=[
        http_route("web-route", ("demo", "web")),
        http_route("api-route", ("demo", "api")),
        http_route("consumer-route", ("demo", "web"), ns="other"),
    ],
)


def test_a_waypoint_gets_the_services_that_use_it_and_their_endpoints_as_peers():
    keys = for_waypoint(WAYPOINT_MESH, "demo", "wp")
    assert names(keys, SERVICE) == {"demo/web"}
    assert names(keys, PEER_WORKLOAD) == {"w1", "w2"}  # "gone" is no workload any more
    assert names(keys, WORKLOAD) == set()


def test_a_waypoint_gets_the_routes_attached_to_its_services():
    keys = for_waypoint(WAYPOINT_MESH, "demo", "wp")
    assert names(keys, HTTP_ROUTE) == {"demo/web-route", "other/consumer-route"}


def test_an_unused_waypoint_gets_nothing():
    assert for_waypoint(WAYPOINT_MESH, "demo", "nobody") == frozenset()


GATEWAY = "gateway.networking.k8s.io"


@pytest.mark.parametrize(
    ("authz", "sent"),
    [
        (policy("l7-ns", rules=(L7_RULE,)), True),
        (policy("l7-root", ns=ROOT, rules=(L7_RULE,)), True),
        (policy("l7-other-ns", ns="other", rules=(L7_RULE,)), False),
        (policy("l4-ns", rules=(L4_RULE,)), False),
        (
            policy("targets-its-service", target_refs=(TargetRef("", "Service", "web", "demo"),)),
            True,
        ),
        (
            policy("targets-other-service", target_refs=(TargetRef("", "Service", "api", "demo"),)),
            False,
        ),
        (policy("targets-it", target_refs=(TargetRef(GATEWAY, "Gateway", "wp", "demo"),)), True),
        (
            policy("targets-other-gw", target_refs=(TargetRef(GATEWAY, "Gateway", "gw2", "demo"),)),
            False,
        ),
        (
            policy(
                "l7-but-targets-other",
                rules=(L7_RULE,),
                target_refs=(TargetRef(GATEWAY, "Gateway", "gw2", "demo"),),
            ),
            False,
        ),
    ],
    ids=lambda v: v.name if isinstance(v, AuthorizationPolicy) else str(v),
)
def test_a_waypoint_gets_the_authorization_policies_it_enforces(authz, sent):
    snap = snapshot([workload("w1")], [service("web", waypoint="wp", members=("w1",))], [authz])
    keys = for_waypoint(snap, "demo", "wp")
    assert names(keys, AUTHORIZATION_POLICY) == ({authz.key} if sent else set())


# --- keys -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("obj", "key"),
    [
        (workload("u1"), ResourceKey(WORKLOAD, "u1")),
        (PeerWorkload.of(workload("u1")), ResourceKey(PEER_WORKLOAD, "u1")),
        (service("web"), ResourceKey(SERVICE, "demo/web")),
        (policy("p"), ResourceKey(AUTHORIZATION_POLICY, "demo/p")),
        (peer_authn("pa"), ResourceKey(PEER_AUTHENTICATION, "demo/pa")),
        (http_route("r", ("demo", "web")), ResourceKey(HTTP_ROUTE, "demo/r")),
    ],
    ids=["workload", "peer", "service", "authz", "peer-authn", "route"],
)
def test_resource_keys(obj, key):
    assert key_of(obj) == key
    assert key.type_url == f"type.googleapis.com/nodemesh.v1.{type(obj).__name__}"


def test_key_of_refuses_other_objects():
    with pytest.raises(TypeError):
        key_of("demo/web")  # type: ignore[arg-type]
