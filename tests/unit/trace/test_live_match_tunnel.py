"""The exact join: the upstream tunnel key of a request names its destination decision.

Each case is a recorded event set (the shapes `waypoint.flows` and `nodemesh.flows.agent` write):
a tunnel opened for the probe, a tunnel reused from an earlier request, and concurrent look-alike
traffic to the same pod, which the address-and-time heuristic used to take for the probe.
"""

from __future__ import annotations

from dataclasses import replace

from nodemesh.flows import Endpoint
from nodemesh.trace.hops import Component
from nodemesh.trace.live_hops import Context, build_trace
from nodemesh.trace.live_match import ProbeKey, match
from nodemesh.trace.live_probe import ProbeResult
from tests.unit.flows.events import T0
from tests.unit.trace.live_events import (
    DELIVERED,
    DESTINATION,
    PORT,
    SOURCE,
    TRACE_ID,
    TUNNEL,
    WAYPOINT,
)

KEY = ProbeKey("shop", "client", PORT, TRACE_ID, T0, T0 + 0.1)
OURS = "198.18.2.9:41234>198.18.2.7:15008#1"
OTHER = "198.18.2.9:41234>198.18.2.7:15008#3"  # same connection, another CONNECT stream
PROBE_TP = f"00-{TRACE_ID}-00f067aa0ba902b7-01"
EARLIER_TP = f"00-{'a' * 32}-00f067aa0ba902b7-01"

WAYPOINT_ON_OURS = replace(WAYPOINT, tunnel=OURS)


def decision(tunnel: str | None, at: float, flow: str, traceparent: str | None = None):
    return replace(DESTINATION, time=at, flow_id=flow, tunnel=tunnel, traceparent=traceparent)


def test_a_tunnel_opened_for_the_probe_is_its_decision_and_delivery():
    ours = decision(OURS, T0 + 0.02, "node2/3", PROBE_TP)
    delivered = replace(DELIVERED, flow_id="node2/3", tunnel=OURS)
    o = match([SOURCE, WAYPOINT_ON_OURS, ours, TUNNEL, delivered], KEY)
    assert (o.destination_agent, o.delivered, o.reused, o.exact) == (ours, delivered, False, True)


def test_a_reused_tunnel_names_the_decision_made_when_it_opened():
    opened = decision(OURS, T0 - 30, "node2/1", EARLIER_TP)
    newer_elsewhere = decision(OTHER, T0 - 5, "node2/2", EARLIER_TP)  # the old guess's pick
    o = match([SOURCE, TUNNEL, WAYPOINT_ON_OURS], KEY, [opened, newer_elsewhere])
    assert (o.destination_agent, o.reused, o.exact, o.delivered) == (opened, True, True, None)


def test_concurrent_look_alike_traffic_is_not_taken_for_the_probe():
    # Another request to web-v1 opened its own tunnel inside the probe's window, first: the
    # address-and-time heuristic picked it. The probe's request rode a tunnel opened earlier.
    look_alike = decision(OTHER, T0 + 0.005, "node2/9", EARLIER_TP)
    ours = decision(OURS, T0 - 2, "node2/4", EARLIER_TP)
    events = [SOURCE, look_alike, WAYPOINT_ON_OURS, TUNNEL]
    o = match(events, KEY, [ours])
    assert o.destination_agent == ours and o.reused
    keyless = [replace(e, tunnel=None) for e in events]
    assert match(keyless, KEY, [ours]).destination_agent.flow_id == "node2/9"  # the old mistake


def test_without_a_traceparent_a_decision_before_the_request_counts_as_reused():
    assert match([SOURCE, WAYPOINT_ON_OURS], KEY, [decision(OURS, T0 - 1, "node2/1")]).reused
    fresh = decision(OURS, WAYPOINT.time + 0.001, "node2/5")
    assert not match([SOURCE, WAYPOINT_ON_OURS, fresh], KEY).reused


def test_a_decision_on_the_same_key_after_the_probe_is_not_it():
    # The key's client port can come back on a later connection; a decision after the probe's
    # window belongs to that one.
    later = decision(OURS, KEY.end + 10, "node2/8", EARLIER_TP)
    o = match([SOURCE, WAYPOINT_ON_OURS, later], KEY)
    assert o.destination_agent is None


def test_an_older_destination_agent_without_keys_falls_back_inexactly():
    keyless = decision(None, T0 + 0.02, "node2/3")
    o = match([SOURCE, WAYPOINT_ON_OURS, keyless, TUNNEL], KEY)
    assert o.destination_agent == keyless and not o.exact


def test_a_direct_tunnel_is_joined_by_the_source_agents_tunnel_key():
    web = DESTINATION.destination
    direct = replace(SOURCE, route="direct", destination=web)
    client = Endpoint("shop", "client", SOURCE.source.identity, "198.18.1.5")
    ours = replace(decision(OURS, T0 + 0.02, "node2/3"), source=client)
    look_alike = replace(decision(OTHER, T0 + 0.01, "node2/2"), source=client)  # same pod, first
    tunnel_out = replace(direct, time=T0 + 0.05, point=TUNNEL.point, tunnel=OURS)
    o = match([direct, look_alike, ours, tunnel_out], KEY)
    assert (o.destination_agent, o.exact, o.reused) == (ours, True, False)


def test_the_trace_says_when_a_reused_tunnel_opened():
    opened = decision(OURS, T0 - 30, "node2/1", EARLIER_TP)
    o = match([SOURCE, TUNNEL, WAYPOINT_ON_OURS], KEY, [opened])
    ctx = Context("shop/client", "Service shop/web", "GET /", T0, PORT)
    result = ProbeResult(True, "HTTP 200", 200)
    trace = build_trace(o, result, ctx)
    hop = next(h for h in trace.hops if h.component is Component.DESTINATION_AGENT)
    assert "decided when the tunnel opened at" in hop.reason
    assert "30.0 s before the probe; reused for this request" in hop.reason
    assert ("tunnel", OURS) in hop.details
    assert not any("matched by address and time" in n for n in trace.notes)


def test_the_trace_warns_when_the_match_was_a_guess():
    keyless = decision(None, T0 + 0.02, "node2/3")
    o = match([SOURCE, WAYPOINT_ON_OURS, keyless, TUNNEL], KEY)
    trace = build_trace(o, ProbeResult(True, "HTTP 200", 200), Context("a", "b", None, T0, PORT))
    assert any("matched by address and time" in n for n in trace.notes)
