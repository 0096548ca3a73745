"""Waypoint <-> nodemesh.v1.Waypoint, and the checks an agent makes before it trusts one."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from controller import scope
from controller.model import Waypoint
from controller.model_waypoint import missing_waypoint
from controller.resources import ResourceError, from_resource, to_message, to_resources
from controller.translate import translate
from nodemesh.proto import mesh_pb2
from tests.unit.controller.test_translate import namespace, pod
from tests.unit.controller.test_translate_waypoints import gateway, waypoint_pod

READY = Waypoint(
    name="waypoint",
    namespace="shop",
    identity="spiffe://cluster.local/ns/shop/sa/waypoint",
    addresses=("198.18.1.7", "2001:db8::7"),
    hbone_port=15008,
    exists=True,
)
MISSING = missing_waypoint("shop", "east", "spiffe://example.org/ns/shop/sa/east")


def roundtrip(obj: Waypoint) -> Waypoint:
    key = scope.key_of(obj)
    return from_resource(key.type_url, to_message(obj).SerializeToString(), key.name)


def decode(message: mesh_pb2.Waypoint) -> Waypoint:
    return from_resource(scope.WAYPOINT, message.SerializeToString())


@pytest.mark.parametrize("obj", [READY, MISSING], ids=["ready", "missing"])
def test_a_waypoint_survives_the_trip(obj):
    assert roundtrip(obj) == obj


_names = st.from_regex(r"[a-z0-9]([-a-z0-9]{0,20}[a-z0-9])?", fullmatch=True)
_ips = st.ip_addresses().map(str)


@given(
    name=_names,
    ns=_names,
    addresses=st.lists(_ips, max_size=4, unique=True),
    port=st.integers(1, 65535),
)
def test_any_well_formed_waypoint_survives_the_trip(name, ns, addresses, port):
    obj = Waypoint(
        name=name,
        namespace=ns,
        identity=f"spiffe://cluster.local/ns/{ns}/sa/{name}",
        addresses=tuple(str(ipaddress.ip_address(a)) for a in addresses),
        hbone_port=port,
        exists=True,
    )
    assert roundtrip(obj) == obj


def test_the_message_carries_the_fields_by_their_names():
    message = to_message(READY)

    assert isinstance(message, mesh_pb2.Waypoint)
    assert (message.name, message.namespace, message.hbone_port, message.exists) == (
        "waypoint",
        "shop",
        15008,
        True,
    )
    assert list(message.addresses) == ["198.18.1.7", "2001:db8::7"]


def changed(**fields) -> mesh_pb2.Waypoint:
    message = to_message(READY)
    for field, value in fields.items():
        if isinstance(value, list):
            message.ClearField(field)
            getattr(message, field).extend(value)
        else:
            setattr(message, field, value)
    return message


@pytest.mark.parametrize(
    ("message", "error"),
    [
        (changed(name=""), "name is empty"),
        (changed(namespace=""), "namespace is empty"),
        (changed(identity="spiffe://cluster.local/ns/shop/sa/web"), "service account 'waypoint'"),
        (changed(identity="spiffe://cluster.local/ns/web/sa/waypoint"), "namespace 'shop'"),
        (changed(identity="shop/waypoint"), "identity:"),
        (changed(addresses=["198.18.1.300"]), "is not an IP address"),
        (changed(hbone_port=0), "hbone_port: 0 is not a port number"),
        (changed(hbone_port=70000), "hbone_port: 70000 is not a port number"),
        (changed(exists=False), "addresses are set but exists is false"),
    ],
    ids=[
        "no-name",
        "no-namespace",
        "other-service-account",
        "other-namespace",
        "not-spiffe",
        "bad-address",
        "port-zero",
        "port-range",
        "missing-with-addresses",
    ],
)
def test_an_invalid_waypoint_is_refused_alone(message, error):
    with pytest.raises(ResourceError) as caught:
        decode(message)

    assert error in str(caught.value)
    assert str(caught.value).startswith("Waypoint: ")


def test_a_waypoint_named_for_another_is_refused():
    payload = to_message(READY).SerializeToString()

    with pytest.raises(ResourceError, match="names must agree"):
        from_resource(scope.WAYPOINT, payload, "shop/other")


def test_a_translated_waypoint_is_sent_to_agents_and_to_itself():
    snapshot = translate(
        [namespace("shop"), gateway(), waypoint_pod("waypoint-a", "198.18.1.7"), pod(ns="shop")]
    ).snapshot

    for keys in (
        scope.for_node(snapshot, "node9"),
        scope.for_waypoint(snapshot, "shop", "waypoint"),
    ):
        sent = to_resources(snapshot, keys)[scope.WAYPOINT]
        assert list(sent) == ["shop/waypoint"]
        back = from_resource(scope.WAYPOINT, sent["shop/waypoint"].SerializeToString())
        assert back.addresses == ("198.18.1.7",)
