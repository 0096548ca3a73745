"""Model -> nodemesh.v1 message -> bytes -> model, and the checks a client makes on the way in."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from google.protobuf.message import Message

from controller import resources, scope
from controller.model import (
    AuthorizationPolicy,
    Condition,
    Endpoint,
    HttpRoute,
    Operation,
    PeerAuthentication,
    PeerWorkload,
    RouteParent,
    Rule,
    Service,
    ServicePort,
    Source,
    TargetRef,
    Workload,
    canonical_json,
)
from controller.resources import ResourceError, from_resource, to_message, to_resources
from controller.translate import translate
from nodemesh.proto import mesh_pb2
from nodemesh.xds import resources as xds_resources
from tests.unit.controller.test_translate import authz, namespace, pod, route, service

WORKLOAD = Workload(
    uid="3f1c-uid",
    name="web-1",
    namespace="demo",
    node="node1",
    addresses=("198.18.1.2", "2001:db8::2"),
    service_account="web",
    identity="spiffe://cluster.local/ns/demo/sa/web",
    labels=(("app", "web"), ("version", "v1")),
    enrolled=True,
    waypoint="wp",
    ready=True,
    netns="/run/netns/nm-p1",
    cgroup="/sys/fs/cgroup/nodemesh/p1",
    owner="Deployment/web",
)
SERVICE = Service(
    name="web",
    namespace="demo",
    hostname="web.demo.svc.cluster.local",
    vips=("198.19.0.10",),
    ports=(
        ServicePort("http", 80, "http", "TCP", "http"),
        ServicePort("metrics", 9090, 9091, "TCP", ""),
    ),
    endpoints=(
        Endpoint("3f1c-uid", "198.18.1.2", ((80, 8080), (9090, 9091))),
        Endpoint("other-uid", "198.18.1.3", ((9090, 9091),)),
    ),
    waypoint="wp",
)
HEADLESS = Service(
    "db", "demo", "db.demo.svc.cluster.local", (), (), (Endpoint("u", "198.18.1.9", ()),), ""
)
AUTHZ = AuthorizationPolicy(
    name="allow-get",
    namespace="demo",
    selector=(("app", "web"),),
    target_refs=(),
    action="ALLOW",
    rules=(
        Rule(
            sources=(
                Source(principals=("cluster.local/ns/demo/sa/client",), not_namespaces=("x",)),
                Source(ip_blocks=("10.0.0.0/8",), remote_ip_blocks=("1.2.3.4",)),
            ),
            operations=(Operation(methods=("GET",), paths=("/api/*",), ports=("80",)),),
            conditions=(Condition("request.headers[x-user]", ("alice",), ("bob",)),),
        ),
        Rule(),
    ),
    is_root=False,
    needs_l7=True,
)
AUTHZ_TARGETED = AuthorizationPolicy(
    name="deny-all",
    namespace="nodemesh-system",
    selector=None,
    target_refs=(
        TargetRef("", "Service", "web", "demo"),
        TargetRef("gateway.networking.k8s.io", "Gateway", "wp", "demo"),
    ),
    action="DENY",
    rules=(Rule(sources=(Source(namespaces=("evil",)),)),),
    is_root=True,
    needs_l7=False,
)
PEER_AUTHN = PeerAuthentication(
    name="strict",
    namespace="demo",
    selector=(("app", "web"),),
    mode="STRICT",
    port_level=((8080, "PERMISSIVE"), (9090, "DISABLE")),
    is_root=False,
)
MESH_WIDE = PeerAuthentication("default", "nodemesh-system", None, "UNSET", (), True)
ROUTE = HttpRoute(
    name="web-route",
    namespace="demo",
    parents=(RouteParent("demo", "web", 80, ""), RouteParent("other", "api", 0, "http")),
    hostnames=("web.example",),
    rules=canonical_json(
        [
            {
                "matches": [{"path": {"type": "PathPrefix", "value": "/"}, "headers": []}],
                "backendRefs": [{"name": "web", "port": 80, "weight": 1}],
                "timeouts": {"request": "10s"},
                "ratio": 0.5,
            }
        ]
    ),
)
MODELS = [WORKLOAD, PeerWorkload.of(WORKLOAD), SERVICE, HEADLESS, AUTHZ, AUTHZ_TARGETED, PEER_AUTHN]
MODELS += [MESH_WIDE, ROUTE]


def roundtrip(obj):
    key = scope.key_of(obj)
    return from_resource(key.type_url, to_message(obj).SerializeToString(), key.name)


@pytest.mark.parametrize(
    "obj", MODELS, ids=lambda obj: f"{type(obj).__name__}-{scope.key_of(obj).name}"
)
def test_model_to_bytes_and_back_is_the_same_model(obj):
    assert roundtrip(obj) == obj


def test_type_urls_are_the_messages_full_names():
    assert resources.type_url_of(mesh_pb2.Workload) == scope.WORKLOAD
    for obj in MODELS:
        message = to_message(obj)
        assert scope.key_of(obj).type_url == f"type.googleapis.com/{message.DESCRIPTOR.full_name}"


def test_messages_mirror_istio_field_names():
    message = to_message(AUTHZ)
    rule = message.rules[0]
    assert list(getattr(rule, "from")[0].source.principals) == ["cluster.local/ns/demo/sa/client"]
    assert list(rule.to[0].operation.methods) == ["GET"]
    assert rule.when[0].key == "request.headers[x-user]"
    assert message.needs_l7 and message.selector.match_labels == {"app": "web"}
    assert not to_message(MESH_WIDE).HasField("selector")


def test_a_translated_snapshot_survives_the_trip_for_every_subscriber():
    l7_rule = {"to": [{"operation": {"methods": ["GET"]}}]}
    objects = [
        namespace(
            labels={"nodemesh.io/dataplane-mode": "ambient", "nodemesh.io/use-waypoint": "wp"}
        ),
        service(),
        pod("a", "198.18.1.2", sa="a", sandbox={"netns": "/run/netns/a", "cgroup": "/cg/a"}),
        pod("b", "198.18.2.2", node="node2", labels={"app": "web", "version": "v2"}),
        authz({"rules": [l7_rule]}),
        route([{"group": "", "kind": "Service", "name": "web", "port": 80}]),
    ]
    result = translate(objects)
    assert result.errors == ()
    snapshot = result.snapshot
    subscribers = [scope.for_node(snapshot, "node1"), scope.for_waypoint(snapshot, "demo", "wp")]
    for keys in subscribers:
        sent = to_resources(snapshot, keys)
        assert sum(map(len, sent.values())) == len(keys)
        for type_url, named in sent.items():
            for name, message in named.items():
                back = from_resource(type_url, message.SerializeToString(), name)
                assert back == resources.lookup(snapshot, scope.ResourceKey(type_url, name))


def test_to_resources_groups_by_type_and_leaves_out_what_is_gone():
    snapshot = translate([]).snapshot
    keys = {
        scope.ResourceKey(scope.WORKLOAD, "gone"),
        scope.ResourceKey(scope.SERVICE, "demo/gone"),
    }
    assert to_resources(snapshot, keys) == {}


def test_to_resources_names():
    snapshot = translate([service(), pod("a", uid="ua")]).snapshot
    sent = to_resources(snapshot, scope.for_node(snapshot, "node2"))
    assert {url: sorted(named) for url, named in sent.items()} == {
        scope.PEER_WORKLOAD: ["ua"],
        scope.SERVICE: ["demo/web"],
    }
    assert isinstance(sent[scope.PEER_WORKLOAD]["ua"], mesh_pb2.PeerWorkload)


def test_needs_l7_is_recomputed_by_the_receiver():
    message = to_message(AUTHZ)
    message.needs_l7 = False
    assert roundtrip_message(message).needs_l7 is True


def roundtrip_message(message: Message):
    url = resources.type_url_of(type(message))
    return from_resource(url, message.SerializeToString())


# --- invalid resources: each is rejected alone ----------------------------------------------------


def changed(obj, change: Callable[[Message], object]) -> Message:
    message = to_message(obj)
    change(message)
    return message


def _set(field: str, value) -> Callable[[Message], None]:
    return lambda message: setattr(message, field, value)


def _clear_target(message: Message) -> None:
    message.ports[0].ClearField("target")


def _add_target_ref(message: Message) -> None:
    message.target_refs.add(kind="Service", name="web", namespace="demo")


def _empty_source(message: Message) -> None:
    getattr(message.rules[0], "from")[0].source.Clear()


def _bad_rules(message: Message) -> None:
    message.rules.Clear()
    message.rules.append("not an object")


@pytest.mark.parametrize(
    ("message", "error"),
    [
        (changed(WORKLOAD, _set("uid", "")), "uid is empty"),
        (changed(WORKLOAD, lambda m: m.addresses.append("nope")), "'nope' is not an IP address"),
        (
            changed(PeerWorkload.of(WORKLOAD), lambda m: m.ClearField("addresses")),
            "addresses: no address",
        ),
        (
            changed(WORKLOAD, _set("identity", "spiffe://cluster.local/ns/demo/sa/admin")),
            "own service account",
        ),
        (
            changed(WORKLOAD, _set("identity", "spiffe://cluster.local/ns/kube-system/sa/web")),
            "own service account",
        ),
        (changed(WORKLOAD, _set("identity", "https://example")), "identity"),
        (changed(PeerWorkload.of(WORKLOAD), _set("identity", "")), "identity"),
        (changed(PeerWorkload.of(WORKLOAD), _set("node", "")), "node is empty"),
        (changed(SERVICE, lambda m: m.vips.append("198.19.0.300")), "vips"),
        (changed(SERVICE, _clear_target), "no target port"),
        (changed(SERVICE, lambda m: setattr(m.ports[1], "port", 70000)), "not a port number"),
        (changed(SERVICE, lambda m: setattr(m.ports[0], "protocol", "QUIC")), "protocol"),
        (
            changed(SERVICE, lambda m: setattr(m.endpoints[0], "address", "x")),
            "endpoints[0].address",
        ),
        (
            changed(SERVICE, lambda m: setattr(m.endpoints[0].ports[0], "target_port", 0)),
            "not a port",
        ),
        (changed(AUTHZ, _set("action", 3)), "CUSTOM is not supported"),
        (changed(AUTHZ, _set("action", 42)), "unknown value 42"),
        (changed(AUTHZ, _add_target_ref), "selector and target_refs"),
        (changed(AUTHZ, _empty_source), "would match everything"),
        (
            changed(
                AUTHZ,
                lambda m: getattr(m.rules[0], "from")[1].source.ip_blocks.append("10.0.0.0/33"),
            ),
            "CIDR",
        ),
        (
            changed(AUTHZ, lambda m: m.rules[0].to[0].operation.ports.append("http")),
            "not a port number",
        ),
        (
            changed(AUTHZ, lambda m: m.rules[0].to[0].operation.ports.append("0")),
            "not a port number",
        ),
        (
            changed(AUTHZ, lambda m: m.rules[0].when.add(key="source.ip")),
            "neither values nor not_values",
        ),
        (changed(AUTHZ, lambda m: m.rules[0].when.add(values=["x"])), "key is empty"),
        (changed(AUTHZ_TARGETED, lambda m: m.target_refs.add(kind="Service")), "target_refs.name"),
        (changed(PEER_AUTHN, _set("mode", 9)), "mode: unknown value 9"),
        (changed(PEER_AUTHN, lambda m: m.port_level.__setitem__(0, 3)), "port_level"),
        (changed(PEER_AUTHN, lambda m: m.port_level.__setitem__(80, 7)), "port_level[80]"),
        (changed(ROUTE, lambda m: m.ClearField("parents")), "no parents"),
        (changed(ROUTE, lambda m: setattr(m.parents[0], "name", "")), "parents.name"),
        (changed(ROUTE, _bad_rules), "list of objects"),
    ],
    ids=[
        "workload-no-uid",
        "workload-bad-address",
        "peer-no-address",
        "workload-other-sa-identity",
        "workload-other-ns-identity",
        "workload-not-spiffe",
        "peer-no-identity",
        "peer-no-node",
        "service-bad-vip",
        "service-no-target",
        "service-port-range",
        "service-protocol",
        "endpoint-bad-address",
        "endpoint-port-zero",
        "authz-custom",
        "authz-unknown-action",
        "authz-selector-and-target-refs",
        "authz-empty-source",
        "authz-bad-cidr",
        "authz-named-port",
        "authz-port-zero",
        "authz-condition-no-values",
        "authz-condition-no-key",
        "authz-target-ref-no-name",
        "peer-authn-unknown-mode",
        "peer-authn-port-zero",
        "peer-authn-port-unknown-mode",
        "route-no-parents",
        "route-parent-no-name",
        "route-rules-not-objects",
    ],
)
def test_an_invalid_resource_raises_resource_error(message, error):
    with pytest.raises(ResourceError) as caught:
        roundtrip_message(message)
    assert error in str(caught.value)
    assert str(caught.value).startswith(f"{message.DESCRIPTOR.name}: ")


def test_a_pending_workload_has_no_address_yet():
    """Scheduled, IP not published (controller.translate): its own agent still decodes it."""
    pending = Workload(**{**WORKLOAD.__dict__, "addresses": (), "ready": False})
    assert from_resource(scope.WORKLOAD, to_message(pending).SerializeToString()) == pending


def test_bytes_that_do_not_parse_are_a_resource_error():
    with pytest.raises(ResourceError, match="does not parse"):
        from_resource(scope.SERVICE, b"\xff\xff\xff")


def test_an_unknown_type_is_a_resource_error():
    with pytest.raises(ResourceError, match="unknown resource type"):
        from_resource("type.googleapis.com/nodemesh.v1.Nope", b"")


def test_a_resource_named_for_another_object_is_refused():
    payload = to_message(SERVICE).SerializeToString()
    assert from_resource(scope.SERVICE, payload, "demo/web") == SERVICE
    with pytest.raises(ResourceError, match="names must agree"):
        from_resource(scope.SERVICE, payload, "other/web")


def test_resource_error_is_what_the_xds_client_nacks():
    assert issubclass(ResourceError, xds_resources.ResourceError)
