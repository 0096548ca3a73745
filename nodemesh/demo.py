"""The local demo: a cluster, the hello app, and requests across nodes by Service name.

Kept apart from the CLI so tests can drive it; it prints through the `say` callback it is given.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from nodemesh.cli.waypoint_ops import enrolled_namespace, gateway_manifest, wait_ready
from nodemesh.local import cluster
from nodemesh.local.launch import launch_argv
from nodemesh.local.state import StateDir
from nodemesh.local.store import Store
from nodemesh.local.system import wait_captured
from nodemesh.local.wait import wait_for
from nodemesh.manifests.load import load_paths

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "hello"
L7_EXAMPLES = EXAMPLES.parent / "hello-l7"
REQUESTS = 8
MAX_REQUESTS = 40


class DemoError(RuntimeError):
    pass


def run_demo(state: StateDir, say: Callable[[str], None], nodes: int = 2) -> None:
    say(f"1. Local cluster {state.cluster!r}: nodes are network namespaces on one bridge.")
    result = cluster.up(state, nodes)
    say(f"   {result.note}")
    say(
        f"2. Applying {EXAMPLES.relative_to(EXAMPLES.parents[1])}/: a 2-replica 'hello' "
        "Deployment, its Service and a client pod."
    )
    manifests = load_paths([str(EXAMPLES)])
    store = Store(state)
    store.apply(manifests)
    cluster.wake_runtime(state)
    waiting = wait_for(
        state, store.generation(), [m.obj for m in manifests], deleted=False, timeout=90
    )
    if waiting:
        raise DemoError("the demo app did not become ready:\n  " + "\n  ".join(waiting))
    status = cluster.read_status(state)
    pods = {
        p["metadata"]["name"]: p for p in status["pods"] if p["metadata"]["namespace"] == "demo"
    }
    client = pods["client"]
    if not wait_captured(state, len(pods)):
        raise DemoError(
            "the node agents did not enroll the demo pods; see "
            "'meshctl logs nodemesh-agent-node1 -n nodemesh-system'"
        )
    for name, pod in sorted(pods.items()):
        say(f"   pod {name:28} {pod['status']['podIP']:13} on {pod['spec']['nodeName']}")
    svc = next(s for s in status["services"] if s["namespace"] == "demo" and s["name"] == "hello")
    say(f"   service hello.demo has virtual IP {svc['clusterIP']}:80")
    say(
        f"3. {REQUESTS} requests from the client (on {client['spec']['nodeName']}) to "
        "http://hello.demo/ — a Service name, resolved by the cluster DNS and load-balanced:"
    )
    answers: Counter[str] = Counter()
    client_node = client["spec"]["nodeName"]
    sent = 0
    # Balancing is random (as kube-proxy's), so keep going, boundedly, until one request crosses.
    while sent < REQUESTS or (sent < MAX_REQUESTS and set(answers) <= {client_node}):
        out = curl_in_pod(client, "http://hello.demo/")
        say(f"   {out}")
        answers[out.split(" on ")[1].split(" ")[0] if " on " in out else "?"] += 1
        sent += 1
    cross = sum(n for node, n in answers.items() if node != client_node)
    if cross == 0:
        raise DemoError("no request crossed nodes; see 'meshctl get pods -A -o wide'")
    say(
        f"4. {cross} of {sent} requests crossed from {client['spec']['nodeName']} to another "
        "node, by Service name."
    )
    say_mesh(state, client_node, say)
    say_waypoint(state, client, say)
    say(
        "   Explore: meshctl get pods -A -o wide | meshctl waypoint list -n demo | "
        "meshctl trace client hello -n demo --http GET /admin --explain | meshctl dashboard | "
        "meshctl local down"
    )


def say_waypoint(state: StateDir, client: dict, say: Callable[[str], None]) -> None:
    """A waypoint for the namespace, an L7 policy, and what it does to two requests."""
    say(
        "6. L7: 'meshctl waypoint apply -n demo --enroll-namespace' gives the namespace a "
        "waypoint (an HTTP proxy with its own identity), and an AuthorizationPolicy refuses /admin:"
    )
    store = Store(state)
    store.apply([enrolled_namespace(store.objects(), "demo", "waypoint")])
    store.apply([gateway_manifest("demo", "waypoint")])
    store.apply(load_paths([str(L7_EXAMPLES)]))
    cluster.wake_runtime(state)
    reason = wait_ready(lambda: cluster.read_status(state), "demo", "waypoint", 90)
    if reason is not None:
        raise DemoError(f"the demo waypoint is not ready: {reason}")
    refused = _until_refused(client)
    allowed = curl_in_pod(client, "http://hello.demo/")
    say(f"   GET /       → {allowed}")
    say(f"   GET /admin  → {refused}")


def _until_refused(client: dict, timeout: float = 30.0) -> str:
    """The /admin answer once the policy has reached the waypoint (a push takes a moment)."""
    deadline = time.monotonic() + timeout
    while True:
        out = curl_in_pod(client, "http://hello.demo/admin")
        if "RBAC" in out or time.monotonic() > deadline:
            return out
        time.sleep(0.3)


def say_mesh(state: StateDir, node: str, say: Callable[[str], None]) -> None:
    """What the client's node agent recorded: every request crossed as mutual TLS."""
    pods = {p["metadata"]["name"]: p for p in cluster.read_status(state)["pods"]}
    log_dir = Path(pods[f"nodemesh-agent-{node}"]["sandbox"]["logDir"])
    lines = (log_dir / "agent.log").read_text(errors="replace").splitlines()
    access = [json.loads(line) for line in lines if line.startswith('{"timestamp"')]
    mesh = [a for a in access if a.get("direction") == "outbound" and a.get("dst.identity")]
    if not mesh:
        raise DemoError(
            f"the agent on {node} recorded no mTLS connection; see "
            f"'meshctl logs nodemesh-agent-{node} -n nodemesh-system'"
        )
    last = mesh[-1]
    say(
        f"5. The namespace is enrolled (nodemesh.io/dataplane-mode=ambient): eBPF in the client "
        f"pod handed each connection to the {node} agent, which carried it over HBONE "
        "(HTTP/2 CONNECT over mutual TLS 1.3) to the server pod's agent. Its access log:"
    )
    say(f"   {last['src.identity']} → {last['dst.identity']}")
    say(
        f"   route {last.get('route')}, {last['bytes_sent']} B sent, {last['bytes_recv']} B "
        f"received, {len(mesh)} connections in mTLS"
    )


def curl_in_pod(pod: dict, url: str) -> str:
    sandbox = pod["sandbox"]
    argv = launch_argv(
        sys.executable,
        sandbox["netns"],
        ["curl", "-sS", "--max-time", "5", url],
        cgroup=f"{sandbox['cgroup']}/{pod['spec']['containers'][0]['name']}",
    )
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=15, check=False)
    if proc.returncode != 0:
        raise DemoError(
            f"curl {url} from pod {pod['metadata']['name']} failed: "
            f"{proc.stderr.strip() or proc.returncode}"
        )
    return proc.stdout.strip()
