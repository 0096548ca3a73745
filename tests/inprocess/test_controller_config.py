"""Config distribution end to end in one process: registry files → controller → delta stream.

The registry is a local cluster's state directory written by hand (store.json through the real
Store, status.json in the runtime's shape); the controller and the subscriber talk real gRPC over
mutual TLS on loopback. Waits are bounded polls; no timing is asserted (that is perf/'s job).
"""

from __future__ import annotations

import argparse
import asyncio
import time

from controller import scope
from controller.main import Controller
from controller.resources import from_resource
from nodemesh import controlplane
from nodemesh.local.credentials import create_node_tokens, token_path
from nodemesh.local.state import StateDir, write_json_atomic
from nodemesh.local.store import Store
from nodemesh.manifests.load import parse_documents
from nodemesh.xds.stream import ConfigStream

MANIFESTS = """\
apiVersion: v1
kind: Namespace
metadata: {name: shop, labels: {nodemesh.io/dataplane-mode: ambient}}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: 8080}]
"""


def pod(name: str, node: str, ip: str, sa: str = "web") -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": "shop",
            "uid": f"uid-{name}",
            "labels": {"app": "web"},
            "ownerReferences": [],
        },
        "spec": {
            "nodeName": node,
            "serviceAccountName": sa,
            "containers": [{"name": "c", "command": ["x"], "ports": []}],
        },
        "status": {
            "phase": "Running",
            "podIP": ip,
            "hostIP": "198.18.0.11",
            "conditions": [{"type": "Ready", "status": "True"}],
        },
        "sandbox": {"netns": f"nm-x-{name}", "cgroup": f"/cg/{name}"},
    }


def write_pods(state: StateDir, pods: list[dict]) -> None:
    write_json_atomic(state.status_file, {"pods": pods, "services": [], "nodes": []})


def make_state(tmp_path) -> StateDir:
    state = StateDir("cfg", tmp_path)
    state.path.mkdir(parents=True)
    write_json_atomic(state.cluster_file, {"name": "cfg"})
    Store(state).apply(parse_documents(MANIFESTS, "shop.yaml"))
    create_node_tokens(state, ["node1", "node2"])
    write_pods(state, [pod("web-a", "node1", "198.18.1.2"), pod("web-b", "node2", "198.18.2.2")])
    return state


def controller_args(state: StateDir) -> argparse.Namespace:
    return argparse.Namespace(
        local_state=str(state.path),
        ca_dir=None,
        trust_domain="cluster.local",
        listen="127.0.0.1",
        mtls_port=0,
        bootstrap_port=0,
        metrics_port=-1,
        admin_port=0,
    )


class Agent:
    """A subscriber as the node agent will be: bootstrap, then a delta stream; it can refuse."""

    def __init__(self, state: StateDir, node: str, refuse=lambda t, r: None) -> None:
        self.state, self.node, self.refuse = state, node, refuse
        self.held: dict[tuple[str, str], object] = {}
        self.stream = ConfigStream(f"agent~{node}", scope.TYPE_URLS, self.apply)

    def apply(self, type_url, upserts, removals):
        rejected = {}
        for res in upserts:
            reason = self.refuse(type_url, res)
            if reason:
                rejected[res.name] = reason
            else:
                self.held[(type_url, res.name)] = from_resource(type_url, res.payload, res.name)
        for name in removals:
            self.held.pop((type_url, name), None)
        return rejected

    async def connect(self, ctl: Controller):
        token = token_path(self.state, self.node).read_text()
        ident = await controlplane.bootstrap(
            f"127.0.0.1:{ctl.ports['bootstrap']}", ctl.ca.trust_bundle_pem(), self.node, token
        )
        self.task = asyncio.ensure_future(
            self.stream.run(
                lambda: controlplane.mtls_channel(f"127.0.0.1:{ctl.ports['mtls']}", ident)
            )
        )

    def names(self, type_url: str) -> set[str]:
        return {n for t, n in self.held if t == type_url}


async def until(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.02)


def test_each_agent_gets_its_scope_and_follows_changes(tmp_path):
    state = make_state(tmp_path)

    async def go():
        ctl = Controller(controller_args(state))
        await ctl.start()
        a1, a2 = Agent(state, "node1"), Agent(state, "node2")
        await a1.connect(ctl)
        await a2.connect(ctl)
        await until(lambda: a1.stream.synced() and a2.stream.synced())
        first = (a1.names(scope.WORKLOAD), a1.names(scope.PEER_WORKLOAD), a1.names(scope.SERVICE))
        # A new pod on node2: node2's agent gets it in full, node1's as a peer.
        write_pods(
            state,
            [
                pod("web-a", "node1", "198.18.1.2"),
                pod("web-b", "node2", "198.18.2.2"),
                pod("web-c", "node2", "198.18.2.3"),
            ],
        )
        # Each type is its own delta stream (as in Envoy's xDS): the Service's new endpoint may
        # land a moment after the PeerWorkload, so wait for all three.
        await until(
            lambda: (
                "uid-web-c" in a2.names(scope.WORKLOAD)
                and "uid-web-c" in a1.names(scope.PEER_WORKLOAD)
                and len(a1.held[(scope.SERVICE, "shop/web")].endpoints) == 3
            )
        )
        svc = a1.held[(scope.SERVICE, "shop/web")]
        subs = {s["id"] for s in ctl.distributor.states()}
        for a in (a1, a2):
            a.task.cancel()
        await ctl.stop(0)
        return first, svc, subs

    first, svc, subs = asyncio.run(go())
    assert first == ({"uid-web-a"}, {"uid-web-b"}, {"shop/web"})
    assert sorted(e.address for e in svc.endpoints) == ["198.18.1.2", "198.18.2.2", "198.18.2.3"]
    assert subs == {"agent/node1", "agent/node2"}


def test_a_rejected_resource_is_nacked_alone_and_the_rest_applies(tmp_path):
    state = make_state(tmp_path)
    refuse = lambda t, r: "bad on purpose" if r.name == "shop/web" else None  # noqa: E731

    async def go():
        ctl = Controller(controller_args(state))
        await ctl.start()
        agent = Agent(state, "node1", refuse)
        await agent.connect(ctl)
        await until(lambda: agent.stream.synced() and "uid-web-a" in agent.names(scope.WORKLOAD))
        await until(
            lambda: any(
                s["types"].get(scope.SERVICE, {}).get("rejected") for s in ctl.distributor.states()
            )
        )
        states = ctl.distributor.states()
        agent.task.cancel()
        await ctl.stop(0)
        return agent, states

    agent, states = asyncio.run(go())
    assert agent.names(scope.SERVICE) == set()  # refused
    assert agent.names(scope.WORKLOAD) == {"uid-web-a"}  # applied from the same push cycle
    service_state = states[0]["types"][scope.SERVICE]
    assert "shop/web" in service_state["rejected"]
    assert "bad on purpose" in str(service_state["rejected"]["shop/web"])


def test_a_restarted_controller_keeps_its_root_and_agents_resync(tmp_path):
    state = make_state(tmp_path)

    async def go():
        ctl = Controller(controller_args(state))
        await ctl.start()
        bundle = ctl.ca.trust_bundle_pem()
        agent = Agent(state, "node1")
        await agent.connect(ctl)
        await until(lambda: agent.stream.synced())
        held_before = dict(agent.held)
        ports = dict(ctl.ports)
        await ctl.stop(0)
        # Same ports, same state directory: a new process would look exactly like this.
        args = controller_args(state)
        args.mtls_port, args.bootstrap_port = ports["mtls"], ports["bootstrap"]
        ctl2 = Controller(args)
        await ctl2.start()
        await until(lambda: any(s["id"] == "agent/node1" for s in ctl2.distributor.states()))
        await until(lambda: agent.stream.synced())
        write_pods(state, [pod("web-a", "node1", "198.18.1.2")])  # web-b went away
        await until(lambda: "uid-web-b" not in agent.names(scope.PEER_WORKLOAD))
        same_root = ctl2.ca.trust_bundle_pem() == bundle
        agent.task.cancel()
        await ctl2.stop(0)
        return held_before, same_root

    held_before, same_root = asyncio.run(go())
    assert same_root
    assert (scope.PEER_WORKLOAD, "uid-web-b") in held_before
