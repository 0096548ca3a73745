"""The tunnel key both ends of HBONE give one CONNECT stream, and the agent events that carry it.

The key must be equal at the client (a waypoint's upstream, a source agent) and at the server
(the destination agent) without any exchange: real TLS on loopback checks that, for two tunnels
sharing one pooled connection. The agent's flow events then carry the key and the traceparent
from the connection record, as `node_agent.pod` fills it.
"""

from __future__ import annotations

import asyncio

import pytest
from prometheus_client import CollectorRegistry

from node_agent.policy import Decision, DecisionCode
from node_agent.telemetry import AgentMetrics, ConnectionRecord, ConnectionTable, Direction
from nodemesh.flows import FlowRing, Point
from nodemesh.flows.agent import AgentFlows
from nodemesh.hbone.headers import tunnel_headers, tunnel_key
from nodemesh.hbone.protocol import HboneClientConnection
from nodemesh.hbone.shell import HboneConnectionShell
from tests.inprocess.test_hbone import Mesh, ca, read_all, run  # noqa: F401  (ca: a fixture)
from tests.unit.waypoint.records import record
from waypoint.flows import request_event

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def test_the_key_names_addresses_and_stream():
    assert tunnel_key(("198.18.2.9", 41234), ("198.18.2.7", 15008), 3) == (
        "198.18.2.9:41234>198.18.2.7:15008#3"
    )
    assert tunnel_key(("fd00::1", 5), ("fd00::2", 15008), 1) == "[fd00::1]:5>[fd00::2]:15008#1"


def test_both_ends_name_each_tunnel_alike_on_one_pooled_connection(ca):  # noqa: F811
    async def go():
        async with Mesh(ca) as mesh:
            headers = tunnel_headers("10.9.8.7", traceparent=TRACEPARENT)
            first = await mesh.pool.open(mesh.hbone, None, mesh.authority, headers)
            second = await mesh.pool.open(mesh.hbone, None, mesh.authority, headers)
            keys = [first.key, second.key]
            for tunnel in (first, second):
                tunnel.write_eof()
                await read_all(tunnel)
            served = [r.stream.key for r in mesh.requests]
            answered = (mesh.requests[0].headers, mesh.hbone[1], len(mesh.pool.connections()))
            return keys, served, *answered

    keys, served, headers, hbone_port, connections = run(go())
    assert connections == 1 and keys[0] != keys[1]
    assert sorted(keys) == sorted(served)
    addresses, _, stream = keys[0].rpartition("#")
    client, _, server = addresses.partition(">")
    assert client.startswith("127.0.0.1:") and server == f"127.0.0.1:{hbone_port}"
    assert stream.isdigit()
    assert headers["traceparent"] == TRACEPARENT


@pytest.mark.parametrize("allowed", [True, False])
def test_the_agents_inbound_events_carry_the_key_and_traceparent(allowed):
    ring = FlowRing(8)
    table = ConnectionTable(
        AgentMetrics(CollectorRegistry()), lambda line: None, hooks=AgentFlows("node2", ring)
    )
    code = DecisionCode.ALLOWED_NO_POLICY if allowed else DecisionCode.DENIED_BY_DENY
    record = table.open(
        ConnectionRecord(
            direction=Direction.INBOUND,
            source_address=("198.18.2.9", 0),
            destination_address=("198.18.2.7", 8080),
            decision=Decision(allowed, "ALLOW" if allowed else "DENY", code, "why"),
            tunnel="198.18.2.9:41234>198.18.2.7:15008#3",
            traceparent=TRACEPARENT,
        )
    )
    table.close(record, sent=1, received=1)
    events = [e for _, e in ring.since(0).events]
    assert events[0].point is Point.DESTINATION_AGENT
    assert {(e.tunnel, e.traceparent) for e in events} == {
        ("198.18.2.9:41234>198.18.2.7:15008#3", TRACEPARENT)
    }


def test_a_key_is_none_before_the_connection_is_up():
    async def unconnected_key():
        return HboneConnectionShell(HboneClientConnection(), "test").tunnel_key(1)

    assert asyncio.run(unconnected_key()) is None


def test_the_waypoints_request_event_names_its_upstream_tunnel():
    key = "198.18.2.9:41234>198.18.2.7:15008#5"
    assert request_event(record(upstream_tunnel=key), "waypoint shop/waypoint", "1").tunnel == key
    assert request_event(record(), "waypoint shop/waypoint", "2").tunnel is None  # plain TCP
