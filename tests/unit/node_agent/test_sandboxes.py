"""Sandboxes: merging the node's view into the controller's workloads, adoption, persistence."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from controller.model import Workload
from node_agent import sandboxes
from node_agent.cni.wire import PodInfo
from node_agent.sandboxes import NetnsView, Sandbox, SandboxStore

PENDING = Workload(
    uid="u-1",
    name="web-0",
    namespace="shop",
    node="node1",
    addresses=(),
    service_account="web",
    identity="spiffe://cluster.local/ns/shop/sa/web",
    labels=(("app", "web"),),
    enrolled=True,
    waypoint="",
    ready=False,
    netns="",
    cgroup="",
    owner="",
)
RUNNING = dataclasses.replace(PENDING, addresses=("198.19.200.2",), ready=True)
POD = PodInfo("shop", "web-0", "u-1", "c0ffee", "/var/run/netns/cni-1", "eth0", ("198.19.200.2",))
SANDBOX = Sandbox(
    "u-1", "shop", "web-0", "c0ffee", "/var/run/netns/cni-1", "/cg/pod", ("198.19.200.2",)
)

FIB_TRIE = """Main:
  +-- 0.0.0.0/0 3 0 5
     |-- 0.0.0.0
        /0 universe UNICAST
     +-- 198.19.200.0/24 2 0 2
        |-- 198.19.200.0
           /24 link UNICAST
        |-- 198.19.200.2
           /32 host LOCAL
Local:
     +-- 127.0.0.0/8 2 0 2
        |-- 127.0.0.1
           /32 host LOCAL
        |-- 198.19.200.2
           /32 host LOCAL
        |-- 198.19.200.255
           /32 link BROADCAST
"""
IF_INET6 = """00000000000000000000000000000001 01 80 10 80       lo
fe8000000000000000fc00fffe000001 04 40 20 80     eth0
20010db8000000000000000000000002 04 40 00 82     eth0
"""


def test_a_pod_is_resolved_by_uid_else_by_namespace_and_name():
    local = {"u-1": PENDING}
    assert sandboxes.resolve(local, POD) == PENDING
    assert sandboxes.resolve(local, dataclasses.replace(POD, uid="")) == PENDING
    assert sandboxes.resolve(local, dataclasses.replace(POD, uid="u-2")) is None
    assert sandboxes.resolve(local, dataclasses.replace(POD, uid="", name="x")) is None


def test_a_pending_workload_takes_netns_cgroup_and_addresses_from_its_sandbox():
    merged = sandboxes.merge(PENDING, SANDBOX)
    assert (merged.netns, merged.cgroup, merged.addresses) == (
        "/var/run/netns/cni-1",
        "/cg/pod",
        ("198.19.200.2",),
    )
    assert merged.identity == PENDING.identity and merged.enrolled


def test_the_controllers_view_wins_where_it_has_one():
    local_mode = dataclasses.replace(RUNNING, addresses=("198.19.200.9",), netns="/n", cgroup="/c")
    merged = sandboxes.merge(local_mode, SANDBOX)
    assert (merged.netns, merged.cgroup, merged.addresses) == ("/n", "/c", ("198.19.200.9",))
    assert sandboxes.merge(PENDING, None) is PENDING


def test_only_enrolled_running_pods_without_a_sandbox_need_adoption():
    local = {
        "u-1": RUNNING,
        "u-2": dataclasses.replace(RUNNING, uid="u-2"),
        "u-3": dataclasses.replace(RUNNING, uid="u-3", enrolled=False),
        "u-4": dataclasses.replace(PENDING, uid="u-4"),
        "u-5": dataclasses.replace(RUNNING, uid="u-5", netns="/local/mode"),
        "u-6": dataclasses.replace(RUNNING, uid="u-6"),
    }
    found = sandboxes.needs_adoption(local, {"u-2": SANDBOX}, skip={"u-6"})
    assert [w.uid for w in found] == ["u-1"]


def test_a_netns_local_addresses_come_from_proc_net():
    assert sandboxes.fib_trie_locals(FIB_TRIE) == {"198.19.200.2"}
    assert sandboxes.if_inet6_locals(IF_INET6) == {"2001:db8::2"}


def view(key: int, *addresses: str) -> NetnsView:
    return NetnsView((1, key), 100 + key, frozenset(addresses), f"/proc/{100 + key}/ns/net", "")


def test_adoption_picks_the_one_netns_holding_the_pod_ip_and_never_the_agents_own():
    views = [view(1, "10.0.0.1"), view(2, "198.19.200.2"), view(3, "198.19.200.3")]
    assert sandboxes.choose(views, RUNNING, own=(1, 1)) == views[1]
    assert sandboxes.choose(views, RUNNING, own=(1, 2)) is None  # only the agent's own holds it
    ambiguous = [*views, view(4, "198.19.200.2")]
    assert sandboxes.choose(ambiguous, RUNNING, own=(1, 1)) is None
    assert sandboxes.choose(views[:1], RUNNING, own=(0, 0)) is None


def test_an_adopted_sandbox_uses_the_pod_level_cgroup():
    cg = f"/kubepods/besteffort/pod{RUNNING.uid}/abc"
    found = NetnsView((1, 2), 42, frozenset({"198.19.200.2"}), "/var/run/netns/cni-9", cg)
    sandbox = sandboxes.adopted(found, RUNNING, Path("/sys/fs/cgroup"))
    assert sandbox.cgroup == f"/sys/fs/cgroup/kubepods/besteffort/pod{RUNNING.uid}"
    assert (sandbox.netns, sandbox.source, sandbox.ips) == (
        "/var/run/netns/cni-9",
        sandboxes.ADOPTED,
        ("198.19.200.2",),
    )


def test_the_store_persists_across_restarts_and_del_removes(tmp_path):
    path = tmp_path / "sandboxes.json"
    store = SandboxStore(str(path))
    store.put(SANDBOX)
    store.put(dataclasses.replace(SANDBOX, uid="u-2", container_id="c2"))
    again = SandboxStore(str(path))
    assert again.by_uid == store.by_uid
    assert again.remove(container_id="c0ffee") == SANDBOX
    assert again.remove(container_id="c0ffee") is None  # idempotent
    assert set(SandboxStore(str(path)).by_uid) == {"u-2"}
    assert "u-1" in again.deleted


def test_gc_forgets_cni_sandboxes_the_runtime_no_longer_has():
    store = SandboxStore()
    adopted = dataclasses.replace(SANDBOX, uid="u-3", container_id="", source=sandboxes.ADOPTED)
    for sandbox in (SANDBOX, dataclasses.replace(SANDBOX, uid="u-2", container_id="c2"), adopted):
        store.put(sandbox)
    assert [s.uid for s in store.keep_only(["c2"])] == ["u-1"]
    assert set(store.by_uid) == {"u-2", "u-3"}


def test_an_unreadable_state_file_is_ignored(tmp_path):
    path = tmp_path / "sandboxes.json"
    path.write_text("{broken")
    assert SandboxStore(str(path)).by_uid == {}


def test_merged_completes_only_the_pods_with_a_sandbox():
    store = SandboxStore()
    store.put(SANDBOX)
    other = dataclasses.replace(PENDING, uid="u-2")
    merged = store.merged({"u-1": PENDING, "u-2": other})
    assert merged["u-1"].netns == SANDBOX.netns and merged["u-2"] is other
