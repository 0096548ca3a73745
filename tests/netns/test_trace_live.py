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

from tests.netns.test_local_cluster import ECHO_SERVER, apply_text
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


# The app's echo server, speaking HTTP/1.1 so the waypoint keeps its upstream tunnels open.
KEEPALIVE_SERVER = ECHO_SERVER.replace(
    "class H(http.server.BaseHTTPRequestHandler):\n",
    "class H(http.server.BaseHTTPRequestHandler):\n    protocol_version = 'HTTP/1.1'\n",
)


def test_live_traces_name_the_exact_destination_decision_on_reused_tunnels(local_cluster, tmp_path):
    cluster = local_cluster
    cluster.meshctl("local", "up", "--nodes", "2")
    server = json.dumps(["python3", "-u", "-c", ECHO_SERVER])
    assert server in app()
    apply_text(
        cluster,
        tmp_path,
        app().replace(server, json.dumps(["python3", "-u", "-c", KEEPALIVE_SERVER])),
    )
    cluster.meshctl("waypoint", "apply", "-n", "shop", "--enroll-namespace", timeout=150)
    until(lambda: status(cluster, "http://web/public") == 200, what="web answers via the waypoint")
    for _ in range(4):  # both endpoints now have an idle upstream tunnel at the waypoint
        assert status(cluster, "http://web/public") == 200

    traces = [trace(cluster, "--http", "GET", "/public") for _ in range(2)]
    for result in traces:
        assert result["verdict"] == "FORWARDED", result
        assert not any("matched by address and time" in n for n in result["notes"]), result
        destination = hop(result, "destination-agent")
        tunnel = destination["details"]["tunnel"]  # "waypoint ip:port>pod ip:15008#stream"
        upstream = hop(result, "waypoint-route")["details"]["upstream"]
        client, _, server = tunnel.partition(">")
        pod_ip, waypoint_ip = server.rpartition(":")[0], client.rpartition(":")[0]
        assert f"({pod_ip}:8080)" in upstream and server.startswith(f"{pod_ip}:15008#"), upstream
        assert f"({waypoint_ip})" in destination["details"]["source"], destination
    second = hop(traces[1], "destination-agent")
    assert "reused for this request" in second["reason"], traces[1]
    assert "decided when the tunnel opened at" in second["reason"], traces[1]


def test_live_trace_shows_the_ebpf_capture_hop_of_the_probe(local_cluster, tmp_path):
    """The capture hop comes from connect4's own ring-buffer event, joined to the source agent's
    flow by socket cookie (node_agent.capture_events), not inferred from the source agent."""
    cluster = local_cluster
    cluster.meshctl("local", "up", "--nodes", "2")
    apply_text(cluster, tmp_path, app())  # shop is enrolled; no waypoint: direct tunnels
    until(lambda: status(cluster, "http://web/") == 200, what="web answers through the mesh")

    result = trace(cluster, "--http", "GET", "/")
    assert result["verdict"] == "FORWARDED", result
    capture = hop(result, "capture")
    assert capture["decision"] == "captured", capture
    assert capture["reason"].startswith("connect4: ") and "127.0.0.1:15001" in capture["reason"]
    assert capture["details"]["original destination"].endswith(":80"), capture
    assert capture["details"]["at"].startswith("+"), capture
    text = cluster.meshctl("trace", "client", "web", "-n", "shop", "--http", "GET", "/").stdout
    assert "redirected to 127.0.0.1:15001" in text and "original destination:" in text, text
