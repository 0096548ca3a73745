"""The local cluster's own path, without a mesh: the baseline every mesh figure is compared to.

Brings up a dedicated 2-node cluster ('bench'), measures pod-to-pod round-trip latency (64-byte
request/response, sequential) and single-connection bulk throughput (iperf3), same node and across
nodes, prints the table, and removes the cluster. Bounded: a few thousand round trips and a few
seconds of iperf3 per path. Mesh rows (agent, stunnel, waypoint) join this table as they land.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from nodemesh.local import cluster
from nodemesh.local.launch import launch_argv
from nodemesh.local.state import StateDir
from nodemesh.local.store import Store
from nodemesh.local.wait import wait_for
from nodemesh.manifests.load import load_paths

HERE = Path(__file__).resolve().parent
ROUND_TRIPS = 3000
IPERF_SECONDS = 3


def in_pod(pod: dict, *cmd: str, timeout: float = 60) -> str:
    box = pod["sandbox"]
    argv = launch_argv(sys.executable, box["netns"], list(cmd), cgroup=f"{box['cgroup']}/client")
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed in pod: {proc.stderr.strip()}")
    return proc.stdout


def measure(client: dict, server_ip: str) -> dict:
    rr = json.loads(
        in_pod(client, "python3", str(HERE / "rr_client.py"), server_ip, "7000", str(ROUND_TRIPS))
    )
    iperf = json.loads(
        in_pod(client, "iperf3", "-c", server_ip, "-p", "5201", "-t", str(IPERF_SECONDS), "-J")
    )
    rr["gbit_s"] = round(iperf["end"]["sum_received"]["bits_per_second"] / 1e9, 2)
    return rr


def main() -> int:
    state = StateDir("bench")
    cluster.down(state)
    try:
        cluster.up(state, 2)
        manifests = load_paths([str(HERE / "baseline.yaml")])
        store = Store(state)
        store.apply(manifests)
        cluster.wake_runtime(state)
        waiting = wait_for(
            state, store.generation(), [m.obj for m in manifests], deleted=False, timeout=60
        )
        if waiting:
            raise SystemExit("benchmark pods not ready:\n" + "\n".join(waiting))
        pods = {p["metadata"]["name"]: p for p in cluster.read_status(state)["pods"]}
        rows = []
        for label, server in (("same node", "server-same"), ("cross node", "server-cross")):
            result = measure(pods["client"], pods[server]["status"]["podIP"])
            rows.append((label, result))
        print(
            f"baseline: no mesh, pod to pod over veth ({ROUND_TRIPS} round trips of 64 B, "
            f"iperf3 {IPERF_SECONDS}s, one connection)"
        )
        print(f"{'path':12} {'p50 us':>8} {'p90 us':>8} {'p99 us':>8} {'Gbit/s':>8}")
        for label, r in rows:
            print(f"{label:12} {r['p50']:>8} {r['p90']:>8} {r['p99']:>8} {r['gbit_s']:>8}")
        return 0
    finally:
        cluster.down(state)


if __name__ == "__main__":
    sys.exit(main())
