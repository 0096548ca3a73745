"""Bring a local cluster up and down, and read its state: what `meshctl local …` drives.

`up` writes the cluster's plan to its state directory before it creates anything, and every name
it creates carries the cluster's prefix (netns `nm-<cluster>-…`, cgroup `nodemesh-<cluster>`,
/etc/netns/nm-<cluster>-…). So `down` finds everything by name even when `up` was killed midway or
the runtime crashed, and removes it: processes first (cgroup.kill, then anything still inside the
namespaces), then namespaces (their veths and routes go with them), then files.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from nodemesh import bpffs
from nodemesh.local import cgroups, netns, network
from nodemesh.local.addressing import (
    CGROUP_PREFIX,
    NETNS_PREFIX,
    ClusterPlan,
    check_cluster_name,
    cluster_netns_prefix,
    plan_cluster,
)
from nodemesh.local.credentials import create_node_tokens
from nodemesh.local.launch import ETC_NETNS
from nodemesh.local.prometheus import INSTALL_HINT, find_binary
from nodemesh.local.prometheus import system_manifest as prometheus_manifest
from nodemesh.local.prometheus_config import PORT as PROMETHEUS_PORT
from nodemesh.local.runtime import load_plan
from nodemesh.local.state import StateDir, list_clusters, read_json, write_json_atomic
from nodemesh.local.store import Store
from nodemesh.local.system import CONTROLLER, SYSTEM_NAMESPACE, system_manifest
from nodemesh.local.wait import wait_for
from nodemesh.manifests.load import parse_documents

READY_TIMEOUT = 30.0
BPF_PIN_ROOT = bpffs.LOCAL_ROOT  # node agents pin under <root>/<cluster>/<node>
STOP_TIMEOUT = 10.0


class ClusterError(RuntimeError):
    """A cluster operation that cannot go on; the message says what to do."""


@dataclass(frozen=True)
class UpResult:
    plan: ClusterPlan
    created: bool  # False: it was already up (or only the runtime was restarted)
    note: str
    prometheus: str = ""  # where Prometheus listens, or why there is none


def up(state: StateDir, nodes: int, prometheus: bool = True) -> UpResult:
    """Create (or repair) the cluster and its system pods; Prometheus too unless told not to."""
    result = _up(state, nodes, prometheus)
    return UpResult(result.plan, result.created, result.note, _prometheus_note(state, prometheus))


def _prometheus_note(state: StateDir, wanted: bool) -> str:
    if not wanted:
        return "Prometheus: not started (--no-prometheus); 'meshctl dashboard' starts it"
    if find_binary() is None:
        return f"Prometheus: not installed, so not started; {INSTALL_HINT}"
    node = load_plan(state).nodes[0]
    return f"Prometheus: http://{node.address}:{PROMETHEUS_PORT} (in netns {node.netns})"


def _up(state: StateDir, nodes: int, prometheus: bool) -> UpResult:
    check_cluster_name(state.cluster)
    if state.exists():
        plan = load_plan(state)
        if state.daemon_pid():
            install_system(state, plan, prometheus=prometheus)
            return UpResult(plan, False, f"cluster {state.cluster!r} is already up")
        missing = [
            n for n in [plan.hub_netns, *(x.netns for x in plan.nodes)] if not netns.netns_exists(n)
        ]
        if missing:
            raise ClusterError(
                f"cluster {state.cluster!r} is half made (missing {', '.join(missing)}); "
                f"run 'meshctl local down' and then 'meshctl local up' again"
            )
        bpffs.ensure(BPF_PIN_ROOT)
        start_runtime(state)
        install_system(state, plan, prometheus=prometheus)
        return UpResult(plan, False, f"cluster {state.cluster!r} was up; restarted its runtime")
    leftovers = netns.list_netns(cluster_netns_prefix(state.cluster))
    if leftovers:
        down(state)  # remains of a crashed cluster of this name, with no state to go by
    plan = plan_cluster(state.cluster, nodes)
    write_json_atomic(
        state.cluster_file,
        {
            "name": plan.name,
            "hub_netns": plan.hub_netns,
            "nodes": [n.to_json() for n in plan.nodes],
            "created": time.time(),
        },
    )
    create_node_tokens(state, [n.name for n in plan.nodes])
    network.create_cluster_network(plan)
    # Mounted here, in the host's mount namespace, before any agent starts: each agent's own
    # (slave) mount namespace is then a copy sharing this bpffs, so its pins outlive it and a
    # restarted agent re-adopts them. An agent mounting it itself would hide it from the host.
    bpffs.ensure(BPF_PIN_ROOT)
    start_runtime(state)
    install_system(state, plan, prometheus=prometheus)
    return UpResult(plan, True, f"cluster {state.cluster!r} is up with {nodes} nodes")


def install_system(
    state: StateDir, plan: ClusterPlan, timeout: float = 60.0, prometheus: bool = True
) -> None:
    """Apply the mesh's own components (idempotent) and wait until the controller is ready.

    Prometheus is one of them when asked for and installed; without it the mesh works the same.
    """
    text = system_manifest(state, plan)
    extra = prometheus_manifest(state) if prometheus else None
    if extra:
        text += "---\n" + extra
    manifests = parse_documents(text, "<nodemesh-system>")
    store = Store(state)
    store.apply(manifests)
    wake_runtime(state)
    waiting = wait_for(
        state, store.generation(), [m.obj for m in manifests], deleted=False, timeout=timeout
    )
    if waiting:
        raise ClusterError(
            "the controller did not become ready:\n  "
            + "\n  ".join(waiting)
            + f"\nsee 'meshctl logs {CONTROLLER} -n {SYSTEM_NAMESPACE}'"
        )


def start_runtime(state: StateDir) -> int:
    with open(state.daemon_log, "ab") as logf:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "nodemesh.local.runtime",
                "--cluster",
                state.cluster,
                "--state-root",
                str(state.path.parent),
            ],
            stdin=subprocess.DEVNULL,
            stdout=logf,
            stderr=logf,
            start_new_session=True,
        )
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        status = read_json(state.status_file, {}) or {}
        if status.get("runtimePid") == proc.pid and status.get("runtimeReady"):
            return proc.pid
        if proc.poll() is not None:
            raise ClusterError(
                f"the runtime exited with {proc.returncode}:\n{tail(state.daemon_log)}"
            )
        time.sleep(0.05)
    raise ClusterError(
        f"the runtime did not become ready in {READY_TIMEOUT:g}s:\n{tail(state.daemon_log)}"
    )


def tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log)"


def wake_runtime(state: StateDir) -> None:
    pid = state.daemon_pid()
    if pid is None:
        raise ClusterError(
            f"cluster {state.cluster!r} has no running runtime; run 'meshctl local up'"
        )
    os.kill(pid, signal.SIGHUP)


def runtime_pids(cluster: str) -> list[int]:
    """Runtime daemons of `cluster`, by command line: a killed `up` may leave no pid file."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"nodemesh.local.runtime" not in argv or b"--cluster" not in argv:
            continue
        at = argv.index(b"--cluster") + 1
        if argv[at : at + 1] == [cluster.encode()]:
            found.append(int(entry.name))
    return found


def _stop_runtimes(cluster: str) -> list[int]:
    pids = runtime_pids(cluster)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT
    while runtime_pids(cluster) and time.monotonic() < deadline:
        time.sleep(0.05)
    for pid in runtime_pids(cluster):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return pids


def down(state: StateDir) -> list[str]:
    """Remove everything of one cluster; safe to run when nothing (or only part) exists."""
    removed = [f"runtime (pid {pid})" for pid in _stop_runtimes(state.cluster)]
    cg = cgroups.cgroup2_root() / f"{CGROUP_PREFIX}{state.cluster}"
    if cg.exists():
        cgroups.remove_tree(cg)
        removed.append(f"cgroup {cg}")
    prefix = cluster_netns_prefix(state.cluster)
    for name in netns.list_netns(prefix):
        for p in netns.netns_pids(name):
            with contextlib.suppress(ProcessLookupError):
                os.kill(p, signal.SIGKILL)
        netns.run(["ip", "netns", "del", name])
        removed.append(f"netns {name}")
    pins = BPF_PIN_ROOT / state.cluster
    if pins.exists():  # agents pin capture links here; a killed agent leaves them behind
        shutil.rmtree(pins, ignore_errors=True)
        removed.append(f"pinned BPF objects {pins}")
    if ETC_NETNS.is_dir():
        for entry in ETC_NETNS.iterdir():
            if entry.name.startswith(prefix):
                shutil.rmtree(entry, ignore_errors=True)
    if state.path.exists():
        shutil.rmtree(state.path, ignore_errors=True)
        removed.append(f"state {state.path}")
    if not list_clusters() and BPF_PIN_ROOT.exists() and bpffs.release(BPF_PIN_ROOT):
        removed.append(f"bpffs {BPF_PIN_ROOT}")  # the last cluster is gone
    return removed


def all_cluster_names(state_root: Path | None = None) -> list[str]:
    """Every cluster with anything left on this machine: state, namespaces or cgroups."""
    names = set(list_clusters(state_root))
    for ns in netns.list_netns(NETNS_PREFIX):
        names.add(ns[len(NETNS_PREFIX) :].split("-", 1)[0])
    with contextlib.suppress(cgroups.CgroupError, FileNotFoundError):
        for entry in cgroups.cgroup2_root().iterdir():
            if entry.is_dir() and entry.name.startswith(CGROUP_PREFIX):
                names.add(entry.name[len(CGROUP_PREFIX) :])
    return sorted(names)


def read_status(state: StateDir) -> dict:
    if not state.exists():
        raise ClusterError(
            f"no local cluster {state.cluster!r}; create one with 'meshctl local up'"
        )
    status = read_json(state.status_file, None)
    if not isinstance(status, dict):
        raise ClusterError(f"cluster {state.cluster!r} has published no status yet")
    status["runtimeAlive"] = state.daemon_pid() is not None
    return status


def dumps(doc: object) -> str:
    return json.dumps(doc, indent=2, sort_keys=True)
