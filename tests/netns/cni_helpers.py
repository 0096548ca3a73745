"""What the CNI tests share: a pod sandbox made as a runtime makes it, the plugin run as a runtime
runs it, processes in node netns, waits that show the logs on failure, and the cleanup.

Used by tests/netns/test_cni.py (one node, a local-mode controller) and
tests/netns/test_kube_mode.py (two nodes, Kubernetes mode against the fake API server).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from node_agent import bpf_types as bt
from node_agent import capture as cap
from node_agent.cni.protocol import Code
from nodemesh import bpffs
from nodemesh.local import cgroups, netns
from nodemesh.local.launch import launch_argv
from tests.netns.test_mesh import until as poll_until

REPO = Path(__file__).resolve().parents[2]
PLUGIN = REPO / "node_agent" / "cni" / "nodemesh-cni"
TIMEOUT = 60.0  # first enrollment compiles the BPF programs


class Sandbox:
    """A pod sandbox as a runtime and a bridge/ptp CNI make it: a netns with `eth0` holding
    `address`/24 and a default route via `gateway`, whose peer (`veth`, holding `gateway`/24)
    sits in the existing `node_netns`; a cgroup for the pod's processes."""

    def __init__(
        self, node_netns: str, netns_name: str, cgroup: Path, veth: str, address: str, gateway: str
    ) -> None:
        self.node_netns, self.netns = node_netns, netns_name
        self.cgroup = cgroup  # no uid in the name: the plugin finds it through the netns
        self.veth, self.address, self.gateway = veth, address, gateway

    @property
    def netns_path(self) -> str:
        return str(netns.netns_path(self.netns))

    def create(self) -> None:
        subprocess.run(["ip", "netns", "add", self.netns], check=True)
        netns.ip_batch(
            [
                f"link add {self.veth} type veth peer name eth0 netns {self.netns}",
                f"link set {self.veth} up",
                f"addr add {self.gateway}/24 dev {self.veth}",
            ],
            self.node_netns,
        )
        netns.ip_batch(
            [
                "link set lo up",
                "link set eth0 up",
                f"addr add {self.address}/24 dev eth0",
                f"route add default via {self.gateway}",
            ],
            self.netns,
        )
        cgroups.ensure(self.cgroup)

    def run(self, *cmd: str, log: Path | None = None) -> subprocess.Popen:
        """A process of the pod (in its netns and cgroup); output piped, or into `log`."""
        argv = launch_argv(sys.executable, self.netns, list(cmd), cgroup=str(self.cgroup))
        if log is None:
            return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        with open(log, "w") as out:
            return subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)

    def cni_env(self, namespace: str, name: str, uid: str, container_id: str) -> dict[str, str]:
        """The CNI_* environment a runtime passes for this sandbox's pod."""
        return {
            "CNI_CONTAINERID": container_id,
            "CNI_NETNS": self.netns_path,
            "CNI_IFNAME": "eth0",
            "CNI_ARGS": f"IgnoreUnknown=1;K8S_POD_NAMESPACE={namespace};K8S_POD_NAME={name};"
            f"K8S_POD_UID={uid}",
            "CNI_PATH": "/opt/cni/bin",
        }

    def cni_config(self, socket_path: str, log: Path, **extra) -> dict:
        """A chained network configuration whose prevResult carries this sandbox's address."""
        return {
            "cniVersion": "1.0.0",
            "name": "k8s-pod-network",
            "type": "nodemesh-cni",
            "agentSocket": socket_path,
            "logFile": str(log),
            "prevResult": {
                "cniVersion": "1.0.0",
                "interfaces": [{"name": "eth0", "sandbox": self.netns_path}],
                "ips": [{"address": f"{self.address}/24", "gateway": self.gateway, "interface": 0}],
            },
            **extra,
        }


def spawn_in(netns_name: str, log: Path, *cmd: str) -> subprocess.Popen:
    """`python *cmd` inside `netns_name`, in a session of its own (stopped by `stop`)."""
    argv = launch_argv(sys.executable, netns_name, [sys.executable, *cmd])
    with open(log, "w") as out:
        return subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def stop(proc: subprocess.Popen | None) -> None:
    if proc is not None and proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def cni(command: str, config: dict | bytes, **env: str) -> tuple[int, dict | None]:
    """Run the installed-style plugin with a runtime's bare environment."""
    environ = {"CNI_COMMAND": command, "PATH": "/usr/sbin:/usr/bin:/sbin:/bin", **env}
    stdin = config if isinstance(config, bytes) else json.dumps(config).encode()
    proc = subprocess.run(
        [str(PLUGIN)], input=stdin, env=environ, capture_output=True, timeout=TIMEOUT
    )
    out = proc.stdout.decode()
    return proc.returncode, json.loads(out) if out.strip() else None


def captured_programs(cgroup: Path) -> list[int]:
    return cap.attached_programs(cgroup, bt.ATTACH_INET4_CONNECT)


def cni_add_retried(config: dict, logs: list[Path], **env: str) -> dict:
    """The runtime's ADD, retried on code 11 as runtimes do (agent still bootstrapping,
    compiling). Asserts it succeeded, with the rig's log tails if not; returns the answer."""
    code, answer = 1, None
    for _ in range(10):
        code, answer = cni("ADD", config, **env)
        if code == 0 or answer["code"] != Code.TRY_AGAIN_LATER:
            break
    assert code == 0, f"ADD {env.get('CNI_CONTAINERID', '')} failed: {answer}\n{log_tails(logs)}"
    return answer


def log_tails(logs: list[Path]) -> str:
    return "\n".join(f"--- {p.name}\n{p.read_text()[-3000:]}" for p in logs if p.exists())


def until(predicate, what: str, logs: list[Path], timeout: float = TIMEOUT):
    """test_mesh.until, and on failure the tails of the rig's logs: the components run outside
    any cluster here, so their logs are the only account of why nothing happened."""
    try:
        return poll_until(predicate, timeout=timeout, what=what)
    except AssertionError as failure:
        raise AssertionError(f"{failure}\n{log_tails(logs)}") from None


def remove_everything(prefix: str, cgroup_root: Path, *pin_roots: Path) -> None:
    """Every pin, bpffs mount, cgroup (and its processes) and netns a rig made; idempotent."""
    for pin_root in pin_roots:
        cap.cleanup_all(pin_root)
        if not bpffs.release(pin_root) and pin_root.is_dir() and not os.path.ismount(pin_root):
            pin_root.rmdir()
    cgroups.remove_tree(cgroup_root)
    for name in netns.list_netns(prefix):
        subprocess.run(["ip", "netns", "del", name], check=False)
