"""gateway.networking.k8s.io/v1 Gateway as a waypoint: istioctl's shape with nodemesh's class."""

from __future__ import annotations

import pytest

from nodemesh.manifests import kinds
from nodemesh.manifests.validate_gateway import is_waypoint_gateway

# What `istioctl waypoint apply -n shop` writes, with nodemesh's class.
GATEWAY = {
    "apiVersion": "gateway.networking.k8s.io/v1",
    "kind": "Gateway",
    "metadata": {
        "name": "waypoint",
        "namespace": "shop",
        "labels": {"istio.io/waypoint-for": "service"},
    },
    "spec": {
        "gatewayClassName": "nodemesh-waypoint",
        "listeners": [{"name": "mesh", "port": 15008, "protocol": "HBONE"}],
    },
}
L0 = "spec.listeners[0]"


def test_the_default_listener_is_istioctls(normalized):
    bare = {**GATEWAY, "spec": {"gatewayClassName": "nodemesh-waypoint"}}

    assert normalized(bare)["spec"]["listeners"] == [
        {"name": "mesh", "port": 15008, "protocol": "HBONE"}
    ]
    assert normalized(GATEWAY)["spec"] == GATEWAY["spec"]


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("spec.listeners", None),  # defaulted
        (f"{L0}.name", "hbone"),
        (f"{L0}.allowedRoutes", {"namespaces": {"from": "Same"}}),  # the CRD's default
        ("spec.listeners[1]", {"name": "mesh-2", "port": 15008, "protocol": "HBONE"}),
        ("status", {"conditions": []}),
    ],
)
def test_gateway_accepted(check_case, path, value):
    assert check_case(GATEWAY, path, value) == []


@pytest.mark.parametrize(
    ("path", "value", "field", "message"),
    [
        (
            "spec.gatewayClassName",
            "istio-waypoint",
            "spec.gatewayClassName",
            "must be 'nodemesh-waypoint', got 'istio-waypoint': nodemesh only runs waypoints (no "
            "ingress or egress gateways); that is Istio's waypoint class; set gatewayClassName: "
            "nodemesh-waypoint or create one with 'meshctl waypoint apply'",
        ),
        (
            "spec.gatewayClassName",
            "envoy",
            "spec.gatewayClassName",
            "must be 'nodemesh-waypoint', got 'envoy': nodemesh only runs waypoints (no ingress "
            "or egress gateways); set gatewayClassName: nodemesh-waypoint or create one with "
            "'meshctl waypoint apply'",
        ),
        ("spec.gatewayClassName", None, "spec.gatewayClassName", "required field is missing"),
        ("spec", None, "spec", "required field is missing"),
        ("spec.listeners", [], "spec.listeners", "must have at least 1 item(s)"),
        (
            f"{L0}.protocol",
            "HTTP",
            f"{L0}.protocol",
            "must be HBONE: a nodemesh waypoint receives mesh traffic as HBONE tunnels and has "
            "no 'HTTP' listener; nodemesh runs no ingress gateways",
        ),
        (
            f"{L0}.port",
            80,
            f"{L0}.port",
            "must be 15008: nodemesh waypoints take HBONE on port 15008 only, got 80",
        ),
        (f"{L0}.port", 0, f"{L0}.port", "must be between 1 and 65535, got 0"),
        (f"{L0}.port", "15008", f"{L0}.port", "must be an integer, got string '15008'"),
        (f"{L0}.name", None, f"{L0}.name", "required field is missing"),
        (
            "spec.listeners[1]",
            {"name": "mesh", "port": 15008, "protocol": "HBONE"},
            "spec.listeners[1].name",
            "duplicate listener name 'mesh'",
        ),
        (
            f"{L0}.tls",
            {"mode": "Terminate"},
            f"{L0}.tls",
            "HBONE brings its own mutual TLS (the mesh identities); remove tls",
        ),
        (
            f"{L0}.hostname",
            "web.shop.svc.cluster.local",
            f"{L0}.hostname",
            "a waypoint's HBONE listener serves every host; remove hostname",
        ),
        (
            "spec.addresses",
            [{"value": "198.18.1.9"}],
            "spec.addresses",
            "a waypoint's addresses are its pods' IPs; nodemesh assigns them",
        ),
        (f"{L0}.protocl", "HBONE", f"{L0}.protocl", "unknown field; did you mean 'protocol'?"),
        (
            "metadata.name",
            "Waypoint",
            "metadata.name",
            "must be a DNS-1123 label (lowercase letters, digits and '-', starting and ending "
            "with a letter or digit), got 'Waypoint'",
        ),
    ],
)
def test_gateway_refused(check_case, path, value, field, message):
    assert (field, message) in check_case(GATEWAY, path, value)


def test_a_name_too_long_for_a_label_value_is_refused(check_case):
    """Gateway API allows 253 characters; the name is also a label value, so 63 is the limit."""
    problems = check_case(GATEWAY, "metadata.name", "w" * 64)

    assert problems == [("metadata.name", "must be at most 63 characters, got 64")]


def test_gateway_is_a_namespaced_kind_nodemesh_serves():
    spec = kinds.lookup("gateway.networking.k8s.io/v1", "Gateway")

    assert spec is not None and spec.namespaced
    assert kinds.api_versions_of("Gateway") == ["gateway.networking.k8s.io/v1"]
    assert "gateway.networking.k8s.io/v1 Gateway" in kinds.supported_kinds()


def test_another_api_version_is_refused_with_the_served_one(check_case):
    problems = check_case(GATEWAY, "apiVersion", "gateway.networking.k8s.io/v1beta1")

    assert problems == [
        (
            "apiVersion",
            "Gateway is served as gateway.networking.k8s.io/v1 by nodemesh, not "
            "'gateway.networking.k8s.io/v1beta1'",
        )
    ]


@pytest.mark.parametrize(
    ("obj", "expected"),
    [
        (GATEWAY, True),
        ({**GATEWAY, "spec": {"gatewayClassName": "istio"}}, False),
        ({**GATEWAY, "spec": None}, False),
        ({**GATEWAY, "spec": "nodemesh-waypoint"}, False),
        ({"kind": "Gateway", "metadata": {"name": "x"}}, False),
    ],
)
def test_is_waypoint_gateway_reads_only_the_class(obj, expected):
    assert is_waypoint_gateway(obj) is expected
