"""Pod-to-pod latency and throughput without the mesh (the baseline) and through it, one run.

Brings up a dedicated 2-node cluster ('bench'), measures pod-to-pod round-trip latency (64-byte
request/response, sequential) and single-connection bulk throughput (iperf3), same node and across
nodes, prints the table, and removes the cluster. Bounded: a few thousand round trips and a few
seconds of iperf3 per path. Mesh rows (agent, stunnel, waypoint) join this table as they land.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from nodemesh.local import cluster
from nodemesh.local.launch import launch_argv
from nodemesh.local.state import StateDir
from nodemesh.local.store import Store
from nodemesh.local.system import wait_captured
from nodemesh.local.wait import wait_for
from nodemesh.manifests.load import load_paths, parse_documents
from perf.stunnel_pair import StunnelPair

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


def measure(client: dict, host: str, echo_port: int = 7000, iperf_port: int = 5201) -> dict:
    rr = json.loads(
        in_pod(
            client, "python3", str(HERE / "rr_client.py"), host, str(echo_port), str(ROUND_TRIPS)
        )
    )
    iperf = json.loads(
        in_pod(client, "iperf3", "-c", host, "-p", str(iperf_port), "-t", str(IPERF_SECONDS), "-J")
    )
    rr["gbit_s"] = round(iperf["end"]["sum_received"]["bits_per_second"] / 1e9, 2)
    return rr


def agent_pids(state: StateDir) -> list[int]:
    pods = cluster.read_status(state)["pods"]
    return [
        p["status"]["containerStatuses"][0]["pid"]
        for p in pods
        if p["metadata"]["name"].startswith("nodemesh-agent-")
    ]


def cpu_seconds(pids: list[int]) -> float:
    """utime + stime of the agents (clock ticks → seconds), from /proc/<pid>/stat."""
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def rss_mb(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
    return total / 1024


def enroll(state: StateDir, pods: dict) -> None:
    """Label the namespace ambient and wait until both agents capture the bench pods."""
    store = Store(state)
    store.apply(
        parse_documents(
            "apiVersion: v1\nkind: Namespace\nmetadata: {name: bench, labels: "
            "{nodemesh.io/dataplane-mode: ambient}}\n",
            "<bench>",
        )
    )
    cluster.wake_runtime(state)
    if not wait_captured(state, 3):
        raise SystemExit("the agents did not enroll the bench pods in 60 s")


def table(title: str, rows) -> None:
    print(title)
    print(f"{'path':12} {'p50 us':>8} {'p90 us':>8} {'p99 us':>8} {'Gbit/s':>8}")
    for label, r in rows:
        print(f"{label:12} {r['p50']:>8} {r['p90']:>8} {r['p99']:>8} {r['gbit_s']:>8}")


def run_paths(pods: dict) -> list:
    return [
        (label, measure(pods["client"], pods[server]["status"]["podIP"]))
        for label, server in (("same node", "server-same"), ("cross node", "server-cross"))
    ]


def run_stunnel(pods: dict) -> list:
    servers = {"same node": pods["server-same"], "cross node": pods["server-cross"]}
    with tempfile.TemporaryDirectory(prefix="nodemesh-stunnel-") as tmp:
        pair = StunnelPair(Path(tmp))
        pair.start(pods["client"], servers)
        try:
            return [
                (label, measure(pods["client"], "127.0.0.1", *pair.ports[label]))
                for label in ("same node", "cross node")
            ]
        finally:
            pair.stop()


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
        baseline = run_paths(pods)
        stunnel = run_stunnel(pods)
        enroll(state, pods)
        pids = agent_pids(state)
        cpu0, t0 = cpu_seconds(pids), time.monotonic()
        mesh = run_paths(pods)
        cpu, wall = cpu_seconds(pids) - cpu0, time.monotonic() - t0
        shape = f"{ROUND_TRIPS} round trips of 64 B, iperf3 {IPERF_SECONDS}s, one connection"
        table(f"baseline: no mesh, pod to pod over veth ({shape})", baseline)
        table(
            f"stunnel4: a C mTLS tunnel pair (TLS 1.3, P-256) on the same paths ({shape})", stunnel
        )
        table(f"mesh: enrolled namespace, HBONE mTLS between the pods' agents ({shape})", mesh)
        print(f"{'ratio':12} {'p50':>8} {'p90':>8} {'p99':>8} {'Gbit/s':>8}   (mesh / baseline)")
        for (label, b), (_, m) in zip(baseline, mesh, strict=True):
            ratios = [
                m[k] / b[k] if b[k] else float("nan") for k in ("p50", "p90", "p99", "gbit_s")
            ]
            print(f"{label:12} " + " ".join(f"{x:>8.2f}" for x in ratios))
        print(
            f"agents: {cpu:.1f} CPU-seconds over {wall:.1f} s of mesh measurement "
            f"({cpu / wall:.2f} cores), RSS {rss_mb(pids):.0f} MB for both agents"
        )
        return 0
    finally:
        cluster.down(state)


if __name__ == "__main__":
    sys.exit(main())
