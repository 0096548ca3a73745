"""The controller on a real local cluster: a subscriber in node2's netns, over the underlay.

The subscriber (tests/netns/xds_probe.py) bootstraps with node2's real token and holds a delta
stream to the controller pod on node1, exactly as the node agent's control-plane half will.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from nodemesh.local.addressing import cluster_netns_prefix
from nodemesh.local.state import StateDir
from tests.netns.test_mesh import until

pytestmark = pytest.mark.netns
PROBE = Path(__file__).with_name("xds_probe.py")

APP = textwrap.dedent("""\
    apiVersion: v1
    kind: Namespace
    metadata: {name: shop, labels: {nodemesh.io/dataplane-mode: ambient}}
    ---
    apiVersion: v1
    kind: Service
    metadata: {name: web, namespace: shop}
    spec:
      selector: {app: web}
      ports: [{name: http, port: 80, targetPort: 8080}]
    ---
    apiVersion: v1
    kind: Pod
    metadata: {name: web, namespace: shop, labels: {app: web}}
    spec:
      nodeName: node2
      containers: [{name: c, command: [sleep, infinity]}]
""")


class Probe:
    def __init__(self, cluster, node: str, refuse: str = "") -> None:
        state = StateDir(cluster.name)
        netns = f"{cluster_netns_prefix(cluster.name)}{node}"
        cmd = [
            sys.executable,
            "-m",
            "nodemesh.local.launch",
            "--netns",
            netns,
            "--",
            sys.executable,
            str(PROBE),
            "--controller",
            "198.18.0.11",
            "--node",
            node,
            "--state",
            str(state.path),
            "--refuse",
            refuse,
        ]
        self.proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
        )
        self.events: queue.Queue = queue.Queue()
        self.seen: list[dict] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.events.put(json.loads(line))

    def wait_for(self, predicate, timeout: float = 20.0) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                event = self.events.get(timeout=0.2)
            except queue.Empty:
                continue
            self.seen.append(event)
            if predicate(event):
                return event
        raise AssertionError(
            f"probe never saw the event; saw {self.seen[-20:]}\nstderr: {self.stop()}"
        )

    def stop(self) -> str:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        return self.proc.stderr.read()[-2000:]


def status_of(cluster, sub_id: str, state: str) -> dict:
    """A row of `meshctl status` for `sub_id` in `state`; {} if none (or no controller).

    The node's real agent subscribes as agent/<node> too, so the probe's row is told apart by
    the state the test expects of it."""
    res = cluster.meshctl("status", "-o", "json", check=False)
    if res.returncode != 0:
        return {}
    data = json.loads(res.stdout)
    return next((s for s in data["subscribers"] if s["name"] == sub_id and s["state"] == state), {})


def controller_pod(pods: list[dict]) -> dict:
    return next(p for p in pods if p["metadata"]["name"] == "nodemesh-controller")


def test_pushes_reach_a_subscriber_on_another_node(local_cluster, tmp_path):
    local_cluster.meshctl("local", "up", "--nodes", "2")
    (tmp_path / "app.yaml").write_text(APP)
    local_cluster.meshctl("apply", "-f", str(tmp_path / "app.yaml"))
    probe = Probe(local_cluster, "node2")
    try:
        probe.wait_for(lambda e: e.get("type") == "Workload")  # its own pod, in full
        probe.wait_for(lambda e: e.get("type") == "Service" and e["name"] == "shop/web")
        until(lambda: status_of(local_cluster, "agent/node2", "SYNCED"))
        # A new pod on node1 reaches node2's subscriber as a peer.
        (tmp_path / "more.yaml").write_text(
            APP.replace(
                "name: web, namespace: shop, labels", "name: web2, namespace: shop, labels"
            ).replace("nodeName: node2", "nodeName: node1")
        )
        local_cluster.meshctl("apply", "-f", str(tmp_path / "more.yaml"))
        probe.wait_for(lambda e: e.get("type") == "PeerWorkload" and e["ev"] == "up")
        certs = local_cluster.meshctl("certs", "-o", "json").stdout
        assert "spiffe://cluster.local/nodemesh/node/node2" in certs
    finally:
        probe.stop()


def test_a_refused_resource_is_nacked_alone(local_cluster, tmp_path):
    local_cluster.meshctl("local", "up", "--nodes", "2")
    (tmp_path / "app.yaml").write_text(APP)
    local_cluster.meshctl("apply", "-f", str(tmp_path / "app.yaml"))
    probe = Probe(local_cluster, "node2", refuse="shop/web")
    try:
        probe.wait_for(lambda e: e.get("type") == "Workload")  # the rest applied
        sub = until(lambda: status_of(local_cluster, "agent/node2", "NACKED"))
        assert "shop/web" in sub["rejected"]
        text = local_cluster.meshctl("status").stdout
        assert "rejected shop/web" in text and "refused by the test" in text
        assert not any(e.get("name") == "shop/web" and e["ev"] == "up" for e in probe.seen)
    finally:
        probe.stop()


def test_a_killed_controller_restarts_with_its_root_and_subscribers_resync(local_cluster, tmp_path):
    local_cluster.meshctl("local", "up", "--nodes", "2")
    (tmp_path / "app.yaml").write_text(APP)
    local_cluster.meshctl("apply", "-f", str(tmp_path / "app.yaml"))
    root = local_cluster.meshctl("ca", "root").stdout
    probe = Probe(local_cluster, "node2")
    try:
        probe.wait_for(lambda e: e.get("type") == "Workload")
        until(lambda: status_of(local_cluster, "agent/node2", "SYNCED"))
        pods = json.loads(
            local_cluster.meshctl("get", "pods", "-n", "nodemesh-system", "-o", "json").stdout
        )["items"]
        pid = controller_pod(pods)["status"]["containerStatuses"][0]["pid"]
        os.kill(pid, signal.SIGKILL)
        # The runtime restarts it; the subscriber reconnects and is in sync again.
        until(lambda: status_of(local_cluster, "agent/node2", "SYNCED"), timeout=40)
        assert local_cluster.meshctl("ca", "root").stdout == root
        pods = json.loads(
            local_cluster.meshctl("get", "pods", "-n", "nodemesh-system", "-o", "json").stdout
        )["items"]
        assert controller_pod(pods)["status"]["containerStatuses"][0]["restartCount"] >= 1
        # And it still pushes: removing the pod reaches the subscriber.
        local_cluster.meshctl("delete", "-f", str(tmp_path / "app.yaml"))
        probe.wait_for(lambda e: e["ev"] == "del" and e.get("type") == "Workload")
    finally:
        probe.stop()
