"""The agent's flow events, built from real ConnectionRecords through the table's hooks.

A ConnectionTable with `hooks=AgentFlows(...)` is driven the way node_agent.pod drives it, and
the ring is read back: each outcome (routed, refused, denied by policy, waypoint-only refusal,
delivered, connect failure) must leave the right point, verdict, policy and rule.
"""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry

from node_agent.policy import Decision, DecisionCode
from node_agent.routing import Route
from node_agent.telemetry import (
    AgentMetrics,
    ConnectionRecord,
    ConnectionTable,
    ResponseFlag,
)
from nodemesh.flows import FlowRing, FlowVerdict, Point
from nodemesh.flows.agent import AgentFlows
from tests.unit.node_agent import test_telemetry as telemetry_records
from tests.unit.node_agent.test_telemetry import DB, DENY, T0, WEB, WEB_ID

ALLOW = Decision(True, "ALLOW", DecisionCode.ALLOWED_NO_POLICY, "no policy applies")


@pytest.fixture
def env():
    ring = FlowRing(16)
    table = ConnectionTable(
        AgentMetrics(CollectorRegistry()),
        lambda line: None,
        wall=lambda: T0,
        hooks=AgentFlows("node1", ring),
    )
    return table, ring


def events(ring: FlowRing):
    return [e for _, e in ring.since(0).events]


def outbound(route: Route) -> ConnectionRecord:
    return telemetry_records.outbound(destination_address=("198.18.2.9", 5432), route=route)


def inbound(decision: Decision | None) -> ConnectionRecord:
    return telemetry_records.inbound(
        source_address=("198.18.1.2", 0),
        destination_address=("198.18.2.9", 5432),
        source=WEB,
        destination=DB,
        decision=decision,
    )


def test_a_routed_connection_reports_the_route_then_the_tunnel_outcome(env):
    table, ring = env
    record = table.open(outbound(Route.WAYPOINT))
    table.close(record, sent=10, received=20)
    opened, closed = events(ring)
    assert (opened.point, opened.verdict, opened.route) == (
        Point.SOURCE_AGENT,
        FlowVerdict.FORWARDED,
        "waypoint",
    )
    assert opened.source.workload == "shop/web-5d4f8-abcde" and opened.source.identity == WEB_ID
    assert opened.destination.address == "198.18.2.9:5432" and opened.service == "shop/db"
    assert (closed.point, closed.verdict) == (Point.TUNNEL_OUT, FlowVerdict.FORWARDED)
    assert "10 bytes sent, 20 received" in closed.reason
    assert opened.flow_id == closed.flow_id == f"node1/{record.id}"
    assert opened.reporter == "agent node1"


def test_a_refused_route_is_one_error_with_the_routing_reason(env):
    table, ring = env
    record = table.open(outbound(Route.NO_ENDPOINTS))
    table.close(record, "shop/db:5432 has no ready endpoint", ResponseFlag.NO_HEALTHY_UPSTREAM)
    (only,) = events(ring)
    assert (only.point, only.verdict) == (Point.SOURCE_AGENT, FlowVerdict.ERROR)
    assert only.reason == "shop/db:5432 has no ready endpoint"


def test_a_tunnel_the_far_side_refused_is_denied_at_tunnel_out(env):
    table, ring = env
    record = table.open(outbound(Route.DIRECT))
    table.close(record, "direct: tunnel refused: 403", ResponseFlag.DENY)
    assert events(ring)[-1].verdict is FlowVerdict.DENIED


def test_passthrough_ends_at_the_source_agent(env):
    table, ring = env
    record = table.open(outbound(Route.PASSTHROUGH))
    table.close(record, "connection refused", ResponseFlag.CONNECT)
    assert [(e.point, e.verdict) for e in events(ring)] == [
        (Point.SOURCE_AGENT, FlowVerdict.FORWARDED),
        (Point.SOURCE_AGENT, FlowVerdict.ERROR),
    ]


def test_an_inbound_denial_names_the_policy_and_rule_once(env):
    table, ring = env
    record = table.open(inbound(DENY))
    table.close(record, DENY.reason, ResponseFlag.DENY)
    (only,) = events(ring)
    assert (only.point, only.verdict) == (Point.DESTINATION_AGENT, FlowVerdict.DENIED)
    assert (only.policy, only.rule, only.reason) == ("shop/no-db", 0, DENY.reason)
    assert only.route is None


def test_an_allowed_inbound_connection_is_decided_then_delivered(env):
    table, ring = env
    record = table.open(inbound(ALLOW))
    table.close(record, sent=5, received=7)
    decided, delivered = events(ring)
    assert (decided.point, decided.verdict, decided.policy) == (
        Point.DESTINATION_AGENT,
        FlowVerdict.FORWARDED,
        None,
    )
    assert (delivered.point, delivered.verdict) == (Point.DELIVERED, FlowVerdict.FORWARDED)


def test_a_port_the_app_refused_is_an_error_at_delivery(env):
    table, ring = env
    record = table.open(inbound(ALLOW))
    table.close(record, "db-0 refused port 5432: Connection refused", ResponseFlag.CONNECT)
    assert (events(ring)[-1].point, events(ring)[-1].verdict) == (
        Point.DELIVERED,
        FlowVerdict.ERROR,
    )


def test_a_waypoint_only_refusal_is_denied_with_its_reason(env):
    table, ring = env
    record = table.open(inbound(None))
    table.close(record, "shop/db-0 takes traffic only through its waypoint", ResponseFlag.DENY)
    (only,) = events(ring)
    assert (only.point, only.verdict) == (Point.DESTINATION_AGENT, FlowVerdict.DENIED)
    assert "only through its waypoint" in only.reason


def test_a_broken_record_does_not_break_the_connection(env, caplog):
    table, ring = env
    record = outbound(Route.DIRECT)
    record.source_address = None  # not an address: building the event fails
    table.open(record)  # must not raise
    assert events(ring) == [] and "could not build a flow event" in caplog.text
