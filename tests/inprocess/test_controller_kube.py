"""The controller in Kubernetes mode, against the recorded API server on loopback.

The whole chain a real agent goes through: a projected token checked with TokenReview buys the
node certificate, and the config stream carries the model built from listed and watched objects.
"""

from __future__ import annotations

import argparse
import asyncio

import grpc
import pytest
from cryptography import x509

from controller import scope
from controller.main import Controller, parse_args
from nodemesh import controlplane
from nodemesh.identity import NodeId, identity_of_certificate
from tests.inprocess.kube_fake import FakeApiServer, recording
from tests.inprocess.test_controller_config import Agent, until
from tests.inprocess.test_registry_kube import serve_mesh


@pytest.fixture
def api_server():
    fake = FakeApiServer().start()
    try:
        serve_mesh(fake)
        fake.set_token_review("agent-token", recording("tokenreview-node.json"))
        yield fake
    finally:
        fake.stop()


def kube_args(tmp_path, server: FakeApiServer) -> argparse.Namespace:
    kubeconfig = server.write_kubeconfig(tmp_path)
    # The controller's own parser: a flag added there needs no edit here.
    return parse_args(
        [
            f"--kubeconfig={kubeconfig}",
            f"--ca-dir={tmp_path / 'ca'}",
            "--listen=127.0.0.1",
            "--mtls-port=0",
            "--bootstrap-port=0",
            "--metrics-port=-1",
            "--admin-port=0",
            "--leader-id=controller-0",
            "--waypoint-image=registry.example/nodemesh/waypoint:test",
        ]
    )


class KubeAgent(Agent):
    """The test agent, bootstrapping with a projected service-account token instead."""

    async def connect(self, ctl: Controller, token: str = "agent-token"):
        self.identity = await controlplane.bootstrap(
            f"127.0.0.1:{ctl.ports['bootstrap']}", ctl.ca.trust_bundle_pem(), self.node, token
        )
        self.task = asyncio.ensure_future(
            self.stream.run(
                lambda: controlplane.mtls_channel(f"127.0.0.1:{ctl.ports['mtls']}", self.identity)
            )
        )


def test_kube_mode_bootstraps_with_tokenreview_and_pushes_watched_objects(tmp_path, api_server):
    pods = recording("pods-list.json")["items"]
    on_node1 = {
        p["metadata"]["uid"]
        for p in pods
        if p["spec"].get("nodeName") == "node-1" and p["status"].get("podIP")
    }

    async def go():
        ctl = Controller(kube_args(tmp_path, api_server))
        await ctl.start()
        try:
            agent = KubeAgent(None, "node-1")
            await agent.connect(ctl)
            await until(lambda: agent.stream.synced() and agent.names(scope.WORKLOAD))
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await KubeAgent(None, "node-1").connect(ctl, token="stolen-token")
            agent.task.cancel()
            return agent, refused.value
        finally:
            await ctl.stop(0)

    agent, refused = asyncio.run(go())
    assert refused.code() == grpc.StatusCode.UNAUTHENTICATED
    leaf = x509.load_pem_x509_certificate(agent.identity.chain_pem)
    assert identity_of_certificate(leaf) == NodeId("cluster.local", "node-1")
    assert agent.names(scope.WORKLOAD) <= on_node1 and agent.names(scope.WORKLOAD)
