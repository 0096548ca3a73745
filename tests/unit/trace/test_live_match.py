from dataclasses import replace

from nodemesh.flows import Endpoint, FlowVerdict
from nodemesh.trace.live_match import ProbeKey, match
from tests.unit.flows.events import T0
from tests.unit.trace.live_events import (
    ALL,
    CLIENT,
    DELIVERED,
    DESTINATION,
    PORT,
    SOURCE,
    TRACE_ID,
    TUNNEL,
    WAYPOINT,
    denied_at_waypoint,
)

KEY = ProbeKey("shop", "client", PORT, TRACE_ID, T0, T0 + 0.1)


def test_every_hop_of_the_probe_is_found():
    o = match(ALL, KEY)
    assert (o.source_agent, o.tunnel_out, o.waypoint) == (SOURCE, TUNNEL, WAYPOINT)
    assert (o.destination_agent, o.delivered, o.reused) == (DESTINATION, DELIVERED, False)
    assert o.complete


def test_other_traffic_is_ignored():
    other_port = Endpoint("shop", "client", CLIENT.identity, "198.18.1.5:40000")
    noise = [
        replace(SOURCE, source=other_port, flow_id="node1/8"),
        replace(WAYPOINT, http=replace(WAYPOINT.http, trace_id="f" * 32)),
        replace(DESTINATION, time=T0 + 5, flow_id="node2/9"),
    ]
    o = match(noise, KEY)
    assert o.events == [] and not o.complete


def test_a_waypoint_denial_completes_the_probe_without_a_destination():
    o = match([SOURCE, denied_at_waypoint()], KEY)
    assert o.refused and o.complete and o.destination_agent is None


def test_waiting_for_the_tunnel_close_before_completing():
    assert not match([SOURCE, WAYPOINT, DESTINATION], KEY).complete


def test_a_reused_upstream_connection_is_found_in_history():
    earlier = replace(DESTINATION, time=T0 - 30, flow_id="node2/1")
    closed = replace(DESTINATION, time=T0 - 60, flow_id="node2/0")
    history = [closed, replace(DELIVERED, flow_id="node2/0", time=T0 - 59), earlier]
    o = match([SOURCE, TUNNEL, WAYPOINT], KEY, history)
    assert o.destination_agent == earlier and o.reused and o.delivered is None


def test_a_direct_tunnel_matches_the_destination_by_client_address():
    web = DESTINATION.destination
    direct = replace(SOURCE, route="direct", destination=web)
    arrival = replace(DESTINATION, source=Endpoint("shop", "client", CLIENT.identity, "198.18.1.5"))
    o = match([direct, arrival, replace(DESTINATION, flow_id="node2/4")], KEY)
    assert o.destination_agent == arrival


def test_an_l4_probe_matches_no_waypoint_event():
    key = replace(KEY, trace_id=None)
    assert match(ALL, key).waypoint is None


def test_an_error_at_the_source_agent_is_a_refusal():
    error = replace(SOURCE, verdict=FlowVerdict.ERROR, route="no_endpoint")
    o = match([error], KEY)
    assert o.source_agent == error and o.complete
