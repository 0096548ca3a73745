"""The pods' sandboxes this agent knows in Kubernetes mode: where each pod's netns and cgroup are.

In local mode the controller's Workload names a pod's netns and cgroup (the local runtime made
them). In Kubernetes mode it cannot (the API server has no such field), so the agent learns them
on the node itself, two ways:
- from the CNI plugin (node_agent.cni_server), for every pod started after the agent: the
  sandbox arrives before the pod's first packet, and often before the API server has its IP;
- by adoption, for pods already running when the agent (or the plugin) arrived: the netns
  holding the pod's IP is found by looking at every process's netns (as Istio's CNI node agent
  does), reading each netns's local addresses from /proc/<pid>/net (no setns needed).

`SandboxStore` keeps them by pod uid and persists them (one JSON file in the agent's state dir),
so a restarted agent re-adopts its pods without waiting for a CNI call that will never come
again. `merge` gives the agent the workload it enrolls: the controller's, with the sandbox's
netns, cgroup and (while the API server has none yet) addresses. Selection is pure; the /proc
walk (`scan_netns`) is the thin I/O edge.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import logging
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from controller.model import Workload
from node_agent.cni.cgroup import parse_proc_cgroup, pod_cgroup_in
from node_agent.cni.wire import PodInfo
from nodemesh.local.state import write_json_atomic

log = logging.getLogger("nodemesh.agent.sandboxes")

CNI = "cni"  # Sandbox.source: reported by the CNI plugin
ADOPTED = "adopted"  # Sandbox.source: found on the node for a pod already running


@dataclass(frozen=True)
class Sandbox:
    uid: str  # the pod's metadata.uid (the controller's Workload key)
    namespace: str
    name: str
    container_id: str  # CNI_CONTAINERID ("" for an adopted pod): DEL and GC name this
    netns: str  # path of the pod's network namespace
    cgroup: str  # the pod's cgroup v2 directory (absolute)
    ips: tuple[str, ...]  # the pod's addresses as the CNI result gave them
    source: str = CNI  # CNI or ADOPTED

    def to_json(self) -> dict:
        return dataclasses.asdict(self) | {"ips": list(self.ips)}

    @classmethod
    def from_json(cls, data: dict) -> Sandbox:
        return cls(**{**data, "ips": tuple(data.get("ips", ()))})


def resolve(local: Mapping[str, Workload], pod: PodInfo) -> Workload | None:
    """The controller's workload for a pod the plugin reports: by uid, else by namespace/name."""
    if pod.uid:
        return local.get(pod.uid)
    return next(
        (w for w in local.values() if (w.namespace, w.name) == (pod.namespace, pod.name)), None
    )


def from_cni(workload: Workload, pod: PodInfo) -> Sandbox:
    return Sandbox(
        uid=workload.uid,
        namespace=pod.namespace,
        name=pod.name,
        container_id=pod.container_id,
        netns=pod.netns,
        cgroup=pod.cgroup,
        ips=pod.ips,
    )


def merge(workload: Workload, sandbox: Sandbox | None) -> Workload:
    """The workload to enroll: the controller's view, completed from the node's.

    The controller's netns/cgroup win when it has them (local mode); its addresses win once it
    has them (the API server is the truth), the CNI result's until then."""
    if sandbox is None:
        return workload
    return dataclasses.replace(
        workload,
        netns=workload.netns or sandbox.netns,
        cgroup=workload.cgroup or sandbox.cgroup,
        addresses=workload.addresses or sandbox.ips,
    )


def needs_adoption(
    local: Mapping[str, Workload], known: Mapping[str, Sandbox], skip: Iterable[str] = ()
) -> list[Workload]:
    """Enrolled pods with an address but no sandbox: running since before the plugin saw them."""
    skipped = set(skip)
    return [
        w
        for uid, w in local.items()
        if w.enrolled and w.addresses and not w.netns and uid not in known and uid not in skipped
    ]


# --- adoption: which netns holds a pod's IP -------------------------------------------------------


@dataclass(frozen=True)
class NetnsView:
    """One network namespace seen from /proc."""

    key: tuple[int, int]  # (st_dev, st_ino) of the netns: identity
    pid: int  # the lowest pid in it (a sandbox's pause process outlives its containers)
    addresses: frozenset[str]  # its local addresses
    path: str  # a path that names it: a bind mount under /var/run/netns, else /proc/<pid>/ns/net
    cgroup: str  # the cgroup v2 path of `pid` ("/kubepods.slice/...")


def fib_trie_locals(text: str) -> set[str]:
    """IPv4 addresses a netns owns, from its /proc/<pid>/net/fib_trie ("/32 host LOCAL" leaves)."""
    found, last = set(), ""
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("|-- "):
            last = stripped[4:]
        elif stripped.startswith("/32 host LOCAL") and last:
            found.add(last)
    return {a for a in found if not a.startswith("127.")}


def if_inet6_locals(text: str) -> set[str]:
    """IPv6 addresses of a netns, from /proc/<pid>/net/if_inet6 (no loopback, no link-local)."""
    found = set()
    for line in text.splitlines():
        fields = line.split()
        if not fields or len(fields[0]) != 32:
            continue
        address = ipaddress.IPv6Address(bytes.fromhex(fields[0]))
        if not (address.is_loopback or address.is_link_local):
            found.add(str(address))
    return found


def choose(
    views: Iterable[NetnsView], workload: Workload, own: tuple[int, int]
) -> NetnsView | None:
    """The one netns (not the agent's own) holding the pod's primary IP; None if none or several."""
    holding = [v for v in views if v.key != own and workload.addresses[0] in v.addresses]
    return holding[0] if len(holding) == 1 else None


def adopted(view: NetnsView, workload: Workload, cgroup_mount: Path) -> Sandbox:
    cgroup = pod_cgroup_in(view.cgroup, workload.uid)
    return Sandbox(
        uid=workload.uid,
        namespace=workload.namespace,
        name=workload.name,
        container_id="",
        netns=view.path,
        cgroup=str(cgroup_mount / cgroup.lstrip("/")),
        ips=workload.addresses,
        source=ADOPTED,
    )


def scan_netns(
    proc: Path = Path("/proc"), pinned: Path = Path("/var/run/netns")
) -> list[NetnsView]:
    """Every network namespace with a process in it, with its addresses (thin I/O)."""
    pins = {}
    if pinned.is_dir():
        for entry in pinned.iterdir():
            try:
                st = os.stat(entry)
            except OSError:
                continue
            pins[(st.st_dev, st.st_ino)] = str(entry)
    first: dict[tuple[int, int], int] = {}
    for entry in proc.iterdir():
        if entry.name.isdigit():
            try:
                st = os.stat(entry / "ns" / "net")
            except OSError:
                continue
            key = (st.st_dev, st.st_ino)
            first[key] = min(first.get(key, 1 << 30), int(entry.name))
    views = []
    for key, pid in first.items():
        try:
            addresses = fib_trie_locals((proc / str(pid) / "net" / "fib_trie").read_text())
            if (proc / str(pid) / "net" / "if_inet6").exists():
                addresses |= if_inet6_locals((proc / str(pid) / "net" / "if_inet6").read_text())
            cgroup = parse_proc_cgroup((proc / str(pid) / "cgroup").read_text())
        except OSError:
            continue  # the process left while we looked
        path = pins.get(key, str(proc / str(pid) / "ns" / "net"))
        views.append(NetnsView(key, pid, frozenset(addresses), path, cgroup))
    return views


def own_netns(proc: Path = Path("/proc")) -> tuple[int, int]:
    st = os.stat(proc / "self" / "ns" / "net")
    return (st.st_dev, st.st_ino)


# --- the store ------------------------------------------------------------------------------------


class SandboxStore:
    """Sandboxes by pod uid, persisted at `path` ("" keeps them in memory only)."""

    def __init__(self, path: str = "") -> None:
        self.path = Path(path) if path else None
        self.by_uid: dict[str, Sandbox] = {}
        self.deleted: set[str] = set()  # uids a DEL removed: never re-adopted by this agent
        if self.path is not None and self.path.exists():
            self.by_uid = _load(self.path)

    def put(self, sandbox: Sandbox) -> None:
        self.by_uid[sandbox.uid] = sandbox
        self.deleted.discard(sandbox.uid)
        self._save()

    def remove(self, uid: str = "", container_id: str = "") -> Sandbox | None:
        """Forget the sandbox of `uid`, or the one with `container_id`; None if unknown."""
        if not uid:
            uid = next((u for u, s in self.by_uid.items() if s.container_id == container_id), "")
        gone = self.by_uid.pop(uid, None)
        if uid:
            self.deleted.add(uid)
        if gone is not None:
            self._save()
        return gone

    def keep_only(self, container_ids: Iterable[str]) -> list[Sandbox]:
        """CNI GC: forget the CNI sandboxes the runtime no longer has; returns them."""
        valid = set(container_ids)
        stale = [s for s in self.by_uid.values() if s.source == CNI and s.container_id not in valid]
        for sandbox in stale:
            self.remove(sandbox.uid)
        return stale

    def merged(self, local: Mapping[str, Workload]) -> dict[str, Workload]:
        return {uid: merge(w, self.by_uid.get(uid)) for uid, w in local.items()}

    def _save(self) -> None:
        if self.path is not None:
            sandboxes = [s.to_json() for s in sorted(self.by_uid.values(), key=lambda s: s.uid)]
            write_json_atomic(self.path, {"sandboxes": sandboxes})


def _load(path: Path) -> dict[str, Sandbox]:
    try:
        data = json.loads(path.read_text())
        return {s.uid: s for s in map(Sandbox.from_json, data["sandboxes"])}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.warning("ignoring unreadable sandbox state %s (%s); pods are re-adopted", path, exc)
        return {}
