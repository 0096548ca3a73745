"""v1 Service: ClusterIP only, ports named and unique, targetPort defaulted."""

from __future__ import annotations

import pytest

SERVICE = {
    "apiVersion": "v1",
    "kind": "Service",
    "metadata": {"name": "web"},
    "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]},
}
TWO_PORTS = [{"name": "http", "port": 80}, {"name": "grpc", "port": 9090, "targetPort": "grpc"}]


def test_valid_service_is_normalized(normalized):
    obj = normalized(SERVICE)

    assert obj["metadata"]["namespace"] == "default"
    assert obj["spec"]["type"] == "ClusterIP"
    assert obj["spec"]["ports"] == [{"port": 80, "protocol": "TCP", "targetPort": 80}]


def test_named_target_port_is_kept(normalized):
    obj = normalized({**SERVICE, "spec": {"ports": TWO_PORTS}})

    assert [port["targetPort"] for port in obj["spec"]["ports"]] == [80, "grpc"]


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("spec.type", "ClusterIP"),
        ("spec.clusterIP", "None"),
        ("spec.clusterIP", "198.18.0.10"),
        ("spec.clusterIP", ""),
        ("spec.ports", TWO_PORTS),
        ("spec.ports[0].targetPort", 8080),
        ("spec.ports[0].protocol", "UDP"),
        ("spec.ports[0].appProtocol", "http"),
        (
            "spec.ports",
            [{"name": "dns-tcp", "port": 53}, {"name": "dns", "port": 53, "protocol": "UDP"}],
        ),
        ("spec.ports[0].name", "http"),  # one port may be named
        ("spec.selector", None),  # no selector: endpoints come from elsewhere
        ("spec.sessionAffinity", "ClientIP"),  # accepted, ignored
        ("spec.ipFamilyPolicy", "SingleStack"),
        ("spec.ports[0].nodePort", 30080),
    ],
)
def test_accepted_variations(check_case, path, value):
    assert check_case(SERVICE, path, value) == []


def test_headless_service_may_omit_ports(check_case):
    headless = {**SERVICE, "spec": {"clusterIP": "None", "selector": {"app": "web"}}}

    assert check_case(headless, "spec.ports", None) == []


@pytest.mark.parametrize(
    ("path", "value", "field", "message"),
    [
        (
            "spec.type",
            "NodePort",
            "spec.type",
            "local mode supports ClusterIP Services only, got NodePort; use ClusterIP",
        ),
        (
            "spec.type",
            "LoadBalancer",
            "spec.type",
            "local mode supports ClusterIP Services only, got LoadBalancer; use ClusterIP",
        ),
        (
            "spec.type",
            "Internal",
            "spec.type",
            "must be one of ClusterIP, NodePort, LoadBalancer, ExternalName, got 'Internal'",
        ),
        (
            "spec.clusterIP",
            "10.0.0.300",
            "spec.clusterIP",
            "must be an IPv4 address like 10.96.0.10, got '10.0.0.300', or 'None' for a headless "
            "Service",
        ),
        ("spec.ports", None, "spec.ports", "required field is missing"),
        ("spec.ports", [], "spec.ports", "must have at least 1 item(s)"),
        (
            "spec.ports[0].port",
            70000,
            "spec.ports[0].port",
            "must be between 1 and 65535, got 70000",
        ),
        ("spec.ports[0].port", None, "spec.ports[0].port", "required field is missing"),
        (
            "spec.ports[0].targetPort",
            0,
            "spec.ports[0].targetPort",
            "must be between 1 and 65535, got 0",
        ),
        (
            "spec.ports[0].targetPort",
            "8080",
            "spec.ports[0].targetPort",
            "port name must be lowercase letters, digits and '-' with a letter, got '8080'",
        ),
        (
            "spec.ports[0].protocol",
            "SCTP",
            "spec.ports[0].protocol",
            "must be one of TCP, UDP, got 'SCTP'",
        ),
        (
            "spec.ports[1]",
            {"name": "other", "port": 443},
            "spec.ports[0].name",
            "required when a Service has more than one port",
        ),
        (
            "spec.ports",
            [{"name": "http", "port": 80}, {"name": "http", "port": 81}],
            "spec.ports[1].name",
            "duplicate port name 'http' (also spec.ports[0].name)",
        ),
        (
            "spec.ports",
            [{"name": "a", "port": 80}, {"name": "b", "port": 80}],
            "spec.ports[1].port",
            "duplicate port 80/TCP (also spec.ports[0].port)",
        ),
        (
            "spec.ports[0].name",
            "HTTP",
            "spec.ports[0].name",
            "must be a DNS-1123 label (lowercase letters, digits and '-', starting and ending with "
            "a letter or digit), got 'HTTP'",
        ),
        (
            "spec.selector",
            {"app": 1},
            "spec.selector.app",
            "must be a string, got integer 1 (quote it if you meant the string)",
        ),
        ("spec.prots", [], "spec.prots", "unknown field; did you mean 'ports'?"),
        (
            "metadata.name",
            "1web",
            "metadata.name",
            "must start with a lowercase letter (Service names are DNS-1035 labels), got '1web'",
        ),
        (
            "metadata.name",
            "web.shop",
            "metadata.name",
            "must be a DNS-1123 label (lowercase letters, digits and '-', starting and ending with "
            "a letter or digit), got 'web.shop'",
        ),
    ],
)
def test_service_errors(check_case, path, value, field, message):
    assert check_case(SERVICE, path, value) == [(field, message)]
