"""The agent's CNI service, and the real plugin talking to it over a real unix socket.

The agent side is played by a tiny reconciler over the same hooks NodeAgent gives CniService
(its config's local workloads, the uids it captures, a wake-up): it "captures" every pod that
`SandboxStore.merged` completes with netns, cgroup and an address, as NodeAgent.wanted does.
"""

from __future__ import annotations

import asyncio
import dataclasses
import io
import json
import socket
import threading

import pytest

from node_agent import cni_server
from node_agent.cni import plugin, wire
from node_agent.cni.protocol import Code
from node_agent.sandboxes import SandboxStore
from tests.unit.node_agent.test_cni_protocol import CONFIG, ENV, PREV
from tests.unit.node_agent.test_sandboxes import PENDING


class Agent:
    """What CniService needs of NodeAgent: config, captured pods, a reconcile on wake."""

    def __init__(self, store: SandboxStore, local: dict | None = None) -> None:
        self.store = store
        self.local = dict(local or {})
        self.pods: set[str] = set()
        self.wakes = 0

    def wake(self) -> None:
        self.wakes += 1
        merged = self.store.merged(self.local)
        self.pods.clear()
        self.pods.update(
            uid for uid, w in merged.items() if w.enrolled and w.netns and w.cgroup and w.addresses
        )

    def service(self, add_wait: float = 2.0) -> cni_server.CniService:
        return cni_server.CniService(
            self.store, lambda: self.local, self.pods.__contains__, self.wake, add_wait=add_wait
        )


POD = wire.PodInfo(
    "shop", "web-0", "u-1", "c0ffee", "/run/netns/p", "eth0", ("198.19.200.2",), "/c"
)


def run(coro):
    return asyncio.run(coro)


def test_add_answers_once_the_pod_is_captured_and_del_removes_it():
    agent = Agent(SandboxStore(), {"u-1": PENDING})
    service = agent.service()
    reply = run(service.add(POD))
    assert (reply.ok, reply.enrolled, reply.captured) == (True, True, True)
    assert "u-1" in agent.pods
    assert run(service.handle(wire.Request("check", POD))).ok
    assert run(service.delete(POD)).ok
    assert "u-1" not in agent.pods
    again = run(service.delete(POD))
    assert again.ok and "already" in again.msg


def test_add_waits_for_the_config_to_name_the_pod():
    agent = Agent(SandboxStore())
    service = agent.service()

    async def scenario():
        add = asyncio.ensure_future(service.add(POD))
        await asyncio.sleep(0.2)
        assert not add.done()  # no config for the pod yet: still waiting
        agent.local["u-1"] = PENDING
        return await add

    assert run(scenario()).captured


def test_add_gives_up_with_try_again_later_when_the_config_never_names_the_pod():
    reply = run(Agent(SandboxStore()).service(add_wait=0.2).add(POD))
    assert (reply.ok, reply.code) == (False, Code.TRY_AGAIN_LATER)
    assert "shop/web-0" in reply.msg


def test_a_pod_that_is_not_enrolled_is_answered_at_once_and_its_sandbox_kept():
    store = SandboxStore()
    agent = Agent(store, {"u-1": dataclasses.replace(PENDING, enrolled=False)})
    reply = run(agent.service().add(POD))
    assert (reply.ok, reply.enrolled, reply.captured) == (True, False, False)
    assert "u-1" in store.by_uid  # a namespace label may enroll it later, live


def test_check_fails_when_an_enrolled_pod_is_not_captured():
    agent = Agent(SandboxStore(), {"u-1": PENDING})
    reply = agent.service().check(POD)
    assert (reply.ok, reply.code) == (False, Code.NOT_CAPTURED)


def test_gc_forgets_sandboxes_the_runtime_no_longer_lists():
    agent = Agent(SandboxStore(), {"u-1": PENDING})
    service = agent.service()
    run(service.add(POD))
    reply = run(service.handle(wire.Request("gc", valid_container_ids=("other",))))
    assert reply.ok and agent.store.by_uid == {} and "u-1" not in agent.pods


# --- the real plugin over a real socket -----------------------------------------------------------


@pytest.fixture
def served(tmp_path):
    """An agent's CNI socket served from an event loop in a thread."""
    agent = Agent(SandboxStore(str(tmp_path / "sandboxes.json")), {"u-1": PENDING})
    path = str(tmp_path / "cni.sock")
    loop = asyncio.new_event_loop()
    server = loop.run_until_complete(cni_server.serve(path, agent.service()))
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield agent, path
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join()
        server.close()
        loop.run_until_complete(server.wait_closed())
        loop.close()


def call(env: dict, config: dict) -> tuple[int, dict | None]:
    out = io.BytesIO()
    code = plugin.run(env, json.dumps(config).encode(), out)
    return code, json.loads(out.getvalue()) if out.getvalue() else None


def pod_cgroup(tmp_path) -> str:
    """A directory named as kubelet names pod u-1's cgroup (cgroupfs driver)."""
    pod = tmp_path / "kubepods" / "besteffort" / "podu-1"
    pod.mkdir(parents=True)
    return str(pod)


def test_the_plugin_adds_checks_and_deletes_through_the_socket(served, tmp_path):
    agent, path = served
    found = pod_cgroup(tmp_path)
    config = CONFIG | {"agentSocket": path, "podCgroupRoots": [str(tmp_path / "kubepods")]}
    env = {**ENV, "CNI_NETNS": "/proc/self/ns/net"}
    assert call({**env, "CNI_COMMAND": "CHECK"}, config)[1]["code"] == Code.NOT_CAPTURED
    assert call(env, config) == (0, PREV)  # ADD returned: the agent has captured the pod
    assert "u-1" in agent.pods
    sandbox = agent.store.by_uid["u-1"]
    assert sandbox.cgroup == found and sandbox.ips == ("198.19.200.2", "2001:db8::2")
    assert call({**env, "CNI_COMMAND": "CHECK"}, config) == (0, None)
    delete = {k: v for k, v in config.items() if k != "prevResult"}
    assert call({**ENV, "CNI_COMMAND": "DEL", "CNI_NETNS": ""}, delete) == (0, None)
    assert "u-1" not in agent.pods
    assert call({**ENV, "CNI_COMMAND": "DEL", "CNI_NETNS": ""}, delete) == (0, None)  # again


def test_add_fails_with_its_own_code_when_no_cgroup_can_be_found(served, tmp_path):
    _, path = served
    config = CONFIG | {"agentSocket": path, "podCgroupRoots": ["no-such-root"]}
    code, answer = call({**ENV, "CNI_NETNS": str(tmp_path / "gone")}, config)
    assert (code, answer["code"]) == (1, Code.NO_CGROUP)
    assert "podCgroupRoots" in answer["msg"]


def test_an_unreachable_agent_is_try_again_later_except_for_excluded_namespaces(tmp_path):
    pod_cgroup(tmp_path)
    config = CONFIG | {
        "agentSocket": str(tmp_path / "nobody.sock"),
        "podCgroupRoots": [str(tmp_path / "kubepods")],
    }
    env = {**ENV, "CNI_NETNS": "/proc/self/ns/net"}
    code, answer = call(env, config)
    assert (code, answer["code"]) == (1, Code.TRY_AGAIN_LATER)
    excluded = {**env, "CNI_ARGS": "K8S_POD_NAMESPACE=kube-system;K8S_POD_NAME=dns;K8S_POD_UID=1"}
    assert call(excluded, config) == (0, PREV)
    delete = {k: v for k, v in config.items() if k != "prevResult"}
    assert call({**ENV, "CNI_COMMAND": "DEL"}, delete) == (0, None)  # DEL succeeds regardless
    status = CONFIG | {"cniVersion": "1.1.0", "agentSocket": str(tmp_path / "nobody.sock")}
    code, answer = call({"CNI_COMMAND": "STATUS"}, status)
    assert (code, answer["code"]) == (1, Code.PLUGIN_NOT_AVAILABLE)


def test_a_garbled_request_to_the_agent_is_answered_with_a_decode_error(served):
    _, path = served
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(5)
        sock.connect(path)
        sock.sendall(wire.frame({"op": "frob"}))
        reply = wire.FrameReader().receive_data(sock.recv(4096))
    assert reply[0]["ok"] is False and reply[0]["code"] == Code.DECODE_FAILURE
