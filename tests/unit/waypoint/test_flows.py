"""waypoint.flows: one flow event per finished request, next to metrics, log and spans."""

from __future__ import annotations

from nodemesh.flows import FlowRing, FlowVerdict, Point
from nodemesh.telemetry import ResponseFlag
from tests.unit.waypoint.records import CART_ID, TRACE_ID, WEB_ID, record
from waypoint.flows import FlowObserver, request_event
from waypoint.messages import ResponseHead
from waypoint.record import AuthzOutcome

REPORTER = "waypoint shop/waypoint"


def test_a_forwarded_request_carries_route_status_latency_and_trace():
    e = request_event(record(route_name="shop/r/0"), REPORTER, "1")
    assert (e.point, e.verdict, e.reporter) == (Point.WAYPOINT, FlowVerdict.FORWARDED, REPORTER)
    assert e.source.workload == "shop/web-5d4f8-abcde" and e.source.identity == WEB_ID
    assert e.destination.identity == CART_ID and e.service == "shop/cart"
    h = e.http
    assert (h.method, h.path, h.status, h.latency_ms) == ("GET", "/cart/items?page=2", 200, 12.5)
    assert h.trace_id == TRACE_ID and h.route == "shop/r/0"
    assert e.policy is None


def test_a_denied_request_names_the_policy_and_rule():
    authz = AuthzOutcome(False, "shop/web-public", 1, "no ALLOW rule matched")
    e = request_event(record(authz=authz, response=ResponseHead(403)), REPORTER, "2")
    assert (e.verdict, e.policy, e.rule, e.reason) == (
        FlowVerdict.DENIED,
        "shop/web-public",
        1,
        "no ALLOW rule matched",
    )


def test_an_allowing_policy_is_not_reported_as_the_decider_of_a_denial():
    e = request_event(record(authz=AuthzOutcome(True, "shop/web-public", 0)), REPORTER, "3")
    assert e.verdict is FlowVerdict.FORWARDED and e.policy is None


def test_mesh_failures_are_errors_but_an_apps_own_5xx_is_forwarded():
    failed = record(
        response=ResponseHead(503), flags=frozenset({ResponseFlag.UPSTREAM_CONNECT_FAILURE})
    )
    assert request_event(failed, REPORTER, "4").verdict is FlowVerdict.ERROR
    assert request_event(record(response=None), REPORTER, "5").verdict is FlowVerdict.ERROR
    no_route = record(response=ResponseHead(404), flags=frozenset({ResponseFlag.NO_ROUTE}))
    assert request_event(no_route, REPORTER, "7").verdict is FlowVerdict.ERROR
    app_500 = record(response=ResponseHead(500))
    assert request_event(app_500, REPORTER, "6").verdict is FlowVerdict.FORWARDED


def test_the_observer_keeps_its_other_outputs_and_fills_the_ring():
    ring, lines = FlowRing(4), []
    observer = FlowObserver(None, lines.append, None, ring=ring, waypoint="shop/waypoint")
    observer.finish(record(request_id=None))
    observer.finish(record(request_id="req-7"))
    assert len(lines) == 2
    first, second = (e for _, e in ring.since(0).events)
    assert first.flow_id == "shop/waypoint/1" and second.flow_id == "shop/waypoint/req-7"
