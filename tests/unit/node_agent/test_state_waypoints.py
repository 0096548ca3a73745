"""The agent's waypoints: kept by (namespace, name); one that cannot take traffic fails closed."""

from __future__ import annotations

import dataclasses

import pytest

from controller import scope
from controller.model import Waypoint
from controller.model_waypoint import missing_waypoint
from controller.resources import to_message
from node_agent.state import AgentConfig, AgentState, WaypointUnavailable
from nodemesh.xds.resources import XdsResource

READY = Waypoint(
    name="waypoint",
    namespace="shop",
    identity="spiffe://cluster.local/ns/shop/sa/waypoint",
    addresses=("198.18.1.7",),
    hbone_port=15008,
    exists=True,
)
NO_POD = dataclasses.replace(READY, addresses=())
MISSING = missing_waypoint("shop", "east", "spiffe://cluster.local/ns/shop/sa/east")


def resource(obj) -> XdsResource:
    key = scope.key_of(obj)
    return XdsResource.build(key.type_url, key.name, to_message(obj).SerializeToString())


def state_with(*waypoints: Waypoint) -> AgentState:
    return AgentState.build((), (), (), (), (), waypoints)


def test_a_pushed_waypoint_is_kept_by_namespace_and_name():
    config = AgentConfig()

    rejected = config.apply(scope.WAYPOINT, [resource(READY), resource(MISSING)], [])

    assert rejected == {}
    assert dict(config.state.waypoints) == {("shop", "waypoint"): READY, ("shop", "east"): MISSING}
    assert config.state.waypoint("shop", "waypoint") == READY


def test_a_removed_waypoint_is_forgotten():
    config = AgentConfig()
    config.apply(scope.WAYPOINT, [resource(READY)], [])

    config.apply(scope.WAYPOINT, [], ["shop/waypoint"])

    assert config.state.waypoints == {}


def test_a_bad_waypoint_is_rejected_and_the_last_good_one_kept():
    config = AgentConfig()
    config.apply(scope.WAYPOINT, [resource(READY)], [])
    bad = to_message(READY)
    bad.identity = "spiffe://cluster.local/ns/shop/sa/web"  # not the waypoint's own identity
    update = XdsResource.build(scope.WAYPOINT, "shop/waypoint", bad.SerializeToString())

    rejected = config.apply(scope.WAYPOINT, [update], [])

    assert list(rejected) == ["shop/waypoint"]
    assert config.state.waypoint("shop", "waypoint") == READY


@pytest.mark.parametrize(
    ("held", "name", "reason"),
    [
        ((NO_POD,), "waypoint", "waypoint shop/waypoint has no ready pod"),
        ((MISSING,), "east", "waypoint shop/east does not exist: no Gateway 'east'"),
        ((), "waypoint", "waypoint shop/waypoint is unknown to this agent"),
        ((READY,), "other", "waypoint shop/other is unknown to this agent"),
    ],
    ids=["no-ready-pod", "no-gateway", "nothing-held", "another-name"],
)
def test_a_waypoint_that_cannot_take_traffic_raises_with_the_reason(held, name, reason):
    with pytest.raises(WaypointUnavailable) as caught:
        state_with(*held).waypoint("shop", name)

    assert str(caught.value).startswith(reason)
    assert (caught.value.namespace, caught.value.name) == ("shop", name)
    assert caught.value.reason == str(caught.value)


def test_refusals_say_what_to_do_next():
    messages = []
    for held, name in (((NO_POD,), "waypoint"), ((MISSING,), "east"), ((), "x")):
        with pytest.raises(WaypointUnavailable) as caught:
            state_with(*held).waypoint("shop", name)
        messages.append(caught.value.reason)

    assert "meshctl waypoint list -n shop" in messages[0]
    assert "meshctl waypoint apply -n shop --name east" in messages[1]
    assert "meshctl status" in messages[2]
