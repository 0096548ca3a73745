"""Pod-to-pod latency and throughput: no mesh (the baseline), stunnel, and the mesh, in one run.

Brings up a dedicated 2-node cluster ('bench') and measures, same node and across nodes:
- request/response latency at a fixed offered rate (open loop, `openloop_client.py`: 64-byte echoes
  at RATE req/s over a few persistent connections, latency counted from each request's due time);
- single-connection bulk throughput (iperf3);
first with no mesh, then through a stunnel4 pair on the same paths, then with the namespace
enrolled. During the mesh's latency runs it also reads the agents' CPU time (user and kernel) and
RSS, so the cost per 1,000 req/s is printed beside the latency. Bounded: RATE × SECONDS requests and
a few seconds of iperf3 per path; the cluster is removed at the end.
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
RATE = 1000
SECONDS = 5
IPERF_SECONDS = 3


def in_pod(pod: dict, *cmd: str, timeout: float = 60) -> str:
    box = pod["sandbox"]
    argv = launch_argv(sys.executable, box["netns"], list(cmd), cgroup=f"{box['cgroup']}/client")
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed in pod: {proc.stderr.strip()}")
    return proc.stdout


def latency(client: dict, host: str, port: int = 7000) -> dict:
    argv = [str(HERE / "openloop_client.py"), host, str(port), str(RATE), str(SECONDS)]
    result = json.loads(in_pod(client, "python3", *argv))
    if result["errors"]:
        raise SystemExit(f"open-loop probe to {host}:{port} failed: {result}")
    return result


def throughput(client: dict, host: str, port: int = 5201) -> float:
    iperf = json.loads(
        in_pod(client, "iperf3", "-c", host, "-p", str(port), "-t", str(IPERF_SECONDS), "-J")
    )
    if "error" in iperf or "sum_received" not in iperf.get("end", {}):
        # iperf3 -J reports its own failures (refused, reset mid-test) as {"error": ...}.
        raise SystemExit(f"iperf3 to {host}:{port} failed: {iperf.get('error', 'no summary')}")
    return round(iperf["end"]["sum_received"]["bits_per_second"] / 1e9, 2)


def agent_pids(state: StateDir) -> list[int]:
    pods = cluster.read_status(state)["pods"]
    return [
        p["status"]["containerStatuses"][0]["pid"]
        for p in pods
        if p["metadata"]["name"].startswith("nodemesh-agent-")
    ]


def cpu_seconds(pids: list[int]) -> tuple[float, float]:
    """(user, kernel) CPU seconds of the agents, from /proc/<pid>/stat (clock ticks)."""
    user = system = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        user += int(fields[11])
        system += int(fields[12])
    tick = os.sysconf("SC_CLK_TCK")
    return user / tick, system / tick


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
    print(f"{'path':12} {'p50 us':>8} {'p90 us':>8} {'p99 us':>8} {'max us':>8} {'Gbit/s':>8}")
    for label, r in rows:
        cells = " ".join(f"{r[k]:>8}" for k in ("p50", "p90", "p99", "max", "gbit_s"))
        print(f"{label:12} {cells}")


class AgentMeter:
    """Agent CPU (user, kernel) and wall time accumulated over the mesh's latency runs only."""

    def __init__(self, pids: list[int]):
        self.pids, self.user, self.system, self.wall = pids, 0.0, 0.0, 0.0

    def measure(self, fn, *args):
        (u0, s0), t0 = cpu_seconds(self.pids), time.monotonic()
        result = fn(*args)
        (u1, s1), t1 = cpu_seconds(self.pids), time.monotonic()
        self.user += u1 - u0
        self.system += s1 - s0
        self.wall += t1 - t0
        return result


def run_paths(pods: dict, targets: dict, meter: AgentMeter | None = None) -> list:
    """targets: label -> (host, echo port, iperf port) as the client pod reaches them."""
    rows = []
    for label, (host, echo, iperf) in targets.items():
        probe = (pods["client"], host, echo)
        rr = meter.measure(latency, *probe) if meter else latency(*probe)
        rr["gbit_s"] = throughput(pods["client"], host, iperf)
        rows.append((label, rr))
    return rows


def pod_targets(pods: dict) -> dict:
    return {
        label: (pods[server]["status"]["podIP"], 7000, 5201)
        for label, server in (("same node", "server-same"), ("cross node", "server-cross"))
    }


def run_stunnel(pods: dict) -> list:
    servers = {"same node": pods["server-same"], "cross node": pods["server-cross"]}
    with tempfile.TemporaryDirectory(prefix="nodemesh-stunnel-") as tmp:
        pair = StunnelPair(Path(tmp))
        pair.start(pods["client"], servers)
        try:
            targets = {label: ("127.0.0.1", *pair.ports[label]) for label in servers}
            return run_paths(pods, targets)
        finally:
            pair.stop()


def report(baseline: list, stunnel: list, mesh: list, meter: AgentMeter, rss: float) -> None:
    shape = (
        f"open loop {RATE} req/s × {SECONDS} s of 64 B echoes over 8 connections; "
        f"iperf3 {IPERF_SECONDS} s, one connection"
    )
    print(f"({shape})")
    table("baseline: no mesh, pod to pod over veth", baseline)
    table("stunnel4: a C mTLS tunnel pair (TLS 1.3, P-256) on the same paths", stunnel)
    table("mesh: enrolled namespace, HBONE mTLS between the pods' agents", mesh)
    print(f"{'vs baseline':12} {'+p50 us':>8} {'+p90 us':>8} {'+p99 us':>8} {'Gbit/s':>8}")
    for (label, b), (_, m) in zip(baseline, mesh, strict=True):
        added = " ".join(f"{m[k] - b[k]:>+8.0f}" for k in ("p50", "p90", "p99"))
        ratio = m["gbit_s"] / b["gbit_s"] if b["gbit_s"] else float("nan")
        print(f"{label:12} {added} {ratio:>7.2f}x   (mesh minus baseline; throughput ratio)")
    cores = (meter.user + meter.system) / meter.wall
    per_k = cores / (RATE / 1000)
    print(
        f"agents at {RATE} req/s: {cores:.3f} vCPU for both agents "
        f"(user {meter.user:.1f} s, kernel {meter.system:.1f} s over {meter.wall:.1f} s), "
        f"= {per_k:.3f} vCPU per 1,000 req/s; RSS {rss:.0f} MB for both agents "
        f"(each request crosses two agents on the cross-node path, one on the same node)"
    )


def main() -> int:
    state = StateDir("bench")
    cluster.down(state)
    try:
        cluster.up(state, 2, prometheus=False)  # no scrapes in the measurement
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
        baseline = run_paths(pods, pod_targets(pods))
        stunnel = run_stunnel(pods)
        enroll(state, pods)
        meter = AgentMeter(agent_pids(state))
        mesh = run_paths(pods, pod_targets(pods), meter)
        report(baseline, stunnel, mesh, meter, rss_mb(meter.pids))
        return 0
    finally:
        cluster.down(state)


if __name__ == "__main__":
    sys.exit(main())
