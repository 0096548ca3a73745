"""`meshctl trace --last/--follow` choosing the controller's relay or each component (CliRunner).

Polls are answered from in-memory rings keyed by (netns, port), so the relay (node1's netns,
port 15010) and node1's agent (same netns, port 15000) are told apart as on a real cluster.
"""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from nodemesh import flows_local
from nodemesh.cli.context import Ctx
from nodemesh.cli.trace_cmds import trace
from nodemesh.flows import FlowRing
from nodemesh.local import state as state_module
from nodemesh.local.admin_client import AdminError
from nodemesh.local.state import StateDir, write_json_atomic
from tests.unit.cli.helpers import waypoint_pod
from tests.unit.flows.events import T0, event

NODE = {"index": 0, "address": "198.18.0.2", "pod_cidr": "198.18.1.0/24", "gateway": "198.18.1.1"}
RELAY = ("nm-test-node1", 15010)
AGENT = ("nm-test-node1", 15000)
WAYPOINT = ("nm-test-wp", 15000)


@pytest.fixture
def rings(tmp_path, monkeypatch) -> dict[tuple[str, int], FlowRing]:
    monkeypatch.setattr(state_module, "DEFAULT_ROOT", tmp_path)
    state = StateDir("test")
    nodes = [{**NODE, "name": "node1", "netns": "nm-test-node1"}]
    write_json_atomic(state.cluster_file, {"name": "test", "hub_netns": "hub", "nodes": nodes})
    wp = waypoint_pod("waypoint-abc", ready=True) | {"sandbox": {"netns": "nm-test-wp"}}
    write_json_atomic(state.status_file, {"pods": [wp], "services": [], "nodes": []})
    held = {RELAY: FlowRing(16), AGENT: FlowRing(16), WAYPOINT: FlowRing(16)}

    def poll(source, path, timeout=5.0):
        query = dict(p.split("=") for p in path.split("?", 1)[1].split("&"))
        ring = held[(source.netns, source.port)]
        return ring.since(int(query["since"]), int(query["limit"])).to_dict()

    monkeypatch.setattr(flows_local, "poll", poll)
    return held


def relay_answers(monkeypatch, answers: bool) -> None:
    def get_json(netns, port, path, timeout=5.0):
        if not answers:
            raise AdminError(f"cannot reach the admin endpoint 127.0.0.1:{port} in {netns}")
        assert (netns, port) == RELAY and path == "/debug/flows/sources"
        return {}

    monkeypatch.setattr(flows_local, "get_json", get_json)


def meshctl(*args: str):
    return CliRunner().invoke(trace, list(args), obj=Ctx(cluster="test"))


def flow_ids(result) -> list[str]:
    return [json.loads(line)["flow_id"] for line in result.stdout.splitlines()]


def fill(rings) -> None:
    rings[RELAY].append(event(time=T0, reporter="agent node1", flow_id="relayed-agent"))
    rings[RELAY].append(event(time=T0 + 1, flow_id="relayed-waypoint"))
    rings[AGENT].append(event(time=T0, reporter="agent node1", flow_id="polled-agent"))
    rings[WAYPOINT].append(event(time=T0 + 1, flow_id="polled-waypoint"))


def test_the_relay_is_read_alone_when_it_answers(rings, monkeypatch):
    fill(rings)
    relay_answers(monkeypatch, True)
    result = meshctl("--last", "10", "-o", "json")
    assert result.exit_code == 0, result.output
    assert flow_ids(result) == ["relayed-agent", "relayed-waypoint"]
    assert result.stderr == ""


def test_without_the_relay_each_component_is_polled_with_a_note(rings, monkeypatch):
    fill(rings)
    relay_answers(monkeypatch, False)
    result = meshctl("--last", "10", "-o", "json")
    assert result.exit_code == 0, result.output
    assert flow_ids(result) == ["polled-agent", "polled-waypoint"]
    assert "flow relay does not answer" in result.stderr
    assert "polling each component" in result.stderr


def test_source_components_skips_the_relay_even_when_it_answers(rings, monkeypatch):
    fill(rings)
    relay_answers(monkeypatch, True)
    result = meshctl("--last", "10", "-o", "json", "--source", "components")
    assert flow_ids(result) == ["polled-agent", "polled-waypoint"] and result.stderr == ""


def test_source_relay_fails_when_the_relay_does_not_answer_and_says_what_else(rings, monkeypatch):
    relay_answers(monkeypatch, False)
    result = meshctl("--last", "10", "--source", "relay")
    assert result.exit_code == 1
    assert "--source components" in result.stderr and "nodemesh-system" in result.stderr
