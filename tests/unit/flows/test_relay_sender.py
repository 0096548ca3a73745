"""The relay's trust rules (controller.flows_relay): who a caller is, and which events it may send.

The caller's identity comes from its verified certificate; these tests hand in identities and
protobuf batches directly, so every refusal is checked without a socket.
"""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry

from controller.flows_relay import (
    FlowRelay,
    FlowRelayError,
    RefusalReason,
    Sender,
    SourceKind,
    SourceStats,
    check_batch,
    sender_of,
)
from controller.metrics import ControllerMetrics
from nodemesh.flows.wire import to_message
from nodemesh.identity import NodeId, SpiffeId
from nodemesh.proto import flows_pb2
from tests.unit.flows.events import event

WAYPOINTS = {"shop/waypoint"}
AGENT1 = Sender(SourceKind.AGENT, "agent node1")


def test_a_node_certificate_is_its_agent():
    assert sender_of(NodeId("cluster.local", "node1"), WAYPOINTS.__contains__) == AGENT1


def test_a_known_waypoint_certificate_is_that_waypoint():
    who = sender_of(SpiffeId("cluster.local", "shop", "waypoint"), WAYPOINTS.__contains__)
    assert who == Sender(SourceKind.WAYPOINT, "waypoint shop/waypoint")


def test_a_workload_that_is_no_waypoint_is_refused_with_the_gateway_to_check():
    with pytest.raises(FlowRelayError, match="shop/client") as info:
        sender_of(SpiffeId("cluster.local", "shop", "client"), WAYPOINTS.__contains__)
    assert info.value.reason is RefusalReason.NOT_A_REPORTER


def test_events_of_the_sender_itself_pass():
    events = [event(reporter="agent node1", flow_id=f"node1/{i}") for i in range(3)]
    got = check_batch(AGENT1, [to_message(e) for e in events])
    assert got == events


def test_one_event_of_another_reporter_refuses_the_batch_naming_both():
    batch = [to_message(event(reporter="agent node1")), to_message(event(reporter="agent node2"))]
    with pytest.raises(FlowRelayError, match=r"'agent node2'.*'agent node1'") as info:
        check_batch(AGENT1, batch)
    assert info.value.reason is RefusalReason.SPOOFED_REPORTER


def test_an_unreadable_event_is_refused_as_malformed():
    msg = to_message(event(reporter="agent node1"))
    msg.verdict = "MAYBE"
    with pytest.raises(FlowRelayError) as info:
        check_batch(AGENT1, [msg])
    assert info.value.reason is RefusalReason.MALFORMED


def relay() -> FlowRelay:
    return FlowRelay(
        ControllerMetrics(CollectorRegistry()),
        WAYPOINTS.__contains__,
        capacity=4,
        clock=lambda: 7.0,
    )


def sample(r: FlowRelay, name: str, **labels) -> float:
    return r.metrics.registry.get_sample_value(name, labels) or 0.0


def test_receive_relays_counts_and_keeps_the_newest_in_the_ring():
    r, stats = relay(), SourceStats("agent")
    events = [to_message(event(reporter="agent node1", flow_id=f"n/{i}")) for i in range(5)]
    assert r.receive(AGENT1, stats, flows_pb2.FlowBatch(events=events, dropped=2)) == 5
    assert (stats.events, stats.dropped, stats.last_seen) == (5, 2, 7.0)
    assert [e.flow_id for _, e in r.ring.since(0).events] == ["n/1", "n/2", "n/3", "n/4"]
    assert sample(r, "nodemesh_flow_events_relayed_total", source_kind="agent") == 5
    assert sample(r, "nodemesh_flow_events_source_dropped_total", source_kind="agent") == 2


def test_receive_refuses_a_spoofed_batch_whole_and_counts_it():
    r, stats = relay(), SourceStats("agent")
    good = to_message(event(reporter="agent node1"))
    bad = to_message(event(reporter="waypoint shop/waypoint"))
    with pytest.raises(FlowRelayError):
        r.receive(AGENT1, stats, flows_pb2.FlowBatch(events=[good, bad]))
    assert len(r.ring) == 0 and stats.refused == 1 and stats.events == 0
    labels = {"source_kind": "agent", "reason": "spoofed_reporter"}
    assert sample(r, "nodemesh_flow_events_refused_total", **labels) == 2
