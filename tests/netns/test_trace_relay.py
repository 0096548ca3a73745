"""`meshctl trace --follow --source relay` on a local cluster: one stream, every node (issue 6).

The same 2-node cluster as test_trace_follow (namespace `shop` through waypoint `waypoint`, the
client on node1, web-v2 on node1 and web-v1 on node2), but the follower reads only the
controller's relay (node1's netns, admin 15010), never an agent or the waypoint. Requests are
sent until the stream has shown events reported by both agents and by the waypoint; the waits
are bounded, no timing is asserted. On the same cluster, `--from shop/client` then shows the
client's eBPF captures (point `captured`) on the flow of the source agent's event for the same
connection, and `--to shop/web-v1` the sk_lookup capture of a plaintext request from a pod outside
the mesh on the flow of web-v1's agent decision (node_agent.capture_events joins both).
"""

from __future__ import annotations

import pytest

from nodemesh.local.admin_client import get_json
from nodemesh.local.runtime import load_plan
from nodemesh.local.state import StateDir
from nodemesh.local.system import ADMIN_PORT, controller_node
from tests.netns.test_local_cluster import apply_text, pods
from tests.netns.test_mesh import until
from tests.netns.test_trace_follow import Follower
from tests.netns.test_waypoint import app, status

pytestmark = pytest.mark.netns
REPORTERS = {"agent node1", "agent node2", "waypoint shop/waypoint"}


def test_follow_through_the_relay_sees_both_agents_and_the_waypoint(local_cluster, tmp_path):
    cluster = local_cluster
    cluster.meshctl("local", "up", "--nodes", "2")
    apply_text(cluster, tmp_path, app())
    cluster.meshctl("waypoint", "apply", "-n", "shop", "--enroll-namespace", timeout=150)
    until(lambda: status(cluster, "http://web/warm-up") == 200, what="the waypoint serves web")

    follower = Follower(cluster, "--source", "relay")
    try:

        def every_reporter_seen() -> bool:
            assert status(cluster, "http://web/relayed") == 200
            return {e["reporter"] for e in follower.events} >= REPORTERS

        until(
            every_reporter_seen, timeout=30, what="relayed events from both agents and the waypoint"
        )
    finally:
        errors = follower.stop()
    assert "polling each component" not in errors, errors
    relayed = [e for e in follower.events if e["point"] == "waypoint"]
    assert relayed and {e["http"]["path"] for e in relayed} == {"/relayed"}, relayed
    # The relay counts what each sender pushed, keyed by the name its certificate proves.
    plan = load_plan(StateDir(cluster.name))
    sources = get_json(controller_node(plan).netns, ADMIN_PORT, "/debug/flows/sources")
    assert set(sources) >= REPORTERS, sources
    assert all(sources[r]["events"] > 0 and sources[r]["refused"] == 0 for r in REPORTERS)
    captures_join_their_connections(cluster)
    inbound_capture_joins_the_decision(cluster, tmp_path)


def captures_join_their_connections(cluster) -> None:
    """`--from shop/client`: each captured connect sits on its connection's flow, before the
    source agent's event (same flow_id), and nothing from another pod is shown."""
    follower = Follower(cluster, "--from", "shop/client")
    try:

        def joined() -> list[tuple[dict, dict]]:
            by_flow = {e["flow_id"]: e for e in follower.events if e["point"] == "source-agent"}
            pairs = [(e, by_flow.get(e["flow_id"])) for e in follower.events]
            return [(c, s) for c, s in pairs if c["point"] == "captured" and s is not None]

        def captured_next_to_its_route() -> bool:
            assert status(cluster, "http://web/captured") == 200
            return bool(joined())

        until(captured_next_to_its_route, timeout=30, what="a captured event on its flow")
    finally:
        errors = follower.stop()
    events = follower.events
    assert {(e["source"].get("namespace"), e["source"].get("name")) for e in events} == {
        ("shop", "client")
    }, events
    captured, routed = joined()[0]
    assert captured["reporter"] == routed["reporter"] == "agent node1", (captured, routed)
    assert events.index(captured) < events.index(routed)  # connect() came first
    assert captured["route"] == "captured" and captured["verdict"] == "FORWARDED"
    assert captured["reason"].startswith("connect4: "), captured
    assert captured["destination"]["address"].endswith(":80"), captured  # web's VIP, port 80
    assert captured["source"] == routed["source"], (captured, routed)  # the pod, its port
    assert "Traceback" not in errors, errors


OUTSIDER = """\
apiVersion: v1
kind: Namespace
metadata: {name: plain}
---
apiVersion: v1
kind: Pod
metadata: {name: outsider, namespace: plain}
spec:
  nodeName: node1
  containers: [{name: c, command: [sleep, infinity]}]
"""


def inbound_capture_joins_the_decision(cluster, tmp_path) -> None:
    """`--to shop/web-v1`: a plaintext connection from outside the mesh is captured by
    sk_lookup on node2, and that capture sits on the flow of node2's decision about it."""
    apply_text(cluster, tmp_path, OUTSIDER, "outsider.yaml")
    web_v1 = next(p for p in pods(cluster, "shop") if p["metadata"]["name"] == "web-v1")
    url = f"http://{web_v1['status']['podIP']}:8080/plaintext"
    follower = Follower(cluster, "--to", "shop/web-v1")
    try:

        def joined() -> list[tuple[dict, dict]]:
            decided = {
                e["flow_id"]: e for e in follower.events if e["point"] == "destination-agent"
            }
            pairs = [(e, decided.get(e["flow_id"])) for e in follower.events]
            return [(c, d) for c, d in pairs if c["point"] == "captured" and d is not None]

        def captured_next_to_its_decision() -> bool:
            curl = ["curl", "-s", "-o", "/dev/null", "--max-time", "5", url]
            cluster.meshctl("exec", "outsider", "-n", "plain", "--", *curl, check=False)
            return bool(joined())

        until(captured_next_to_its_decision, timeout=60, what="an inbound capture on its flow")
    finally:
        errors = follower.stop()
    captured, decided = joined()[0]
    assert captured["reporter"] == decided["reporter"] == "agent node2", (captured, decided)
    assert captured["reason"].startswith("sk_lookup: "), captured
    assert captured["reason"].endswith("redirected to 127.0.0.1:15006"), captured
    assert captured["source"] == decided["source"], (captured, decided)  # the client's ip:port
    assert captured["source"]["address"].rpartition(":")[2] != "0", captured
    assert captured["destination"]["address"].endswith(":8080"), captured
    assert "Traceback" not in errors, errors
