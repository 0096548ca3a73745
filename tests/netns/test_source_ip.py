"""Inbound delivery keeps the client's source IP (ztunnel in-pod style), on a real local cluster.

One 2-node cluster: `shop` enrolled, with `peer` apps (tests/netns/apps/http_server.py --peer
answers with the peer address its accept() returned) on node2 (`far`) and node1 (`near`) and a
`client` on node1; `plain` not enrolled, with an `outsider` on node1; `wp` enrolled and behind a
waypoint, with `behind` on node2. The app must see the client pod's IP, not its own, for every path
the agent delivers: HBONE across nodes and on one node, captured plaintext under PERMISSIVE. A pod
calling its own Service (hairpin) sees itself, and an un-enrolled pod loses the reply routing.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from node_agent import pod_routing
from nodemesh.local.netns import run
from tests.netns.test_local_cluster import apply_text, pods
from tests.netns.test_mesh import until
from tests.netns.test_waypoint import http_workload

pytestmark = pytest.mark.netns
APP = Path(__file__).resolve().parent / "apps" / "http_server.py"


def peer_app(name: str, namespace: str, node: str) -> str:
    return http_workload(name, node, [sys.executable, str(APP), "8080", "--peer"], namespace)


def sleeper(name: str, namespace: str) -> str:
    return (
        f"apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, namespace: {namespace}}}\n"
        f"spec:\n  nodeName: node1\n  containers: [{{name: c, command: [sleep, infinity]}}]\n---\n"
    )


def namespace(name: str, enrolled: bool) -> str:
    labels = "{nodemesh.io/dataplane-mode: ambient}" if enrolled else "{}"
    return f"apiVersion: v1\nkind: Namespace\nmetadata: {{name: {name}, labels: {labels}}}\n---\n"


def manifests() -> str:
    return (
        namespace("shop", True)
        + namespace("plain", False)
        + namespace("wp", True)
        + peer_app("far", "shop", "node2")
        + peer_app("near", "shop", "node1")
        + peer_app("behind", "wp", "node2")
        + sleeper("client", "shop")
        + sleeper("outsider", "plain")
    )


def ip_of(cluster, name: str, ns: str) -> str:
    return next(p for p in pods(cluster, ns) if p["metadata"]["name"] == name)["status"]["podIP"]


def seen_by_app(cluster, pod: str, ns: str, url: str) -> str:
    """What the app at `url` answers to `pod`: the peer address it accepted."""
    out = cluster.meshctl(
        "exec", pod, "-n", ns, "--", "curl", "-sS", "--max-time", "5", url, timeout=30
    )
    return out.stdout.strip()


def enrolled(cluster, namespace: str) -> int:
    logs = "".join(
        cluster.meshctl("logs", f"nodemesh-agent-{n}", "-n", "nodemesh-system").stdout
        for n in ("node1", "node2")
    )
    return logs.count(f": enrolled {namespace}/") - logs.count(f": un-enrolled {namespace}/")


def reply_routing(cluster, pod: str, ns: str) -> tuple[bool, bool]:
    """(nodemesh's nft table, its fwmark rule) present in the pod's netns?"""
    tables = cluster.meshctl("exec", pod, "-n", ns, "--", "nft", "list", "tables").stdout
    rules = cluster.meshctl("exec", pod, "-n", ns, "--", "ip", "rule", "show").stdout
    return "table ip nodemesh" in tables, "fwmark 0x53a" in rules


def test_apps_see_the_client_ip(local_cluster, tmp_path):
    cluster = local_cluster
    cluster.meshctl("local", "up", "--nodes", "2")
    apply_text(cluster, tmp_path, manifests())
    cluster.meshctl("waypoint", "apply", "-n", "wp", "--enroll-namespace", timeout=150)
    until(lambda: enrolled(cluster, "shop") >= 3, timeout=60, what="shop pods enrolled")
    until(lambda: enrolled(cluster, "wp") >= 1, timeout=60, what="wp pods enrolled")
    client = ip_of(cluster, "client", "shop")
    near, far = ip_of(cluster, "near", "shop"), ip_of(cluster, "far", "shop")
    waypoint = next(p for p in pods(cluster, "wp") if p["metadata"]["name"].startswith("waypoint"))
    assert reply_routing(cluster, "far", "shop") == (True, True)

    # HBONE from node1 to node2, and within node1: the app sees the client pod, not itself.
    assert seen_by_app(cluster, "client", "shop", "http://far.shop/") == client
    assert seen_by_app(cluster, "client", "shop", "http://near.shop/") == client
    # Plaintext from a pod outside the mesh, captured by sk_lookup and allowed (PERMISSIVE).
    outsider = ip_of(cluster, "outsider", "plain")
    assert seen_by_app(cluster, "outsider", "plain", "http://far.shop/") == outsider
    # Hairpin: a pod calling its own Service is delivered from its own address, as before.
    assert seen_by_app(cluster, "near", "shop", "http://near.shop/") == near
    # Through the waypoint the destination agent delivers from the address `Forwarded` names.
    # The waypoint's CONNECT names the waypoint itself (waypoint/app.py `tunnel_headers(pod_ip)`:
    # its pooled upstream connections serve many clients), so that is the peer the app sees;
    # never the app's own address.
    behind = seen_by_app(cluster, "client", "shop", "http://behind.wp/")
    assert behind == waypoint["status"]["podIP"]
    assert behind != ip_of(cluster, "behind", "wp")

    # A live un-enroll removes the reply routing from the pod's netns; delivery goes on.
    apply_text(cluster, tmp_path, namespace("shop", False), "unenroll.yaml")
    until(lambda: enrolled(cluster, "shop") == 0, timeout=60, what="shop pods un-enrolled")
    assert reply_routing(cluster, "far", "shop") == (False, False)
    assert seen_by_app(cluster, "client", "shop", "http://far.shop/") == client  # plain routing
    assert far != client


def test_reply_routing_installs_and_removes_idempotently():
    """What attach_pod / detach run in a pod netns: twice is the same as once, in both ways, and
    removing from a netns that is already gone is no error (the pod was deleted first)."""
    name = f"nmsrcip-{os.getpid()}"
    run(["ip", "netns", "add", name])
    try:
        for _ in range(2):
            pod_routing.install(name)
        assert _state(name) == (1, 1, True)
        for _ in range(2):
            pod_routing.remove(name)
        assert _state(name) == (0, 0, False)
    finally:
        run(["ip", "netns", "del", name])
    pod_routing.remove(name)  # gone: nothing to do, nothing raised


def _state(netns: str) -> tuple[int, int, bool]:
    """(nodemesh tables, fwmark rules, the lo route in its table) in `netns`."""
    tables = run(["ip", "netns", "exec", netns, "nft", "list", "tables"]).split("\n")
    rules = run(["ip", "-n", netns, "rule", "show"]).count("fwmark 0x53a lookup 1337")
    route = run(["ip", "-n", netns, "route", "show", "table", "1337", "type", "local"])
    return tables.count("table ip nodemesh"), rules, "default dev lo" in route
