"""translate(): registry objects in, mesh model and per-object errors out."""

from __future__ import annotations

import copy

import pytest

from controller.model import (
    AuthorizationPolicy,
    Condition,
    Endpoint,
    Operation,
    RouteParent,
    Rule,
    Source,
    TargetRef,
)
from controller.translate import owner_of, translate, waypoint_for
from nodemesh.identity import IdentityError

AMBIENT = {"nodemesh.io/dataplane-mode": "ambient"}
OPT_OUT = {"nodemesh.io/dataplane-mode": "none"}
HTTP_CONTAINERS = [{"name": "app", "ports": [{"name": "http", "containerPort": 8080}]}]


def namespace(name: str = "demo", labels: dict | None = None) -> dict:
    meta: dict = {"name": name}
    if labels is not None:
        meta["labels"] = labels
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": meta}


def pod(
    name: str = "web-1",
    ip: str | None = "198.18.1.2",
    *,
    ns: str = "demo",
    uid: str | None = None,
    node: str = "node1",
    labels: dict | None = None,
    ready: bool = True,
    sa: str | None = "web",
    containers: list | None = None,
    phase: str = "Running",
    sandbox: dict | None = None,
    **status: object,
) -> dict:
    """A pod as the local runtime publishes it in status.json (ip=None: not running yet)."""
    spec: dict = {
        "nodeName": node,
        "containers": HTTP_CONTAINERS if containers is None else containers,
    }
    if sa is not None:
        spec["serviceAccountName"] = sa
    obj: dict = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": ns,
            "uid": uid or f"uid-{name}",
            "labels": {"app": "web"} if labels is None else labels,
        },
        "spec": spec,
        "status": {
            "phase": phase,
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
            **status,
        },
    }
    if ip is not None:
        obj["status"]["podIP"] = ip
    if sandbox is not None:
        obj["sandbox"] = sandbox
    return obj


def service(
    name: str = "web",
    *,
    ns: str = "demo",
    cluster_ip: str = "198.19.0.10",
    selector: dict | None = None,
    ports: list | None = None,
    labels: dict | None = None,
) -> dict:
    meta: dict = {"name": name, "namespace": ns}
    if labels is not None:
        meta["labels"] = labels
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": meta,
        "spec": {
            "clusterIP": cluster_ip,
            "selector": {"app": "web"} if selector is None else selector,
            "ports": (
                [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}]
                if ports is None
                else ports
            ),
        },
    }


def authz(spec: dict | None = None, *, name: str = "p", ns: str = "demo") -> dict:
    obj: dict = {
        "apiVersion": "security.nodemesh.io/v1",
        "kind": "AuthorizationPolicy",
        "metadata": {"name": name, "namespace": ns},
    }
    if spec is not None:
        obj["spec"] = spec
    return obj


def route(parent_refs: list, *, name: str = "r", ns: str = "demo") -> dict:
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "parentRefs": parent_refs,
            "rules": [{"backendRefs": [{"name": "web", "port": 80}]}],
        },
    }


SERVICE_PARENT = {"group": "", "kind": "Service", "name": "web"}


def only_workload(objects: list[dict], **kwargs):
    result = translate(objects, **kwargs)
    assert result.errors == ()
    [workload] = result.snapshot.workloads
    return workload


# --- enrollment -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("namespace_labels", "pod_labels", "enrolled"),
    [
        (AMBIENT, {}, True),
        (AMBIENT, OPT_OUT, False),
        (AMBIENT, {"nodemesh.io/dataplane-mode": "ambient"}, True),
        ({}, {}, False),
        (None, {}, False),
        ({"nodemesh.io/dataplane-mode": "sidecar"}, {}, False),
        ({}, {"nodemesh.io/dataplane-mode": "ambient"}, False),
    ],
    ids=[
        "ambient-namespace",
        "pod-opts-out",
        "pod-repeats-ambient",
        "namespace-unlabelled",
        "namespace-object-absent",
        "other-mode",
        "pod-label-alone-does-not-enroll",
    ],
)
def test_enrollment_is_the_namespace_label_unless_the_pod_opts_out(
    namespace_labels, pod_labels, enrolled
):
    objects = [pod(labels=pod_labels)]
    if namespace_labels is not None:
        objects.insert(0, namespace(labels=namespace_labels))
    assert only_workload(objects).enrolled is enrolled


def test_enrollment_follows_the_namespace_label_when_it_goes_away():
    running = pod()
    labelled = only_workload([namespace(labels=AMBIENT), running])
    unlabelled = only_workload([namespace(labels={}), running])
    deleted = only_workload([running])
    assert (labelled.enrolled, unlabelled.enrolled, deleted.enrolled) == (True, False, False)


def test_enrollment_does_not_depend_on_object_order():
    forward = translate([namespace(labels=AMBIENT), pod()]).snapshot
    backward = translate([pod(), namespace(labels=AMBIENT)]).snapshot
    assert forward.workloads[0].enrolled and backward.workloads[0].enrolled
    assert forward.version == backward.version


# --- identities -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sa", "trust_domain", "identity"),
    [
        ("web", "cluster.local", "spiffe://cluster.local/ns/demo/sa/web"),
        (None, "cluster.local", "spiffe://cluster.local/ns/demo/sa/default"),
        ("", "cluster.local", "spiffe://cluster.local/ns/demo/sa/default"),
        ("api", "example.org", "spiffe://example.org/ns/demo/sa/api"),
    ],
    ids=["service-account", "defaulted", "empty-is-default", "trust-domain"],
)
def test_identity_is_the_spiffe_id_of_namespace_and_service_account(sa, trust_domain, identity):
    workload = only_workload([pod(sa=sa)], trust_domain=trust_domain)
    assert workload.identity == identity
    assert workload.service_account == identity.rsplit("/", 1)[1]


def test_workloads_sharing_a_service_account_share_an_identity():
    snapshot = translate([pod("a", "198.18.1.2"), pod("b", "198.18.1.3", sa="other")]).snapshot
    shared = snapshot.workloads_by_identity["spiffe://cluster.local/ns/demo/sa/web"]
    assert [w.name for w in shared] == ["a"]
    snapshot = translate([pod("a", "198.18.1.2"), pod("b", "198.18.1.3")]).snapshot
    shared = snapshot.workloads_by_identity["spiffe://cluster.local/ns/demo/sa/web"]
    assert sorted(w.name for w in shared) == ["a", "b"]


def test_a_bad_trust_domain_is_a_configuration_error_not_an_object_error():
    with pytest.raises(IdentityError):
        translate([pod()], trust_domain="Not A Domain")


# --- workload fields ------------------------------------------------------------------------------


def test_a_local_mode_pod_becomes_a_full_workload():
    obj = pod(sandbox={"netns": "/run/netns/p1", "cgroup": "/sys/fs/cgroup/nm/p1", "logDir": "/x"})
    obj["metadata"]["ownerReferences"] = [{"kind": "Deployment", "name": "web"}]
    workload = only_workload([namespace(labels=AMBIENT), obj])
    assert workload.uid == "uid-web-1"
    assert (workload.name, workload.namespace, workload.node) == ("web-1", "demo", "node1")
    assert workload.addresses == ("198.18.1.2",)
    assert workload.labels == (("app", "web"),)
    assert (workload.netns, workload.cgroup) == ("/run/netns/p1", "/sys/fs/cgroup/nm/p1")
    assert workload.owner == "Deployment/web"
    assert workload.ready and workload.enrolled and workload.waypoint == ""


def test_a_kubernetes_pod_has_no_sandbox_and_may_list_several_ips():
    obj = pod(podIPs=[{"ip": "198.18.1.2"}, {"ip": "2001:db8::2"}])
    workload = only_workload([obj])
    assert workload.addresses == ("198.18.1.2", "2001:db8::2")
    assert (workload.netns, workload.cgroup) == ("", "")


@pytest.mark.parametrize(
    "obj",
    [
        pod(ip=None, node=""),  # scheduled with no IP is a pending workload (test_cni_pending)
        pod(phase="Succeeded"),
        pod(phase="Failed"),
        {k: v for k, v in pod().items() if k != "status"},
        pod() | {"spec": pod()["spec"] | {"hostNetwork": True}},
    ],
    ids=["unscheduled", "succeeded", "failed", "stored-intent-without-status", "host-network"],
)
def test_pods_that_do_not_run_are_not_workloads_and_not_errors(obj):
    result = translate([obj])
    assert result.snapshot.workloads == () and result.errors == ()


@pytest.mark.parametrize(
    ("change", "ready"),
    [
        ({}, True),
        ({"ready": False}, False),
        ({"display": "Terminating"}, False),
    ],
    ids=["ready", "not-ready", "terminating"],
)
def test_readiness(change, ready):
    assert only_workload([pod(**change)]).ready is ready


def test_a_pod_being_deleted_is_not_ready():
    obj = pod()
    obj["metadata"]["deletionTimestamp"] = "2025-01-01T00:00:00Z"
    assert only_workload([obj]).ready is False


@pytest.mark.parametrize(
    ("metadata", "owner"),
    [
        ({}, ""),
        ({"ownerReferences": []}, ""),
        ({"ownerReferences": [{"kind": "Deployment", "name": "web"}]}, "Deployment/web"),
        (
            {
                "labels": {"pod-template-hash": "5d9f"},
                "ownerReferences": [{"kind": "ReplicaSet", "name": "web-5d9f", "controller": True}],
            },
            "Deployment/web",
        ),
        ({"ownerReferences": [{"kind": "ReplicaSet", "name": "web-5d9f"}]}, "ReplicaSet/web-5d9f"),
        (
            {
                "ownerReferences": [
                    {"kind": "ConfigMap", "name": "x"},
                    {"kind": "StatefulSet", "name": "db", "controller": True},
                ]
            },
            "StatefulSet/db",
        ),
    ],
    ids=["bare", "empty", "local-deployment", "replicaset-of-deployment", "plain-rs", "controller"],
)
def test_owner(metadata, owner):
    assert owner_of(metadata) == owner


# --- services and endpoints -----------------------------------------------------------------------


def only_service(objects: list[dict]):
    result = translate(objects)
    assert result.errors == ()
    [svc] = result.snapshot.services
    return svc


@pytest.mark.parametrize(
    ("member", "is_endpoint"),
    [
        (pod(), True),
        (pod(labels={"app": "web", "extra": "x"}), True),
        (pod(ready=False), False),
        (pod(display="Terminating"), False),
        (pod(ns="other"), False),
        (pod(labels={"app": "api"}), False),
        (pod(labels=OPT_OUT | {"app": "web"}), True),
    ],
    ids=["match", "superset", "unready", "terminating", "other-ns", "other-label", "unenrolled"],
)
def test_endpoints_are_ready_pods_the_selector_picks(member, is_endpoint):
    svc = only_service([namespace(labels=AMBIENT), service(), member])
    assert [e.workload_uid for e in svc.endpoints] == (["uid-web-1"] if is_endpoint else [])


@pytest.mark.parametrize(
    ("target_port", "containers", "ports"),
    [
        ("http", HTTP_CONTAINERS, ((80, 8080),)),
        ("grpc", HTTP_CONTAINERS, ()),
        (9090, HTTP_CONTAINERS, ((80, 9090),)),
        ("9090", [], ((80, 9090),)),
        ("http", [], ()),
    ],
    ids=["named", "name-not-in-pod", "number", "digit-string", "no-container-ports"],
)
def test_endpoint_ports_resolve_named_target_ports_per_pod(target_port, containers, ports):
    svc_ports = [{"name": "http", "port": 80, "targetPort": target_port, "protocol": "TCP"}]
    svc = only_service([service(ports=svc_ports), pod(containers=containers)])
    assert svc.endpoints == (Endpoint("uid-web-1", "198.18.1.2", ports),)


def test_endpoints_resolve_each_pods_own_port_name():
    other = [{"name": "app", "ports": [{"name": "http", "containerPort": 9000}]}]
    svc = only_service(
        [service(), pod("a", "198.18.1.3"), pod("b", "198.18.1.2", containers=other)]
    )
    assert [(e.address, e.ports) for e in svc.endpoints] == [
        ("198.18.1.2", ((80, 9000),)),
        ("198.18.1.3", ((80, 8080),)),
    ]


def test_endpoints_are_ordered_by_address_numerically():
    pods = [pod("a", "198.18.1.10"), pod("b", "198.18.1.9"), pod("c", "198.18.1.100")]
    svc = only_service([service(), *pods])
    assert [e.address for e in svc.endpoints] == ["198.18.1.9", "198.18.1.10", "198.18.1.100"]


def test_service_fields():
    svc = only_service([service(), pod()])
    assert svc.hostname == "web.demo.svc.cluster.local"
    assert svc.vips == ("198.19.0.10",)
    [port] = svc.ports
    assert (port.name, port.port, port.target_port, port.protocol) == ("http", 80, "http", "TCP")


def test_a_headless_service_has_no_vip_but_its_endpoints():
    svc = only_service([service(cluster_ip="None", ports=[]), pod()])
    assert svc.vips == () and svc.ports == ()
    assert svc.endpoints == (Endpoint("uid-web-1", "198.18.1.2", ()),)


def test_a_service_without_selector_has_no_endpoints():
    assert only_service([service(selector={}), pod()]).endpoints == ()


# --- waypoints ------------------------------------------------------------------------------------

WP = "nodemesh.io/use-waypoint"


@pytest.mark.parametrize(
    ("own", "ns", "waypoint"),
    [
        ({}, {}, ""),
        ({}, {WP: "ns-wp"}, "ns-wp"),
        ({WP: "own-wp"}, {}, "own-wp"),
        ({WP: "own-wp"}, {WP: "ns-wp"}, "own-wp"),
        ({WP: "none"}, {WP: "ns-wp"}, ""),
        ({}, {WP: "none"}, ""),
        ({"gateway.networking.k8s.io/gateway-name": "ns-wp"}, {WP: "ns-wp"}, ""),
    ],
    ids=["none", "namespace", "own", "own-wins", "own-opts-out", "ns-none", "waypoint-itself"],
)
def test_waypoint_precedence(own, ns, waypoint):
    assert waypoint_for(own, ns) == waypoint


def test_service_and_pod_waypoints_come_from_their_own_and_namespace_labels():
    objects = [
        namespace(labels=AMBIENT | {WP: "ns-wp"}),
        service("web"),
        service("api", cluster_ip="198.19.0.11", labels={WP: "api-wp"}),
        pod("web-1", labels={"app": "web"}),
        pod("api-1", "198.18.1.3", labels={"app": "api", WP: "pod-wp"}),
    ]
    snapshot = translate(objects).snapshot
    assert {s.name: s.waypoint for s in snapshot.services} == {"web": "ns-wp", "api": "api-wp"}
    assert {w.name: w.waypoint for w in snapshot.workloads} == {"web-1": "ns-wp", "api-1": "pod-wp"}


# --- policies and routes --------------------------------------------------------------------------


def only_policy(spec: dict | None, **kwargs) -> AuthorizationPolicy:
    result = translate([authz(spec, **kwargs)])
    assert result.errors == ()
    [policy] = result.snapshot.authorization_policies
    return policy


def rule(**parts) -> dict:
    return {"rules": [parts]}


@pytest.mark.parametrize(
    ("spec", "needs_l7"),
    [
        (None, False),
        (rule(**{"from": [{"source": {"principals": ["cluster.local/ns/a/sa/b"]}}]}), False),
        (
            rule(**{"from": [{"source": {"notNamespaces": ["x"], "ipBlocks": ["10.0.0.0/8"]}}]}),
            False,
        ),
        (rule(**{"from": [{"source": {"requestPrincipals": ["iss/sub"]}}]}), True),
        (rule(**{"from": [{"source": {"notRequestPrincipals": ["*"]}}]}), True),
        (rule(**{"from": [{"source": {"remoteIpBlocks": ["1.2.3.4"]}}]}), True),
        (rule(**{"from": [{"source": {"notRemoteIpBlocks": ["1.2.3.4"]}}]}), True),
        (rule(to=[{"operation": {"ports": ["80"], "notPorts": ["81"]}}]), False),
        (rule(to=[{"operation": {"methods": ["GET"]}}]), True),
        (rule(to=[{"operation": {"notMethods": ["GET"]}}]), True),
        (rule(to=[{"operation": {"paths": ["/x"]}}]), True),
        (rule(to=[{"operation": {"notPaths": ["/x"]}}]), True),
        (rule(to=[{"operation": {"hosts": ["a"]}}]), True),
        (rule(to=[{"operation": {"notHosts": ["a"]}}]), True),
        (rule(when=[{"key": "source.ip", "values": ["10.0.0.1"]}]), False),
        (rule(when=[{"key": "source.namespace", "values": ["a"]}]), False),
        (rule(when=[{"key": "source.principal", "notValues": ["a"]}]), False),
        (rule(when=[{"key": "destination.ip", "values": ["10.0.0.1"]}]), False),
        (rule(when=[{"key": "destination.port", "values": ["80"]}]), False),
        (rule(when=[{"key": "request.headers[x-user]", "values": ["a"]}]), True),
        (rule(when=[{"key": "request.auth.claims[iss]", "values": ["a"]}]), True),
        (rule(when=[{"key": "connection.sni", "values": ["a.example"]}]), True),
        (
            {
                "rules": [
                    {"to": [{"operation": {"ports": ["80"]}}]},
                    {"to": [{"operation": {"methods": ["GET"]}}]},
                ]
            },
            True,
        ),
    ],
    ids=[
        "no-rules",
        "principals",
        "namespaces-ipblocks",
        "requestPrincipals",
        "notRequestPrincipals",
        "remoteIpBlocks",
        "notRemoteIpBlocks",
        "ports",
        "methods",
        "notMethods",
        "paths",
        "notPaths",
        "hosts",
        "notHosts",
        "when-source.ip",
        "when-source.namespace",
        "when-source.principal",
        "when-destination.ip",
        "when-destination.port",
        "when-header",
        "when-jwt-claim",
        "when-sni-ztunnel-ignores-it",
        "any-rule-l7",
    ],
)
def test_l7_detection_follows_istio_ambient(spec, needs_l7):
    assert only_policy(spec).needs_l7 is needs_l7


def test_authorization_policy_model():
    spec = {
        "selector": {"matchLabels": {"app": "web"}},
        "action": "DENY",
        "rules": [
            {
                "from": [{"source": {"namespaces": ["a"]}}],
                "to": [{"operation": {"ports": ["80"]}}],
                "when": [{"key": "source.ip", "notValues": ["10.0.0.1"]}],
            }
        ],
    }
    policy = only_policy(spec)
    assert policy.selector == (("app", "web"),)
    assert policy.action == "DENY" and policy.target_refs == () and not policy.is_root
    assert policy.rules == (
        Rule(
            sources=(Source(namespaces=("a",)),),
            operations=(Operation(ports=("80",)),),
            conditions=(Condition("source.ip", (), ("10.0.0.1",)),),
        ),
    )


def test_authorization_policy_defaults_and_root_namespace():
    policy = only_policy(None, ns="nodemesh-system")
    assert (policy.action, policy.rules, policy.selector) == ("ALLOW", (), None)
    assert policy.is_root
    assert only_policy({"selector": {"matchLabels": {}}}).selector is None
    custom_root = translate([authz(ns="mesh-root")], root_namespace="mesh-root").snapshot
    assert custom_root.authorization_policies[0].is_root


def test_authorization_policy_target_refs_default_to_its_namespace():
    spec = {"targetRefs": [{"kind": "Service", "group": "", "name": "web"}]}
    assert only_policy(spec).target_refs == (TargetRef("", "Service", "web", "demo"),)


def test_peer_authentication_model_from_a_stored_object():
    # As the store keeps it: JSON round trip made the port keys strings.
    obj = {
        "apiVersion": "security.nodemesh.io/v1",
        "kind": "PeerAuthentication",
        "metadata": {"name": "strict", "namespace": "demo", "uid": "u", "generation": 2},
        "spec": {
            "selector": {"matchLabels": {"app": "web"}},
            "mtls": {"mode": "STRICT"},
            "portLevelMtls": {"9090": {"mode": "DISABLE"}, "8080": {"mode": "PERMISSIVE"}},
        },
    }
    result = translate([obj])
    assert result.errors == ()
    [peer_authn] = result.snapshot.peer_authentications
    assert peer_authn.mode == "STRICT" and peer_authn.selector == (("app", "web"),)
    assert peer_authn.port_level == ((8080, "PERMISSIVE"), (9090, "DISABLE"))
    assert result.snapshot.peer_authn_by_namespace["demo"] == (peer_authn,)


def test_http_route_attaches_to_its_service_parents():
    refs = [
        SERVICE_PARENT | {"port": 80},
        {
            "group": "",
            "kind": "Service",
            "name": "api",
            "namespace": "other",
            "sectionName": "http",
        },
        {"name": "some-gateway"},  # a Gateway parent: not nodemesh's, passed over
    ]
    result = translate([route(refs, name="r")])
    assert result.errors == ()
    [http_route] = result.snapshot.http_routes
    assert http_route.parents == (
        RouteParent("demo", "web", 80, ""),
        RouteParent("other", "api", 0, "http"),
    )
    [backend] = http_route.rules_data()[0]["backendRefs"]
    assert backend == {
        "group": "",
        "kind": "Service",
        "name": "web",
        "port": 80,
        "weight": 1,
        "filters": [],
    }
    assert result.snapshot.routes_by_parent["demo/web"] == (http_route,)
    assert result.snapshot.routes_by_parent["other/api"] == (http_route,)


# --- errors are isolated --------------------------------------------------------------------------


def without(obj: dict, *path: str) -> dict:
    obj = copy.deepcopy(obj)
    *parents, last = path
    target = obj
    for key in parents:
        target = target[key]
    del target[last]
    return obj


@pytest.mark.parametrize(
    ("bad", "kind", "message"),
    [
        (without(pod("bad"), "spec", "nodeName"), "Pod", "spec.nodeName is missing"),
        (without(pod("bad"), "metadata", "uid"), "Pod", "metadata.uid is missing"),
        (pod("bad", ip="not-an-ip"), "Pod", "'not-an-ip' is not an IP address"),
        (pod("bad", sa="Bad/SA"), "Pod", "service account"),
        (pod("bad", labels={"app": 7}), "Pod", "must be strings"),
        (without(service("bad"), "spec"), "Service", "required field 'spec' is missing"),
        (service("bad", cluster_ip="300.1.1.1"), "Service", "is not an IP address"),
        (service("bad", ports=[{"port": 0}]), "Service", "not a port number"),
        (authz({"action": "MAYBE"}, name="bad"), "AuthorizationPolicy", "spec.action"),
        (authz({"action": "CUSTOM"}, name="bad"), "AuthorizationPolicy", "CUSTOM is not supported"),
        (route([{"name": "gw"}], name="bad"), "HTTPRoute", "no parentRef is a Service"),
        (route([], name="bad") | {"spec": None}, "HTTPRoute", "spec"),
    ],
    ids=[
        "pod-no-node",
        "pod-no-uid",
        "pod-bad-ip",
        "pod-bad-sa",
        "pod-bad-label",
        "service-no-spec",
        "service-bad-vip",
        "service-bad-port",
        "authz-bad-action",
        "authz-custom",
        "route-gateway-only",
        "route-no-spec",
    ],
)
def test_a_broken_object_is_reported_and_the_rest_translates(bad, kind, message):
    good = [namespace(labels=AMBIENT), service(), pod(), authz(), route([SERVICE_PARENT])]
    result = translate([*good[:2], bad, *good[2:]])
    [error] = result.errors
    assert (error.kind, error.namespace, error.name) == (kind, "demo", "bad")
    assert message in error.message
    snapshot = result.snapshot
    assert [w.name for w in snapshot.workloads] == ["web-1"]
    assert [s.name for s in snapshot.services] == ["web"]
    assert [p.name for p in snapshot.authorization_policies] == ["p"]
    assert [r.name for r in snapshot.http_routes] == ["r"]
    assert [e.workload_uid for e in snapshot.services[0].endpoints] == ["uid-web-1"]


@pytest.mark.parametrize(
    ("bad", "kind", "message"),
    [
        ("not an object", "", "not an object"),
        ({"kind": "Pod"}, "Pod", "not an object with kind and metadata"),
        ({"kind": "Pod", "metadata": {"namespace": "demo"}}, "Pod", "metadata.name is missing"),
    ],
    ids=["garbage", "no-metadata", "no-name"],
)
def test_garbage_from_the_registry_is_reported(bad, kind, message):
    result = translate([bad, pod()])
    [error] = result.errors
    assert error.kind == kind and message in error.message
    assert len(result.snapshot.workloads) == 1


def test_a_second_pod_with_the_same_uid_is_reported_and_left_out():
    result = translate([pod("a", uid="same"), pod("b", "198.18.1.3", uid="same")])
    [error] = result.errors
    assert (error.kind, error.name) == ("Pod", "b") and "same metadata.uid" in error.message
    assert [w.name for w in result.snapshot.workloads] == ["a"]


def test_a_cluster_ip_claimed_twice_stays_with_the_first_service():
    result = translate([service("zz"), service("aa")])
    [error] = result.errors
    assert (error.kind, error.name) == ("Service", "zz") and "demo/aa" in error.message
    assert result.snapshot.services_by_vip["198.19.0.10"].name == "aa"


def test_unused_kinds_are_passed_over():
    deployment = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}}
    account = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "web"}}
    result = translate([deployment, account])
    assert result.errors == () and result.snapshot.workloads == ()


def test_error_strings_name_the_object():
    [error] = translate([without(pod("bad"), "spec", "nodeName")]).errors
    assert str(error) == "Pod demo/bad: spec.nodeName is missing"


# --- the snapshot ---------------------------------------------------------------------------------


def test_snapshot_indexes():
    objects = [service(), pod("a", "198.18.1.2"), pod("b", "198.18.1.3", ready=False)]
    snapshot = translate(objects).snapshot
    assert snapshot.workloads_by_address["198.18.1.3"].name == "b"
    assert snapshot.services_by_hostname["web.demo.svc.cluster.local"].name == "web"
    assert snapshot.services_by_vip["198.19.0.10"].name == "web"
    assert snapshot.service("demo", "web") is snapshot.services[0]
    assert snapshot.workloads_by_uid["uid-a"].name == "a"
    with pytest.raises(TypeError):
        snapshot.workloads_by_uid["x"] = snapshot.workloads[0]  # type: ignore[index]


def test_a_reused_address_belongs_to_the_ready_pod():
    old = pod("old", "198.18.1.2", uid="b-old", ready=False)
    new = pod("new", "198.18.1.2", uid="a-new")
    for order in ([old, new], [new, old]):
        assert translate(order).snapshot.workloads_by_address["198.18.1.2"].name == "new"


def test_version_changes_with_content_only():
    first = translate([service(), pod()]).snapshot.version
    assert translate([pod(), service()]).snapshot.version == first
    assert translate([service(), pod(ready=False)]).snapshot.version != first
