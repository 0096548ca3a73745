"""Services from stored objects and pod views: endpoints, kube-proxy ports and DNS records out."""

from __future__ import annotations

import pytest

from nodemesh.local.dns import PodRecord, ServiceRecord
from nodemesh.local.kubeproxy import Endpoint, ServicePort
from nodemesh.local.services import (
    PodView,
    ServiceView,
    build_services,
    dns_records,
    kubeproxy_ports,
)

HTTP_CONTAINERS = ({"name": "app", "ports": [{"name": "http", "containerPort": 8080}]},)
ALT_CONTAINERS = ({"name": "app", "ports": [{"name": "http", "containerPort": 9000}]},)


def svc(
    name: str = "web",
    ns: str = "default",
    *,
    selector: dict | None = None,
    ports: list[dict] | None = None,
    cluster_ip: str | None = "198.19.0.10",
) -> dict:
    spec: dict = {
        "selector": {"app": "web"} if selector is None else selector,
        "ports": [{"port": 80, "targetPort": 8080, "protocol": "TCP"}] if ports is None else ports,
    }
    if cluster_ip is not None:
        spec["clusterIP"] = cluster_ip
    return {"kind": "Service", "metadata": {"name": name, "namespace": ns}, "spec": spec}


def view(
    name: str,
    ip: str,
    *,
    ns: str = "default",
    labels: dict | None = None,
    ready: bool = True,
    containers: tuple[dict, ...] = HTTP_CONTAINERS,
    node: str = "node1",
) -> PodView:
    return PodView(
        name=name,
        namespace=ns,
        ip=ip,
        node=node,
        labels={"app": "web"} if labels is None else labels,
        containers=containers,
        ready=ready,
    )


def endpoint_pods(service: ServiceView, key: str) -> list[str]:
    return [pod for _ip, _port, pod, _node in service.endpoints[key]]


# --- build_services: endpoints -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("pod", "member"),
    [
        (view("p", "198.18.1.2"), True),
        (view("p", "198.18.1.2", labels={"app": "web", "extra": "x"}), True),
        (view("p", "198.18.1.2", ready=False), False),
        (view("p", "198.18.1.2", ns="other"), False),
        (view("p", "198.18.1.2", labels={"app": "api"}), False),
        (view("p", "198.18.1.2", labels={}), False),
    ],
    ids=["match", "superset-labels", "unready", "other-namespace", "other-label", "no-labels"],
)
def test_endpoints_are_the_ready_matching_pods_of_the_namespace(pod, member):
    [service] = build_services([svc()], [pod])
    assert endpoint_pods(service, "80") == (["p"] if member else [])


def test_an_endpoint_carries_ip_target_port_pod_and_node():
    [service] = build_services([svc()], [view("p", "198.18.2.7", node="node2")])
    assert service.endpoints == {"80": (("198.18.2.7", 8080, "p", "node2"),)}


def test_a_service_without_a_selector_has_no_endpoints():
    [service] = build_services([svc(selector={})], [view("p", "198.18.1.2", labels={})])
    assert service.endpoints == {"80": ()}


def test_a_named_target_port_is_resolved_per_pod_and_pods_without_it_are_left_out():
    pods = [
        view("a", "198.18.1.2", containers=HTTP_CONTAINERS),
        view("b", "198.18.1.3", containers=ALT_CONTAINERS),
        view("c", "198.18.1.4", containers=({"name": "app"},)),
    ]
    ports = [{"name": "web", "port": 80, "targetPort": "http", "protocol": "TCP"}]
    [service] = build_services([svc(ports=ports)], pods)
    assert service.endpoints == {
        "web": (("198.18.1.2", 8080, "a", "node1"), ("198.18.1.3", 9000, "b", "node1")),
    }


def test_target_port_defaults_to_the_port():
    [service] = build_services([svc(ports=[{"port": 81}])], [view("p", "198.18.1.2")])
    assert service.endpoints == {"81": (("198.18.1.2", 81, "p", "node1"),)}


def test_each_port_has_its_own_endpoints_keyed_by_name():
    ports = [
        {"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"},
        {"name": "admin", "port": 81, "targetPort": 9901, "protocol": "TCP"},
    ]
    pods = [view("a", "198.18.1.2"), view("b", "198.18.1.3", containers=({"name": "x"},))]
    [service] = build_services([svc(ports=ports)], pods)
    assert {k: endpoint_pods(service, k) for k in service.endpoints} == {
        "http": ["a"],
        "admin": ["a", "b"],
    }


# --- build_services: the view ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cluster_ip", "expected"),
    [("198.19.0.10", "198.19.0.10"), ("None", None), (None, None), ("", None)],
)
def test_cluster_ip_of_the_view(cluster_ip, expected):
    [service] = build_services([svc(cluster_ip=cluster_ip)], [])
    assert service.cluster_ip == expected


def test_only_services_become_views_sorted_by_namespace_then_name():
    objects = [
        svc("b", "x"),
        {"kind": "Pod", "metadata": {"name": "p", "namespace": "x"}, "spec": {}},
        svc("a", "y"),
        svc("a", "x"),
    ]
    views = build_services(objects, [])
    assert [(v.namespace, v.name) for v in views] == [("x", "a"), ("x", "b"), ("y", "a")]


def test_to_json_renders_endpoints_as_objects():
    [service] = build_services([svc()], [view("p", "198.18.1.2")])
    assert service.to_json() == {
        "name": "web",
        "namespace": "default",
        "clusterIP": "198.19.0.10",
        "ports": [{"port": 80, "targetPort": 8080, "protocol": "TCP"}],
        "selector": {"app": "web"},
        "endpoints": {"80": [{"ip": "198.18.1.2", "port": 8080, "pod": "p", "node": "node1"}]},
    }


# --- kubeproxy_ports ---------------------------------------------------------------------------


def test_kubeproxy_ports_carry_the_vip_and_endpoints():
    ports = [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}]
    services = build_services([svc(ports=ports)], [view("a", "198.18.1.2")])
    assert kubeproxy_ports(services) == [
        ServicePort(
            namespace="default",
            service="web",
            port_name="http",
            protocol="TCP",
            cluster_ip="198.19.0.10",
            port=80,
            endpoints=(Endpoint("198.18.1.2", 8080),),
        )
    ]


def test_an_unnamed_port_defaults_to_tcp_and_an_empty_name():
    services = build_services([svc(ports=[{"port": 53, "targetPort": 5353}])], [])
    [port] = kubeproxy_ports(services)
    assert (port.port_name, port.protocol, port.port, port.endpoints) == ("", "TCP", 53, ())


def test_headless_services_are_not_programmed_and_are_no_error():
    services = build_services([svc(cluster_ip="None"), svc("api")], [view("a", "198.18.1.2")])
    errors: list[str] = []
    assert [p.service for p in kubeproxy_ports(services, errors.append)] == ["api"]
    assert errors == []


def test_a_port_kube_proxy_cannot_program_is_reported_and_skipped_alone():
    ports = [
        {"name": "sctp", "port": 80, "targetPort": 8080, "protocol": "SCTP"},
        {"name": "dns", "port": 53, "targetPort": 53, "protocol": "UDP"},
    ]
    services = build_services([svc(ports=ports), svc("api")], [view("a", "198.18.1.2")])
    errors: list[str] = []
    out = kubeproxy_ports(services, errors.append)
    assert [(p.service, p.port_name, p.protocol) for p in out] == [
        ("api", "", "TCP"),
        ("web", "dns", "UDP"),
    ]
    assert len(errors) == 1
    assert "default/web:sctp" in errors[0]
    assert "'SCTP' is not supported" in errors[0]


def test_kubeproxy_ports_without_an_error_callback_still_skip_the_bad_port():
    ports = [{"name": "x", "port": 80, "protocol": "SCTP"}]
    assert kubeproxy_ports(build_services([svc(ports=ports)], [])) == []


# --- dns_records -------------------------------------------------------------------------------


def test_dns_records_for_a_service_with_a_vip_and_for_every_pod():
    pods = [
        view("b", "198.18.1.3"),
        view("a", "198.18.1.2"),
        view("x", "198.18.1.9", ready=False, ns="other"),
    ]
    services = build_services([svc()], pods)
    assert dns_records(services, pods) == (
        [ServiceRecord("web", "default", "198.19.0.10", ("198.18.1.2", "198.18.1.3"))],
        [
            PodRecord("b", "default", "198.18.1.3"),
            PodRecord("a", "default", "198.18.1.2"),
            PodRecord("x", "other", "198.18.1.9"),
        ],
    )


def test_a_headless_service_resolves_to_each_ready_endpoint_once():
    ports = [
        {"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"},
        {"name": "admin", "port": 81, "targetPort": 8081, "protocol": "TCP"},
    ]
    pods = [view("a", "198.18.1.2"), view("b", "198.18.1.3"), view("c", "198.18.1.4", ready=False)]
    services = build_services([svc(ports=ports, cluster_ip="None")], pods)
    [record], _pods = dns_records(services, pods)
    assert record == ServiceRecord("web", "default", None, ("198.18.1.2", "198.18.1.3"))


def test_a_headless_services_addresses_are_sorted_whatever_the_pod_order():
    ips = [f"198.18.{node}.{host}" for node in (3, 1, 2) for host in (17, 11, 14)]
    pods = [view(f"p{i}", ip) for i, ip in enumerate(ips)]
    services = build_services([svc(cluster_ip="None")], pods)
    [record], _pods = dns_records(services, pods)
    assert record.endpoint_ips == tuple(sorted(ips))


def test_a_headless_service_without_ports_resolves_to_its_ready_pods():
    pods = [view("a", "198.18.1.2")]
    services = build_services([svc(ports=[], cluster_ip="None")], pods)
    [record], _pods = dns_records(services, pods)
    assert record.endpoint_ips == ("198.18.1.2",)
