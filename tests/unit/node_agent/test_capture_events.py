"""Capture events, sans-I/O: ring-buffer bytes in, flow events out.

Records are packed with `struct` from the C layout (bpf/nodemesh_types.h, struct
nodemesh_event_v2), not through the ctypes mirror, so a field moved on one side only fails here.
The join is driven the way the agent drives it: the hook's record, then the accept
(`CaptureJoin.accepted`, outbound), then the connection record opening in a real ConnectionTable.
"""

from __future__ import annotations

import socket
import struct
from dataclasses import replace

import pytest
from prometheus_client import CollectorRegistry

from node_agent import bpf_types as bt
from node_agent.capture_events import Capture, CaptureJoin, boot_offset, to_unix
from node_agent.policy import Decision, DecisionCode
from node_agent.routing import Route
from node_agent.telemetry import (
    AgentMetrics,
    ConnectionRecord,
    ConnectionTable,
    Direction,
    SecurityPolicy,
)
from nodemesh.flows import FlowRing, FlowVerdict, Point
from nodemesh.flows.agent import AgentFlows
from tests.unit.node_agent.test_telemetry import DB, DB_POD, WEB, WEB_ID, inbound

# time, netns cookie, socket cookie, src ip, dst ip, listener ip, src port, dst port,
# listener port, direction, reason, hook, 3 bytes of padding
LAYOUT = "=QQQ4s4s4sHHHBBB3x"
POD_NETNS, COOKIE = 4096, 77
BOOT_NS = 5_000_000_000  # 5 s after boot
OFFSET = 1_700_000_000.0  # Unix time at boot


def record(reason=bt.Reason.REDIRECTED, direction=bt.Direction.OUTBOUND, **fields) -> bytes:
    captured = reason is bt.Reason.REDIRECTED
    values = {
        "time": BOOT_NS,
        "netns": POD_NETNS,
        "cookie": COOKIE if direction is bt.Direction.OUTBOUND else 0,
        "src": "0.0.0.0",
        "dst": "198.18.2.9",
        "listener": "127.0.0.1" if captured else "0.0.0.0",
        "src_port": 0,
        "dst_port": 5432,
        "listener_port": 15001 if captured else 0,
        "hook": bt.HookCode.CONNECT4,
    } | fields
    ips = [socket.inet_aton(values[k]) for k in ("src", "dst", "listener")]
    ports = [values[k] for k in ("src_port", "dst_port", "listener_port")]
    head = (values["time"], values["netns"], values["cookie"])
    tail = (direction, reason, values["hook"])
    return struct.pack(LAYOUT, *head, *ips, *ports, *tail)


def decode(data: bytes) -> bt.CaptureEvent:
    return bt.CaptureEvent.from_bytes(data, {POD_NETNS: "web-uid"}.get)


def test_the_c_layout_and_the_ctypes_mirror_agree():
    assert struct.calcsize(LAYOUT) == 48 == len(bytes(bt.Event()))


def test_a_captured_connect_decodes_with_its_original_destination_and_listener():
    event = decode(record(src_port=40000))
    assert event.pod_id == "web-uid" and event.captured
    assert (event.direction, event.reason, event.hook) == (
        bt.Direction.OUTBOUND,
        bt.Reason.REDIRECTED,
        bt.HookCode.CONNECT4,
    )
    assert event.original_dst == ("198.18.2.9", 5432)
    assert event.listener == ("127.0.0.1", 15001)
    assert event.src == ("0.0.0.0", 40000) and event.socket_cookie == COOKIE


def test_a_passed_connect_has_no_listener_and_says_why():
    event = decode(record(bt.Reason.AGENT_MARK))
    assert not event.captured and event.listener is None
    assert event.reason.label == "agent-mark"


def test_an_inbound_capture_carries_the_client():
    data = record(
        direction=bt.Direction.INBOUND,
        src="198.18.1.5",
        src_port=41000,
        dst="198.18.2.9",
        dst_port=8080,
        listener_port=15006,
        hook=bt.HookCode.SK_LOOKUP,
    )
    event = decode(data)
    assert (event.src, event.original_dst) == (("198.18.1.5", 41000), ("198.18.2.9", 8080))
    assert event.listener == ("127.0.0.1", 15006) and event.socket_cookie == 0


def test_an_unknown_pod_decodes_without_a_pod_id():
    assert bt.CaptureEvent.from_bytes(record(), lambda cookie: None).pod_id is None


@pytest.mark.parametrize("size", [0, 40, 47, 49, 56])
def test_a_record_of_another_size_is_refused_naming_both_sides(size):
    with pytest.raises(bt.EventDecodeError, match=f"{size} bytes, expected 48.*bpf_types.py"):
        decode(record()[:size].ljust(size, b"\0"))


@pytest.mark.parametrize(
    ("field", "value"), [("reason", 99), ("reason", 0), ("hook", 9), ("direction", 3)]
)
def test_a_code_this_agent_does_not_know_is_refused(field, value):
    data = bytearray(record())
    data[{"direction": 42, "reason": 43, "hook": 44}[field]] = value
    with pytest.raises(bt.EventDecodeError, match="newer than the agent"):
        decode(bytes(data))


def test_boot_clock_stamps_become_unix_time():
    offset = boot_offset(wall=lambda: 1_700_000_100.5, boot=lambda: 100.25)
    assert offset == 1_700_000_000.25
    assert to_unix(5_000_000_000, offset) == 1_700_000_005.25
    assert to_unix(0, offset) == offset


def capture(reason=bt.Reason.REDIRECTED, **fields) -> Capture:
    return Capture.of(decode(record(reason, **fields)), OFFSET)


def inbound_capture(reason=bt.Reason.REDIRECTED, src_port=41000, pod=DB_POD.uid) -> Capture:
    data = record(
        reason,
        direction=bt.Direction.INBOUND,
        src="198.18.1.5",
        src_port=src_port,
        listener_port=15006 if reason is bt.Reason.REDIRECTED else 0,
        hook=bt.HookCode.SK_LOOKUP,
    )
    return Capture.of(bt.CaptureEvent.from_bytes(data, {POD_NETNS: pod}.get), OFFSET)


def test_only_a_captured_connection_waits_for_its_record():
    join = CaptureJoin(wait=2.0)
    passed, to_hbone = capture(bt.Reason.EXCLUDED), inbound_capture(bt.Reason.HBONE_PORT)
    assert join.add(passed, now=0.0) == [passed]
    assert join.add(to_hbone, now=0.0) == [to_hbone]  # one tunnel, many streams: no key
    held, arriving = capture(), inbound_capture()
    assert join.add(held, now=0.0) == [] and join.add(arriving, now=1.0) == []
    assert len(join) == 2
    assert join.expired(now=1.9) == []
    assert join.expired(now=2.0) == [held] and join.expired(now=3.0) == [arriving]
    assert len(join) == 0


def test_an_accepted_connection_claims_its_capture_once():
    join = CaptureJoin()
    held = capture()
    join.add(held, now=0.0)
    assert join.claim("web-uid", 40000) is None  # not accepted yet
    join.accepted("web-uid", 40000, COOKIE)
    assert join.claim("web-uid", 40001) is None  # another connection
    assert join.claim("web-uid", 40000) == held
    assert join.claim("web-uid", 40000) is None and len(join) == 0


def test_an_inbound_capture_is_claimed_by_its_pod_and_client_address():
    join = CaptureJoin()
    held = inbound_capture()
    join.add(held, now=0.0)
    assert join.claim_inbound(DB_POD.uid, ("198.18.1.5", 41001)) is None  # another client port
    assert join.claim_inbound(WEB.uid, ("198.18.1.5", 41000)) is None  # another pod
    assert join.claim_inbound(DB_POD.uid, ("198.18.1.5", 41000)) == held
    assert join.claim_inbound(DB_POD.uid, ("198.18.1.5", 41000)) is None and len(join) == 0


def test_a_client_port_reused_before_the_claim_writes_the_older_capture_alone():
    join = CaptureJoin()
    older, newer = inbound_capture(), replace(inbound_capture(), time=OFFSET + 6.0)
    assert join.add(older, now=0.0) == []
    assert join.add(newer, now=1.0) == [older]
    assert join.claim_inbound(DB_POD.uid, ("198.18.1.5", 41000)) == newer


def test_beyond_the_limit_the_oldest_capture_is_written_alone():
    join = CaptureJoin(limit=2)
    first, second, third = (capture(cookie=c) for c in (1, 2, 3))
    assert join.add(first, 0.0) == [] and join.add(second, 0.0) == []
    assert join.add(third, 0.0) == [first]


class Claims:
    """The agent's CaptureEvents as AgentFlows sees it, without its ring: claim(record)."""

    def __init__(self, join: CaptureJoin) -> None:
        self.claim = join.claim_record


@pytest.fixture
def flows():
    ring = FlowRing(16)
    hooks = AgentFlows("node1", ring)
    table = ConnectionTable(
        AgentMetrics(CollectorRegistry()), lambda line: None, wall=lambda: OFFSET + 6, hooks=hooks
    )
    return hooks, table, ring


def written(ring: FlowRing):
    return [e for _, e in ring.since(0).events]


def outbound_record() -> ConnectionRecord:
    return ConnectionRecord(
        direction=Direction.OUTBOUND,
        source_address=("127.0.0.1", 40000),
        destination_address=("198.18.2.9", 5432),
        source=WEB,
        destination=DB,
        source_principal=WEB_ID,
        route=Route.DIRECT,
    )


def test_a_joined_capture_is_written_on_the_connections_flow_before_the_route(flows):
    hooks, table, ring = flows
    join = CaptureJoin()
    hooks.captures = Claims(join)
    join.add(capture(), now=0.0)
    join.accepted(WEB.uid, 40000, COOKIE)
    record = table.open(outbound_record())
    captured, routed = written(ring)
    assert (captured.point, routed.point) == (Point.CAPTURED, Point.SOURCE_AGENT)
    assert captured.flow_id == routed.flow_id == f"node1/{record.id}"
    assert captured.time == OFFSET + 5.0  # when connect() was captured, not when accepted
    assert captured.verdict is FlowVerdict.FORWARDED and captured.route == "captured"
    assert captured.source == routed.source  # the pod, 127.0.0.1:40000, its identity
    assert captured.destination.address == "198.18.2.9:5432"
    assert captured.reason == "connect4: 198.18.2.9:5432 redirected to 127.0.0.1:15001"


def test_a_connection_with_no_capture_writes_only_its_route(flows):
    hooks, table, ring = flows
    hooks.captures = Claims(CaptureJoin())
    table.open(outbound_record())
    assert [e.point for e in written(ring)] == [Point.SOURCE_AGENT]


def test_a_passed_connect_is_written_alone_with_its_reason(flows):
    hooks, _, ring = flows
    hooks.capture(capture(bt.Reason.AGENT_MARK, src_port=41000), WEB)
    (event,) = written(ring)
    assert (event.point, event.route, event.flow_id) == (
        Point.CAPTURED,
        "passthrough",
        "node1/capture-1",
    )
    assert event.reason.startswith("connect4: 198.18.2.9:5432 passed, agent-mark (")
    assert (event.source.workload, event.source.address) == (
        f"{WEB.namespace}/{WEB.name}",
        "127.0.0.1:41000",
    )


def test_an_inbound_capture_names_the_client_and_the_pod(flows):
    hooks, _, ring = flows
    data = record(
        direction=bt.Direction.INBOUND,
        src="198.18.1.5",
        src_port=41000,
        listener_port=15006,
        hook=bt.HookCode.SK_LOOKUP,
    )
    hooks.capture(Capture.of(decode(data), OFFSET), DB)
    (event,) = written(ring)
    assert event.source.address == "198.18.1.5:41000" and event.source.workload is None
    assert event.destination.workload == f"{DB.namespace}/{DB.name}"
    assert event.reason == "sk_lookup: 198.18.2.9:5432 redirected to 127.0.0.1:15006"


ALLOWED = Decision(True, "ALLOW", DecisionCode.ALLOWED_NO_POLICY, "allowed: no policy")


def plaintext_record(port: int = 41000) -> ConnectionRecord:
    """What node_agent.pod records for a plaintext client: no principal, its real port."""
    return inbound(
        source_address=("198.18.1.5", port),
        destination_address=("198.18.2.9", 5432),
        security_policy=SecurityPolicy.NONE,
        source_principal=None,
        decision=ALLOWED,
    )


def test_an_inbound_capture_is_written_on_the_connections_flow_before_the_decision(flows):
    hooks, table, ring = flows
    join = CaptureJoin()
    hooks.captures = Claims(join)
    join.add(inbound_capture(), now=0.0)
    record = table.open(plaintext_record())
    captured, decided = written(ring)
    assert (captured.point, decided.point) == (Point.CAPTURED, Point.DESTINATION_AGENT)
    assert captured.flow_id == decided.flow_id == f"node1/{record.id}"
    assert captured.time == OFFSET + 5.0  # when the SYN was looked up, not when accepted
    assert captured.source == decided.source  # the client workload, 198.18.1.5:41000
    assert captured.source.address == "198.18.1.5:41000" and captured.source.identity is None
    assert captured.destination.workload == f"{DB_POD.namespace}/{DB_POD.name}"
    assert captured.reason == "sk_lookup: 198.18.2.9:5432 redirected to 127.0.0.1:15006"
    assert len(join) == 0


def test_an_inbound_record_of_another_client_port_leaves_the_capture_waiting(flows):
    hooks, table, ring = flows
    join = CaptureJoin()
    hooks.captures = Claims(join)
    join.add(inbound_capture(), now=0.0)
    table.open(plaintext_record(port=41001))
    table.open(inbound(decision=ALLOWED, source_address=("198.18.1.5", 0)))  # over HBONE
    assert [e.point for e in written(ring)] == [Point.DESTINATION_AGENT] * 2
    assert len(join) == 1  # written alone once it expires
