"""The real CNI plugin executable, driven as a container runtime drives it, against a real agent.

The test plays kubelet, the container runtime and the API server. It makes a node netns with a
real controller and a real node agent in it (`--cni-socket`), a pod sandbox (netns + veth +
cgroup, a pause-like process inside), and publishes the pod to the controller as Kubernetes does
between scheduling and CNI: bound to the node, no IP yet (a pending workload). Then it runs
`node_agent/cni/nodemesh-cni` with the CNI_* environment and the network configuration on
stdin: when ADD returns, the agent's capture programs are on the pod's cgroup and a connect from
inside the pod lands on the agent; CHECK succeeds; DEL (twice) removes capture; VERSION and
malformed calls are answered with CNI JSON and the spec's codes.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from node_agent.cni.protocol import Code
from node_agent.sandboxes import scan_netns
from nodemesh import bpffs
from nodemesh.local import admin_client, cgroups, netns
from nodemesh.local.credentials import create_node_tokens
from nodemesh.local.state import StateDir, write_json_atomic
from tests.netns.cluster_helpers import cluster_name_for
from tests.netns.cni_helpers import (
    TIMEOUT,
    Sandbox,
    captured_programs,
    cni,
    cni_add_retried,
    remove_everything,
    spawn_in,
    stop,
    until,
)

pytestmark = pytest.mark.netns

NODE = "node1"
POD_IP, GATEWAY = "198.19.214.2", "198.19.214.1"
UID = "0b5c1d2e-cni0-4000-8000-000000000001"


def namespace_obj() -> dict:
    labels = {"nodemesh.io/dataplane-mode": "ambient"}
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop", "labels": labels}}


def pending_pod() -> dict:
    """The pod as the API server has it while CNI ADD runs: bound to the node, no IP yet."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "web-0", "namespace": "shop", "uid": UID, "labels": {"app": "web"}},
        "spec": {"nodeName": NODE, "serviceAccountName": "web", "containers": [{"name": "c"}]},
        "status": {"phase": "Pending"},
    }


def write_registry(state: StateDir) -> None:
    """What the controller's local registry reads: the store (Namespace) and the pods."""
    ns = namespace_obj()
    record = {"applied": ns, "uid": "ns-shop", "created": "2026-01-01T00:00:00Z", "generation": 1}
    write_json_atomic(state.store_file, {"generation": 1, "objects": {"Namespace/shop": record}})
    write_json_atomic(state.status_file, {"pods": [pending_pod()]})


@pytest.fixture
def rig(request, tmp_path):
    name = "cni" + cluster_name_for(request.node.nodeid)[1:7]
    cgroup_root = cgroups.cgroup2_root() / f"nodemesh-{name}"
    pin_root = Path(f"/run/nodemesh/bpf-test-{name}")
    remove_everything(name, cgroup_root, pin_root)  # remains of a crashed earlier run
    state = StateDir(name, tmp_path)
    node_netns = f"{name}-node"
    sandbox = Sandbox(
        node_netns, f"{name}-pod", cgroup_root / "pod-web-0", f"{name}v", POD_IP, GATEWAY
    )
    procs: list[subprocess.Popen] = []
    try:
        subprocess.run(["ip", "netns", "add", node_netns], check=True)
        netns.ip_batch(["link set lo up"], node_netns)
        sandbox.create()
        bpffs.ensure(pin_root)  # on the host, so the agent's pins are visible (and removable)
        create_node_tokens(state, [NODE])
        write_registry(state)
        logs = [tmp_path / "controller.log", tmp_path / "agent.log"]
        controller = spawn_in(
            sandbox.node_netns,
            logs[0],
            *("-m", "controller", "--local-state", str(state.path), "--listen", "127.0.0.1"),
            *("--admin-port", "15100", "--metrics-port", "-1"),
        )
        procs.append(controller)
        socket_path = str(tmp_path / "cni.sock")
        agent = spawn_in(
            sandbox.node_netns,
            logs[1],
            *("-m", "node_agent", "--node", NODE, "--controller", "127.0.0.1"),
            *("--local-state", str(state.path), "--pin-root", str(pin_root)),
            *("--cni-socket", socket_path),
        )
        procs.append(agent)
        sandbox.run("sleep", "infinity")  # the sandbox's own process, as pause is (cgroup-killed)
        until(lambda: os.path.exists(socket_path), "the agent's CNI socket", logs)
        yield sandbox, socket_path, logs, tmp_path
    finally:
        for proc in reversed(procs):  # the agent first: it detaches capture on SIGTERM
            with contextlib.suppress(ProcessLookupError):
                stop(proc)
        remove_everything(name, cgroup_root, pin_root)
        left = netns.list_netns(name) + [str(p) for p in (cgroup_root, pin_root) if p.exists()]
        assert not left, f"teardown left {left}"


def test_add_returns_with_capture_in_place_then_check_and_del(rig):
    sandbox, socket_path, logs, tmp = rig
    config = sandbox.cni_config(socket_path, tmp / "cni.log")
    env = sandbox.cni_env("shop", "web-0", UID, "sandbox-web-0")
    assert captured_programs(sandbox.cgroup) == []
    answer = cni_add_retried(config, logs, **env)
    assert answer == config["prevResult"]  # passed through unchanged
    # ADD returned: capture is on the pod's cgroup, and the pod's first connect is captured.
    assert captured_programs(sandbox.cgroup) != []
    client = sandbox.run(
        sys.executable,
        "-c",
        "import socket; s = socket.create_connection(('198.19.214.1', 9), 5); "
        "print(s.getpeername()[0])",
    )
    client.communicate(timeout=TIMEOUT)
    # The connect went to the agent, not the wire: the pod's capture counter says so.
    until(lambda: _captured_outbound(sandbox.node_netns) > 0, "the captured connect", logs)

    assert cni("CHECK", config, **env) == (0, None)
    no_prev = {k: v for k, v in config.items() if k != "prevResult"}
    assert cni("DEL", no_prev, **env) == (0, None)
    assert captured_programs(sandbox.cgroup) == []
    assert cni("DEL", no_prev, **env) == (0, None)  # idempotent
    assert cni("DEL", no_prev, **{**env, "CNI_NETNS": ""}) == (0, None)  # netns already gone
    code, answer = cni("CHECK", config, **env)
    assert (code, answer["code"]) == (1, Code.NOT_CAPTURED)
    lines = [json.loads(line) for line in (tmp / "cni.log").read_text().splitlines()]
    assert [line["command"] for line in lines if line["outcome"] == "ok"][-3:] == ["DEL"] * 3


def _captured_outbound(node_netns: str) -> int:
    """The agent's own count of connects its programs redirected for the pod (admin API)."""
    workloads = admin_client.get_json(node_netns, 15000, "/debug/workloads")
    mine = [w["capture"] for w in workloads if w["uid"] == UID and w["capture"]]
    if not mine:
        return 0
    # The admin endpoint renders the counters as their repr: CounterValues(captured_outbound=1, ...)
    found = re.search(r"captured_outbound=(\d+)", str(mine[0]))
    assert found, f"no captured_outbound in {mine[0]!r}"
    return int(found.group(1))


def test_version_and_malformed_calls_are_answered_with_cni_json(rig):
    sandbox, socket_path, _, tmp = rig
    config = sandbox.cni_config(socket_path, tmp / "cni.log")
    env = {
        "CNI_CONTAINERID": "x",
        "CNI_NETNS": sandbox.netns_path,
        "CNI_IFNAME": "eth0",
        "CNI_ARGS": "K8S_POD_NAMESPACE=shop;K8S_POD_NAME=web-0",
    }
    code, answer = cni("VERSION", {"cniVersion": "1.0.0"})
    assert code == 0 and "1.0.0" in answer["supportedVersions"]
    for stdin, call_env, expected in [
        (b"{not json", env, Code.DECODE_FAILURE),
        (config, {k: v for k, v in env.items() if k != "CNI_NETNS"}, Code.INVALID_ENV),
        (config | {"cniVersion": "0.1.0"}, env, Code.INCOMPATIBLE_VERSION),
    ]:
        code, answer = cni("ADD", stdin, **call_env)
        assert code != 0
        assert set(answer) == {"cniVersion", "code", "msg", "details"}
        assert answer["code"] == expected, answer
    # A namespace the config excludes is passed through without asking the agent.
    excluded = {**env, "CNI_ARGS": "K8S_POD_NAMESPACE=kube-system;K8S_POD_NAME=dns"}
    unreachable = config | {"agentSocket": str(tmp / "nobody.sock")}
    assert cni("ADD", unreachable, **excluded) == (0, config["prevResult"])
    code, answer = cni("ADD", unreachable, **env)
    assert (code, answer["code"]) == (1, Code.TRY_AGAIN_LATER)  # fail closed: retried later


def test_adoption_finds_a_running_pods_netns_and_cgroup_from_proc(rig):
    """Pods running since before the plugin: the netns holding the pod IP, via /proc."""
    sandbox, *_ = rig
    views = [v for v in scan_netns() if POD_IP in v.addresses]
    assert len(views) == 1, views
    [view] = views
    # The runtime's bind mount (/var/run → /run), not a /proc/<pid> link that dies with the pid.
    assert os.path.realpath(view.path) == os.path.realpath(sandbox.netns_path)
    mount = cgroups.cgroup2_root()
    assert mount / view.cgroup.lstrip("/") == sandbox.cgroup
