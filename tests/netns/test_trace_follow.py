"""`meshctl trace --follow -o json` on a real local cluster shows live flow events (issue 6).

One 2-node cluster with test_waypoint's app: namespace `shop` enrolled and using waypoint
`waypoint`, a client on node1, Service `web` with pods on both nodes, and the L7 policy that
allows GET /public* only. A follower runs in the background while the client sends one allowed
request and one a DENY policy at the waypoint refuses; within a bounded wait both must appear,
with the right verdicts, the denying policy's name, and events from the agents and the waypoint.
"""

from __future__ import annotations

import json
import subprocess
import threading

import pytest

from tests.netns.cluster_helpers import MESHCTL
from tests.netns.test_local_cluster import apply_text
from tests.netns.test_mesh import until
from tests.netns.test_waypoint import POLICY, app, status

pytestmark = pytest.mark.netns


class Follower:
    """`meshctl trace --follow -o json` as a child process, its JSON lines collected."""

    def __init__(self, cluster, *args: str) -> None:
        self.events: list[dict] = []
        self.proc = subprocess.Popen(
            [MESHCTL, "trace", "--follow", "-o", "json", *args],
            env=cluster.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.events.append(json.loads(line))

    def stop(self) -> str:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        return self.proc.stderr.read()


def waypoint_events(events: list[dict], path: str) -> list[dict]:
    return [e for e in events if e["point"] == "waypoint" and e["http"]["path"] == path]


def test_follow_shows_allowed_and_denied_requests_at_every_hop(local_cluster, tmp_path):
    cluster = local_cluster
    cluster.meshctl("local", "up", "--nodes", "2")
    apply_text(cluster, tmp_path, app())
    cluster.meshctl("waypoint", "apply", "-n", "shop", "--enroll-namespace", timeout=150)
    apply_text(cluster, tmp_path, POLICY, "policy.yaml")
    until(
        lambda: status(cluster, "-X", "POST", "http://web/admin") == 403,
        what="the policy reached the waypoint",
    )

    # --last reads history too, so the requests are found even if sent before the first poll;
    # their paths are unique to this test (the policy allows /public*, denies everything else).
    follower = Follower(cluster, "-n", "shop", "--last", "1000")
    try:
        assert status(cluster, "http://web/public-follow") == 200
        # DENY policy web-no-evil decides this one by name (a request no ALLOW rule matches is
        # denied by no single policy, so it would carry none).
        assert status(cluster, "-H", "x-evil: yes", "http://web/admin-follow") == 403
        until(
            lambda: (
                waypoint_events(follower.events, "/public-follow")
                and waypoint_events(follower.events, "/admin-follow")
                and any(e["reporter"].startswith("agent") for e in follower.events)
            ),
            timeout=15,
            what="flow events for both requests",
        )
    finally:
        errors = follower.stop()
    events = follower.events
    (allowed,) = waypoint_events(events, "/public-follow")
    assert allowed["verdict"] == "FORWARDED" and allowed["http"]["status"] == 200
    assert allowed["source"]["identity"].endswith("/ns/shop/sa/client"), allowed
    assert allowed["service"] == "shop/web", allowed
    (denied,) = waypoint_events(events, "/admin-follow")
    assert denied["verdict"] == "DENIED" and denied["http"]["status"] == 403, denied
    assert (denied["policy"], denied["rule"]) == ("shop/web-no-evil", 0), denied
    # The source agent routed both connections to the waypoint; the destination agents let the
    # waypoint's connection in and delivered it.
    points = {(e["point"], e["verdict"]) for e in events if e["reporter"].startswith("agent")}
    assert ("source-agent", "FORWARDED") in points, (points, errors)
    assert any(e.get("route") == "waypoint" for e in events), events
    assert ("destination-agent", "FORWARDED") in points, (points, errors)
