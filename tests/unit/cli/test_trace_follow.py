"""`meshctl trace --follow / --last` with CliRunner: sources found from the cluster's files, polls
answered by in-memory rings (no netns), filters and output forms checked on what is printed."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from nodemesh import flows_local
from nodemesh.cli.context import Ctx
from nodemesh.cli.trace_cmds import trace
from nodemesh.flows import Endpoint, FlowRing, FlowVerdict
from nodemesh.local import state as state_module
from nodemesh.local.state import StateDir, write_json_atomic
from tests.unit.cli.helpers import waypoint_pod
from tests.unit.flows.events import T0, event

NODE = {"index": 0, "address": "198.18.0.2", "pod_cidr": "198.18.1.0/24", "gateway": "198.18.1.1"}


@pytest.fixture
def rings(tmp_path, monkeypatch) -> dict[str, FlowRing]:
    """A cluster of one node and one waypoint pod; `poll` answered from these rings."""
    monkeypatch.setattr(state_module, "DEFAULT_ROOT", tmp_path)
    state = StateDir("test")
    nodes = [{**NODE, "name": "node1", "netns": "nm-test-node1"}]
    write_json_atomic(state.cluster_file, {"name": "test", "hub_netns": "hub", "nodes": nodes})
    wp = waypoint_pod("waypoint-abc", ready=True) | {"sandbox": {"netns": "nm-test-wp"}}
    write_json_atomic(state.status_file, {"pods": [wp], "services": [], "nodes": []})
    by_netns = {"nm-test-node1": FlowRing(16), "nm-test-wp": FlowRing(16)}

    def poll(source, path, timeout=5.0):
        query = dict(p.split("=") for p in path.split("?", 1)[1].split("&"))
        ring = by_netns[source.netns]
        return ring.since(int(query["since"]), int(query["limit"])).to_dict()

    monkeypatch.setattr(flows_local, "poll", poll)
    return {"agent": by_netns["nm-test-node1"], "waypoint": by_netns["nm-test-wp"]}


def meshctl(*args: str):
    """Reads each component (the relay has its own tests: tests/unit/flows/test_relay_cli.py)."""
    return CliRunner().invoke(trace, ["--source", "components", *args], obj=Ctx(cluster="test"))


def fill(rings):
    rings["agent"].append(event(time=T0 + 1, reporter="agent node1", flow_id="node1/1", http=None))
    denied = event(time=T0, verdict=FlowVerdict.DENIED, policy="shop/web-public", rule=0)
    rings["waypoint"].append(denied)
    other = event(time=T0 + 2, source=Endpoint("blog", "reader"), service="blog/api")
    rings["waypoint"].append(other)


def test_sources_are_every_node_agent_and_every_waypoint_pod(rings):
    names = [s.name for s in flows_local.sources(StateDir("test"))]
    assert names == ["agent node1", "waypoint shop/waypoint-abc"]


def test_last_prints_every_sources_events_in_time_order(rings):
    fill(rings)
    result = meshctl("--last", "10", "-o", "json")
    assert result.exit_code == 0, result.output
    docs = [json.loads(line) for line in result.output.splitlines()]
    assert [d["time"] for d in docs] == [T0, T0 + 1, T0 + 2]
    assert docs[0]["verdict"] == "DENIED" and docs[0]["policy"] == "shop/web-public"


def test_filters_apply_before_last_counts(rings):
    fill(rings)
    result = meshctl("--last", "1", "--from", "client", "-n", "shop")
    assert result.exit_code == 0, result.output
    (only,) = result.output.splitlines()
    assert "agent node1" in only and "FORWARDED" in only
    denied = meshctl("--last", "5", "--verdict", "denied").output.splitlines()
    assert len(denied) == 1 and "DENIED by shop/web-public rule 0" in denied[0]


def test_usage_errors_say_what_to_type(rings):
    assert "--from/--to" in meshctl("client", "web", "--follow").output
    assert "a class (5xx)" in meshctl("--last", "1", "--http-status", "abc").output
    assert meshctl("--last", "1", "-o", "yaml").exit_code == 2
    assert "--follow" in meshctl().output
