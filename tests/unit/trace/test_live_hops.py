from dataclasses import replace

from nodemesh.flows import FlowVerdict
from nodemesh.trace import Component, Verdict, render
from nodemesh.trace.live_hops import Context, build_trace
from nodemesh.trace.live_match import Observed
from nodemesh.trace.live_probe import ProbeResult
from tests.unit.flows.events import T0
from tests.unit.trace.live_events import (
    DELIVERED,
    DESTINATION,
    SOURCE,
    TUNNEL,
    WAYPOINT,
    denied_at_waypoint,
)

CTX = Context("shop/client", "Service shop/web (10.96.0.10:80)", "GET /public", T0, 23456)
OK = ProbeResult(True, "HTTP 200 in 12.0 ms", 200)


def test_an_allowed_probe_has_every_hop_in_path_order():
    trace = build_trace(Observed(SOURCE, TUNNEL, WAYPOINT, DESTINATION, DELIVERED), OK, CTX)
    assert [h.component for h in trace.hops] == [
        Component.CAPTURE,
        Component.SOURCE_AGENT,
        Component.TUNNEL,
        Component.WAYPOINT_AUTHZ,
        Component.WAYPOINT_ROUTE,
        Component.DESTINATION_AGENT,
        Component.DELIVERY,
    ]
    assert trace.mode == "live" and trace.verdict is Verdict.FORWARDED
    assert trace.stopped_at.component is Component.DELIVERY
    assert dict(trace.hops[1].details)["at"] == "+1.0 ms"
    assert dict(trace.hops[2].details)["source identity"].endswith("/sa/client")
    assert trace.hops[4].status == 200 and trace.notes == ("probe: HTTP 200 in 12.0 ms",)
    assert "verdict: FORWARDED at delivery" in render(trace)


def test_a_waypoint_denial_names_the_policy_and_rule():
    result = ProbeResult(False, "HTTP 403 in 2.0 ms", 403)
    trace = build_trace(Observed(SOURCE, TUNNEL, denied_at_waypoint()), result, CTX)
    last = trace.stopped_at
    assert (last.component, last.decision, last.policy, last.rule) == (
        Component.WAYPOINT_AUTHZ,
        "DENY",
        "shop/web-no-evil",
        0,
    )
    assert trace.verdict is Verdict.DENIED and trace.hops[-1] is last
    assert "by AuthorizationPolicy shop/web-no-evil rule 0 (HTTP 403)" in render(trace)


def test_the_tunnel_close_never_takes_the_blame_from_the_destination():
    tunnel = replace(TUNNEL, verdict=FlowVerdict.DENIED)
    dest = replace(DESTINATION, verdict=FlowVerdict.DENIED, policy="shop/l4", rule=1)
    direct = replace(SOURCE, route="direct")
    trace = build_trace(Observed(direct, tunnel, None, dest), ProbeResult(False, "reset"), CTX)
    assert trace.stopped_at.component is Component.DESTINATION_AGENT
    assert trace.stopped_at.policy == "shop/l4"


def test_a_waypoint_answering_itself_is_answered():
    answered = replace(WAYPOINT, verdict=FlowVerdict.ERROR, http=replace(WAYPOINT.http, status=404))
    trace = build_trace(Observed(SOURCE, None, answered), ProbeResult(False, "HTTP 404"), CTX)
    assert trace.verdict is Verdict.ANSWERED and trace.stopped_at.status == 404


def test_no_source_event_means_not_captured():
    trace = build_trace(Observed(), OK, CTX)
    (only,) = trace.hops
    assert only.decision == "not captured" and trace.verdict is Verdict.FORWARDED
    assert "23456" in only.reason


def test_a_failed_probe_nobody_refused_is_noted():
    trace = build_trace(Observed(SOURCE), ProbeResult(False, "timed out"), CTX)
    assert trace.verdict is Verdict.FORWARDED
    assert any("no component reported" in n for n in trace.notes)


def test_a_reused_connection_is_noted():
    trace = build_trace(Observed(SOURCE, TUNNEL, WAYPOINT, DESTINATION, reused=True), OK, CTX)
    assert any("reused an open connection" in n for n in trace.notes)
    assert trace.stopped_at.component is Component.DESTINATION_AGENT
