"""`meshctl trace --last/--follow --kubeconfig`: the flow relays of a Kubernetes cluster's
controller replicas, read through the API server's port-forward.

The API server is the loopback fake (kube_fake.py), serving the controller pods, the election
Lease and `pods/portforward` over a real WebSocket with the kubelet's channel protocol; each
port-forward reaches a real admin endpoint (`nodemesh.admin.AdminServer` with the relay's
`flows_route` over a `FlowRing`) on loopback, one per replica, as the kubelet would reach
127.0.0.1:15000 inside each controller pod. The client side is the unmodified `kubernetes`
client's `stream.portforward`.
"""

from __future__ import annotations

import asyncio
import json
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from prometheus_client import CollectorRegistry

from controller.flows_relay import FlowRelay
from controller.metrics import ControllerMetrics
from nodemesh import admin
from nodemesh.cli.context import Ctx
from nodemesh.cli.trace_cmds import trace
from nodemesh.flows import FlowRing
from nodemesh.flows_kube import ADMIN_PORT, ready_replicas
from tests.inprocess.kube_fake import FakeApiServer
from tests.unit.flows.events import T0, event

NS = "nodemesh-system"
LABELS = {"app.kubernetes.io/name": "nodemesh-controller"}
MESHCTL = str(Path(sys.executable).parent / "meshctl")


class AdminEndpoints:
    """Controller admin endpoints on loopback, all served by one event loop in a thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="admin-endpoints")
        self.thread.start()
        self.servers: list[asyncio.AbstractServer] = []
        self.served: dict[int, list[dict]] = {}  # id(ring) -> /debug/flows answers given

    def answers(self, ring: FlowRing) -> int:
        """How many `/debug/flows` answers the endpoint over `ring` has computed."""
        return len(self.served[id(ring)])

    def add(self) -> tuple[FlowRing, int]:
        """A new endpoint serving a controller's relay routes over its own ring; (ring, port)."""
        relay = FlowRelay(ControllerMetrics(CollectorRegistry()), lambda key: False, capacity=64)
        routes = relay.routes()  # /debug/flows is flows_route(relay.ring)
        served = self.served[id(relay.ring)] = []
        routes["/debug/flows"] = _noting(routes["/debug/flows"], served)
        server = admin.AdminServer(routes)
        listening = self._run(admin.serve(server, "127.0.0.1", 0))
        self.servers.append(listening)
        return relay.ring, listening.sockets[0].getsockname()[1]

    def append(self, ring: FlowRing, *events) -> None:
        """Append in the loop's thread, where the long-poll's subscribers live."""

        async def append() -> None:
            for e in events:
                ring.append(e)

        self._run(append())

    def close(self) -> None:
        async def close() -> None:
            for server in self.servers:
                server.close()
                await server.wait_closed()

        self._run(close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join()
        self.loop.close()

    def _run(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=10)


def _noting(route, served: list[dict]):
    async def noted(query: dict) -> dict:
        answer = await route(query)
        served.append(answer)
        return answer

    return noted


def controller_pod(name: str, *, ready: bool = True, phase: str = "Running") -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": NS, "labels": dict(LABELS)},
        "status": {
            "phase": phase,
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
        },
    }


@pytest.fixture
def endpoints() -> Iterator[AdminEndpoints]:
    endpoints = AdminEndpoints()
    try:
        yield endpoints
    finally:
        endpoints.close()


@pytest.fixture
def server(server: FakeApiServer) -> FakeApiServer:
    server.writable("v1", "pods")
    server.writable("coordination.k8s.io/v1", "leases")
    return server


@pytest.fixture
def kubeconfig(tmp_path, server: FakeApiServer) -> str:
    return str(server.write_kubeconfig(tmp_path))


def replica(server: FakeApiServer, endpoints: AdminEndpoints, name: str, **state) -> FlowRing:
    """A controller pod `name` whose port-forward to the admin port reaches a fresh ring."""
    server.put_object("v1", "pods", controller_pod(name, **state))
    ring, port = endpoints.add()
    server.forward(NS, name, ADMIN_PORT, ("127.0.0.1", port))
    return ring


def meshctl(kubeconfig: str, *args: str):
    return CliRunner().invoke(trace, [*args, "--kubeconfig", kubeconfig], obj=Ctx(cluster="x"))


def flow_ids(output: str) -> list[str]:
    return [json.loads(line)["flow_id"] for line in output.splitlines()]


def test_last_merges_every_ready_replica_by_time(server, endpoints, kubeconfig):
    a = replica(server, endpoints, "nodemesh-controller-a")
    b = replica(server, endpoints, "nodemesh-controller-b")
    starting = replica(server, endpoints, "nodemesh-controller-c", ready=False)
    server.put_object("v1", "pods", {**controller_pod("agent-x"), "metadata": {"name": "agent-x"}})
    server.put_object(
        "coordination.k8s.io/v1",
        "leases",
        {
            "kind": "Lease",
            "metadata": {"name": "nodemesh-controller", "namespace": NS},
            "spec": {"holderIdentity": "nodemesh-controller-b"},
        },
    )
    endpoints.append(a, *(event(time=T0 + t, flow_id=f"a{t}") for t in (0, 2, 4)))
    endpoints.append(b, *(event(time=T0 + t, flow_id=f"b{t}") for t in (1, 3, 5)))
    endpoints.append(starting, event(time=T0 + 6, flow_id="from-a-replica-not-ready"))

    result = meshctl(kubeconfig, "--last", "5", "-o", "json")

    assert result.exit_code == 0, result.output
    assert flow_ids(result.stdout) == ["b1", "a2", "b3", "a4", "b5"]
    assert result.stderr == ""
    assert server.portforwards("nodemesh-controller-c") == []
    (forward, *_) = server.portforwards("nodemesh-controller-a")
    assert forward.query["ports"] == str(ADMIN_PORT)


def test_follow_prints_an_event_recorded_after_it_started(server, endpoints, kubeconfig):
    """The real command in its own process, stopped as a user stops it: SIGINT (Ctrl-C)."""
    a = replica(server, endpoints, "nodemesh-controller-a")
    b = replica(server, endpoints, "nodemesh-controller-b")
    endpoints.append(a, event(time=T0, flow_id="old-a"))
    endpoints.append(b, event(time=T0, flow_id="old-b"))
    argv = [MESHCTL, "trace", "--follow", "-o", "json", "--kubeconfig", kubeconfig]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        # After b's first /debug/flows answer ("where is now?"), anything new is news.
        polled = wait_until(lambda: endpoints.answers(b) >= 1)
        endpoints.append(b, event(time=T0 + 10, flow_id="new-b"))
        printed = read_line(proc)
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert polled, stderr
    assert flow_ids(printed) == ["new-b"], stderr
    assert proc.returncode == 0, stderr


def test_no_ready_controller_is_a_clear_error(server, endpoints, kubeconfig):
    result = meshctl(kubeconfig, "--last", "5")
    assert result.exit_code == 1
    assert "no controller pod in namespace nodemesh-system" in result.stderr
    assert "--namespace-of-controller" in result.stderr

    replica(server, endpoints, "nodemesh-controller-a", ready=False)
    replica(server, endpoints, "nodemesh-controller-b", phase="Pending")
    result = meshctl(kubeconfig, "--last", "5")
    assert result.exit_code == 1
    assert "no ready controller pod in namespace nodemesh-system" in result.stderr
    assert "nodemesh-controller-a (Running, not ready)" in result.stderr
    assert "nodemesh-controller-b (Pending, not ready)" in result.stderr
    assert server.portforwards("nodemesh-controller-a") == []


def test_a_replica_that_cannot_be_reached_is_named_and_the_others_read(
    server, endpoints, kubeconfig
):
    a = replica(server, endpoints, "nodemesh-controller-a")
    endpoints.append(a, event(time=T0, flow_id="a0"))
    # Ready, but nothing answers its admin port: the kubelet's error on the error channel.
    server.put_object("v1", "pods", controller_pod("nodemesh-controller-b"))

    result = meshctl(kubeconfig, "--last", "5", "-o", "json")

    assert result.exit_code == 0, result.output
    assert flow_ids(result.stdout) == ["a0"]
    (warning,) = result.stderr.splitlines()
    assert "controller pod nodemesh-controller-b" in warning
    assert "error forwarding port 15000" in warning and "missing until it answers" in warning

    server.forward(NS, "nodemesh-controller-a", ADMIN_PORT, ("127.0.0.1", 1))  # refused too
    result = meshctl(kubeconfig, "--last", "5")
    assert result.exit_code == 1
    assert "no controller replica's flow relay answers" in result.stderr


def test_source_components_is_refused_on_kubernetes(kubeconfig):
    result = meshctl(kubeconfig, "--last", "5", "--source", "components")
    assert result.exit_code == 2 and "drop --source" in result.output


def test_ready_replicas_lead_with_the_lease_holder_and_skip_the_rest():
    pods = [
        controller_pod("c-1"),
        controller_pod("c-2"),
        controller_pod("c-0"),
        controller_pod("c-3", ready=False),
        controller_pod("c-4", phase="Succeeded"),
        {**controller_pod("c-5"), "metadata": {"name": "c-5", "deletionTimestamp": "x"}},
    ]
    assert ready_replicas(pods, "c-2") == ["c-2", "c-0", "c-1"]
    assert ready_replicas(pods, "") == ["c-0", "c-1", "c-2"]
    assert ready_replicas(pods, "c-3") == ["c-0", "c-1", "c-2"]


def wait_until(condition: Callable[[], bool], limit: float = 30.0) -> bool:
    """Whether `condition` became true within `limit` seconds (a bound, not a measurement)."""
    deadline = time.monotonic() + limit
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def read_line(proc: subprocess.Popen, limit: float = 30.0) -> str:
    """The next line `proc` prints, or "" if none comes within `limit` seconds (a bound)."""
    readable, _, _ = select.select([proc.stdout], [], [], limit)
    return proc.stdout.readline() if readable else ""
