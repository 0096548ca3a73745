"""FlowEvent's JSON form: every field survives the wire, and bad input names what is wrong."""

from __future__ import annotations

import pytest

from nodemesh.flows import Endpoint, FlowEvent, FlowEventError, FlowVerdict, Point
from nodemesh.trace import Component
from tests.unit.flows.events import event


def test_a_full_event_round_trips_through_json_data():
    original = event(policy="shop/web-public", rule=2, route="waypoint")
    assert FlowEvent.from_dict(original.to_dict()) == original


TUNNEL_KEY = "198.18.2.9:41234>198.18.2.7:15008#3"
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def test_the_tunnel_key_and_traceparent_round_trip():
    original = event(tunnel=TUNNEL_KEY, traceparent=TRACEPARENT)
    data = original.to_dict()
    assert (data["tunnel"], data["traceparent"]) == (TUNNEL_KEY, TRACEPARENT)
    assert FlowEvent.from_dict(data) == original


def test_an_older_components_event_without_a_tunnel_key_still_reads():
    data = event(tunnel=TUNNEL_KEY).to_dict()
    del data["tunnel"]
    read = FlowEvent.from_dict(data)
    assert read.tunnel is None and read.traceparent is None


def test_a_tunnel_key_that_is_not_text_names_the_field():
    data = event().to_dict() | {"tunnel": 3}
    with pytest.raises(FlowEventError, match="'tunnel' must be text"):
        FlowEvent.from_dict(data)


def test_an_l4_event_leaves_out_what_it_does_not_have():
    l4 = event(http=None, service=None, source=Endpoint(address="198.18.9.9"))
    data = l4.to_dict()
    assert "http" not in data and "service" not in data and "policy" not in data
    assert "tunnel" not in data and "traceparent" not in data
    assert data["source"] == {"address": "198.18.9.9"}
    assert FlowEvent.from_dict(data) == l4


def test_values_are_the_strings_operators_type():
    data = event(verdict=FlowVerdict.DENIED, point=Point.DESTINATION_AGENT).to_dict()
    assert data["verdict"] == "DENIED" and data["point"] == "destination-agent"


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d.pop("point"), "without field 'point'"),
        (lambda d: d.update(verdict="MAYBE"), "malformed flow event"),
        (lambda d: d.update(source={"pod": "x"}), "malformed flow event"),
    ],
)
def test_a_malformed_event_raises_a_typed_error(mutate, message):
    data = event().to_dict()
    mutate(data)
    with pytest.raises(FlowEventError, match=message):
        FlowEvent.from_dict(data)


def test_every_point_maps_to_an_explain_component():
    assert {p.component for p in Point} <= set(Component)
    assert Point.WAYPOINT.component is Component.WAYPOINT_AUTHZ
    assert Point.DELIVERED.component is Component.DELIVERY


def test_endpoint_workload_is_namespace_and_name_or_none():
    assert Endpoint("shop", "web").workload == "shop/web"
    assert Endpoint(address="1.2.3.4").workload is None
