"""Controller push benchmark: 1,000 services × 10 endpoints to one subscriber.

Runs the real controller as its own process (so its RSS is its own) over a synthetic local-cluster
state directory, and one subscriber in this process speaking the real delta protocol over mTLS on
loopback. Reports:
  - start-up: process start to listeners open (includes reading and translating the registry);
  - full push: stream opened to every resource received (a fresh agent, or a full resync);
  - incremental push: from the moment a new status.json (one pod changed) is in place to the
    change applied at the subscriber, median of several changes; this includes the controller's
    50 ms registry poll and re-reading and re-translating the whole registry;
  - controller RSS after the full push.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from controller import scope
from nodemesh import controlplane
from nodemesh.local.credentials import create_node_tokens, token_path
from nodemesh.local.state import StateDir, write_json_atomic
from nodemesh.xds.stream import ConfigStream

SERVICES = 1000
ENDPOINTS = 10
NODES = 10
CHANGES = 7
PORTS = {"mtls": 26012, "bootstrap": 26011, "admin": 26000, "metrics": 26014}


def synthetic_state(root: Path) -> StateDir:
    state = StateDir("bench", root)
    state.path.mkdir(parents=True)
    write_json_atomic(state.cluster_file, {"name": "bench"})
    objects = {
        "Namespace//shop": _rec(
            {
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {"name": "shop", "labels": {"nodemesh.io/dataplane-mode": "ambient"}},
            }
        )
    }
    for i in range(SERVICES):
        objects[f"Service/shop/svc{i}"] = _rec(
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": f"svc{i}", "namespace": "shop"},
                "spec": {
                    "type": "ClusterIP",
                    "selector": {"app": f"svc{i}"},
                    "ports": [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}],
                },
            },
            cluster_ip=f"198.19.{10 + i // 250}.{i % 250 + 1}",
        )
    write_json_atomic(state.store_file, {"generation": 1, "objects": objects})
    write_json_atomic(state.status_file, {"pods": pods(), "services": [], "nodes": []})
    create_node_tokens(state, [f"node{n}" for n in range(1, NODES + 1)])
    return state


def _rec(obj: dict, cluster_ip: str | None = None) -> dict:
    rec = {
        "applied": obj,
        "uid": obj["metadata"]["name"],
        "created": "2026-01-01T00:00:00Z",
        "generation": 1,
    }
    if cluster_ip:
        rec["clusterIP"] = cluster_ip
    return rec


def pods(version: int = 0) -> list[dict]:
    out = []
    for i in range(SERVICES * ENDPOINTS):
        svc, node = i // ENDPOINTS, i % NODES + 1
        labels = {"app": f"svc{svc}"}
        if i == 0:
            labels["rev"] = str(version)  # the one pod the incremental pushes change
        out.append(
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    "name": f"p{i}",
                    "namespace": "shop",
                    "uid": f"uid-{i}",
                    "labels": labels,
                    "ownerReferences": [],
                },
                "spec": {
                    "nodeName": f"node{node}",
                    "serviceAccountName": f"sa{svc}",
                    "containers": [{"name": "c", "command": ["x"], "ports": []}],
                },
                "status": {
                    "phase": "Running",
                    "podIP": f"198.18.{node}.{i // NODES % 250 + 2}",
                    "conditions": [{"type": "Ready", "status": "True"}],
                },
            }
        )
    return out


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def wait_ready(port: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            _r, w = await asyncio.open_connection("127.0.0.1", port)
            w.close()
            return
        except OSError:
            await asyncio.sleep(0.05)
    raise SystemExit("controller did not open its ports")


async def measure(state: StateDir, proc: subprocess.Popen) -> dict:
    started = time.monotonic()
    await wait_ready(PORTS["mtls"])
    startup = time.monotonic() - started
    bundle = (state.path / "ca" / "trust-bundle.pem").read_bytes()
    ident = await controlplane.bootstrap(
        f"127.0.0.1:{PORTS['bootstrap']}", bundle, "node1", token_path(state, "node1").read_text()
    )
    held: dict = {}
    changed = asyncio.Event()

    def handle(type_url, ups, rms):
        for r in ups:
            held[(type_url, r.name)] = r.version
            if r.name == "uid-0":
                changed.set()
        for n in rms:
            held.pop((type_url, n), None)
        return {}

    stream = ConfigStream("bench~node1", scope.TYPE_URLS, handle)
    t0 = time.monotonic()
    task = asyncio.ensure_future(
        stream.run(lambda: controlplane.mtls_channel(f"127.0.0.1:{PORTS['mtls']}", ident))
    )
    while not stream.synced():
        await asyncio.sleep(0.005)
    full = time.monotonic() - t0
    resources = len(held)
    incremental = []
    for v in range(1, CHANGES + 1):
        changed.clear()
        doc = {"pods": pods(v), "services": [], "nodes": []}
        write_json_atomic(state.status_file, doc)  # the change exists once the rename is done
        t1 = time.monotonic()
        await asyncio.wait_for(changed.wait(), 30)
        incremental.append(time.monotonic() - t1)
    task.cancel()
    return {
        "startup": startup,
        "full": full,
        "resources": resources,
        "incremental": statistics.median(incremental),
        "rss": rss_mb(proc.pid),
    }


def run() -> dict:
    with tempfile.TemporaryDirectory(prefix="nodemesh-bench-") as tmp:
        state = synthetic_state(Path(tmp))
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "controller",
                "--local-state",
                str(state.path),
                "--listen",
                "127.0.0.1",
                "--mtls-port",
                str(PORTS["mtls"]),
                "--bootstrap-port",
                str(PORTS["bootstrap"]),
                "--admin-port",
                str(PORTS["admin"]),
                "--metrics-port",
                str(PORTS["metrics"]),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            return asyncio.run(measure(state, proc))
        finally:
            proc.terminate()
            proc.wait(10)


def report(r: dict) -> None:
    print(
        f"controller: {SERVICES} services x {ENDPOINTS} endpoints "
        f"({SERVICES * ENDPOINTS} pods on {NODES} nodes), one subscriber (node1)"
    )
    print(f"  start-up (read + translate + listen)  {r['startup'] * 1000:8.0f} ms")
    print(f"  full push ({r['resources']} resources)       {r['full'] * 1000:8.0f} ms")
    print(f"  incremental push (1 pod, median of {CHANGES}) {r['incremental'] * 1000:8.0f} ms")
    print(f"  controller RSS after full push        {r['rss']:8.1f} MB")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    report(run())
