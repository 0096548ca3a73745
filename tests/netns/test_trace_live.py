"""`meshctl trace FROM TO --http ...` sends a real probe and prints its path (issue 6).

One 2-node cluster with test_waypoint's app: namespace `shop` enrolled and using waypoint
`waypoint`, a client on node1, Service `web` with pods on both nodes, and the L7 policies that
allow GET /public* only and deny any request carrying `x-evil: yes` (DENY policy web-no-evil).
An allowed probe must show the source agent, the waypoint and the destination agent, all
forwarding, with the client's and the server's identities; a denied one must stop at the
waypoint, naming the policy.
"""

from __future__ import annotations

import json

import pytest

from tests.netns.test_local_cluster import apply_text
from tests.netns.test_mesh import until
from tests.netns.test_waypoint import POLICY, app, status

pytestmark = pytest.mark.netns


def trace(cluster, *args: str) -> dict:
    out = cluster.meshctl("trace", "client", "web", "-n", "shop", *args, "-o", "json")
    return json.loads(out.stdout)


def hop(result: dict, component: str) -> dict:
    found = [h for h in result["hops"] if h["component"] == component]
    assert len(found) == 1, (component, result)
    return found[0]


def test_live_trace_shows_every_hop_and_the_denying_policy(local_cluster, tmp_path):
    cluster = local_cluster
    cluster.meshctl("local", "up", "--nodes", "2")
    apply_text(cluster, tmp_path, app())
    cluster.meshctl("waypoint", "apply", "-n", "shop", "--enroll-namespace", timeout=150)
    apply_text(cluster, tmp_path, POLICY, "policy.yaml")
    until(
        lambda: status(cluster, "-H", "x-evil: yes", "http://web/public") == 403,
        what="the policy reached the waypoint",
    )

    allowed = trace(cluster, "--http", "GET", "/public")
    assert allowed["mode"] == "live" and allowed["verdict"] == "FORWARDED", allowed
    assert allowed["notes"][0] == "probe: HTTP 200" or allowed["notes"][0].startswith(
        "probe: HTTP 200 in"
    ), allowed
    source = hop(allowed, "source-agent")
    assert source["decision"] == "waypoint" and source["details"]["service"] == "shop/web", source
    authz = hop(allowed, "waypoint-authz")
    assert authz["decision"] == "ALLOW", authz
    assert authz["details"]["source identity"].endswith("/ns/shop/sa/client"), authz
    assert hop(allowed, "waypoint-route")["status"] == 200, allowed
    destination = hop(allowed, "destination-agent")
    assert destination["decision"] == "ALLOW", destination
    assert destination["details"]["destination identity"].endswith("/sa/default"), destination
    assert all(h["details"]["at"].startswith("+") for h in allowed["hops"]), allowed

    denied = trace(cluster, "--http", "GET", "/public", "-H", "x-evil: yes")
    assert denied["verdict"] == "DENIED", denied
    last = denied["hops"][-1]
    assert (last["component"], last["decision"]) == ("waypoint-authz", "DENY"), denied
    assert (last["policy"], last["rule"], last["status"]) == ("shop/web-no-evil", 0, 403), denied
    assert hop(denied, "source-agent")["decision"] == "waypoint", denied

    text = cluster.meshctl("trace", "client", "web", "-n", "shop", "--http", "GET", "/nope")
    assert "verdict: DENIED at waypoint-authz" in text.stdout, text.stdout
