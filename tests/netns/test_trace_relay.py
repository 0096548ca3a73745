"""`meshctl trace --follow --source relay` on a local cluster: one stream, every node (issue 6).

The same 2-node cluster as test_trace_follow (namespace `shop` through waypoint `waypoint`, the
client on node1, web-v2 on node1 and web-v1 on node2), but the follower reads only the
controller's relay (node1's netns, admin 15010), never an agent or the waypoint. Requests are
sent until the stream has shown events reported by both agents and by the waypoint; the waits
are bounded, no timing is asserted.
"""

from __future__ import annotations

import pytest

from nodemesh.local.admin_client import get_json
from nodemesh.local.runtime import load_plan
from nodemesh.local.state import StateDir
from nodemesh.local.system import ADMIN_PORT, controller_node
from tests.netns.test_local_cluster import apply_text
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
