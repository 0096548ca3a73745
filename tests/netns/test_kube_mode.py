"""Kubernetes mode end to end on one machine: everything real but the API server.

No Kubernetes cluster runs here, so the API server is the recorded one of the in-process tier
(tests/inprocess/kube_fake.py): a real HTTP server on 127.0.0.1 holding a Namespace enrolled in
ambient mode, two ServiceAccounts, a Service with a ClusterIP and two Pods bound to two nodes, and
answering TokenReviews for each agent's projected token. Everything else is what a cluster runs:

    host netns: fake API server (127.0.0.1), `python -m controller --kubeconfig` listening on
    198.19.230.1 ── veth ── hub netns (bridge) ──┬── node-1 netns 198.19.230.11: agent, CNI socket
                                                 └── node-2 netns 198.19.230.12: agent, CNI socket
    pod netns behind each node: client 198.19.231.2 on node-1, web 198.19.232.2 on node-2

The test plays the container runtime and the kubelet: it makes each pod's netns, veth and cgroup
as a bridge CNI would, runs the real plugin (node_agent/cni/nodemesh-cni) with CNI_COMMAND=ADD
and a prevResult carrying the pod IP, and once ADD returns publishes the pod's IP and Ready
condition to the API server as a watch event. Then curl in the client pod reaches a real HTTP
server in the web pod by pod IP and by the Service's ClusterIP (resolved by the agent: no
kube-proxy is involved), and both agents' metrics show the connection went through the HBONE
tunnel with both SPIFFE identities. DEL takes capture away; the rig removes every netns, veth,
cgroup, pin and process it made, also when the test fails.
"""

from __future__ import annotations

import contextlib
import copy
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from controller.waypoints_kube import BUNDLE_CONFIGMAP, BUNDLE_KEY
from nodemesh import bpffs
from nodemesh.local import admin_client, cgroups, netns
from tests.inprocess.kube_fake import FakeApiServer, recording, served
from tests.netns.cluster_helpers import cluster_name_for
from tests.netns.cni_helpers import (
    REPO,
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

CONTROLLER_IP = "198.19.230.1"
NODES = {"node-1": "198.19.230.11", "node-2": "198.19.230.12"}
POD_NETS = {"node-1": "198.19.231", "node-2": "198.19.232"}  # <net>.1 gateway, <net>.2 the pod
CLUSTER_IP = "198.19.233.10"
TRUST_DOMAIN = "cluster.local"
PODS = "/api/v1/pods"
BUNDLE = ("v1", "configmaps", "nodemesh-system", BUNDLE_CONFIGMAP)
APP_PORT = 8080


@dataclass(frozen=True)
class PodSpec:
    name: str
    node: str
    account: str
    app: str

    @property
    def ip(self) -> str:
        return f"{POD_NETS[self.node]}.2"

    @property
    def identity(self) -> str:
        return f"spiffe://{TRUST_DOMAIN}/ns/shop/sa/{self.account}"


CLIENT = PodSpec("client-0", "node-1", "client", "client")
WEB = PodSpec("web-0", "node-2", "web", "web")


def manifests() -> list[dict]:
    """What a user applied; the pods as the scheduler left them (bound, no IP yet)."""
    text = f"""
apiVersion: v1
kind: Namespace
metadata: {{name: shop, labels: {{nodemesh.io/dataplane-mode: ambient}}}}
---
apiVersion: v1
kind: ServiceAccount
metadata: {{name: client, namespace: shop}}
---
apiVersion: v1
kind: ServiceAccount
metadata: {{name: web, namespace: shop}}
---
apiVersion: v1
kind: Service
metadata: {{name: web, namespace: shop}}
spec:
  clusterIP: {CLUSTER_IP}
  selector: {{app: web}}
  ports: [{{name: http, port: 80, targetPort: {APP_PORT}}}]
"""
    objects = list(yaml.safe_load_all(text))
    for pod in (CLIENT, WEB):
        objects.append(
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": pod.name, "namespace": "shop", "labels": {"app": pod.app}},
                "spec": {
                    "nodeName": pod.node,
                    "serviceAccountName": pod.account,
                    "containers": [{"name": "app", "image": "registry.example/shop/app:1"}],
                },
                "status": {"phase": "Pending", "qosClass": "BestEffort"},
            }
        )
    return objects


def node_review(node: str) -> dict:
    """The TokenReview the API server answers for the agent pod's projected token on `node`."""
    review = recording("tokenreview-node.json")
    review["status"]["user"]["extra"]["authentication.kubernetes.io/node-name"] = [node]
    return review


class ApiServer:
    """The fake API server with the kubelet's writes to pods: list bodies and watch events."""

    def __init__(self) -> None:
        self.fake = FakeApiServer()
        self.lists = served(manifests(), resource_version="900")
        self.version = 900

    def start(self) -> None:
        fake = self.fake.start()
        for path, body in self.lists.items():
            fake.set_list(path, copy.deepcopy(body))  # the handler threads serialise their own
        empty = {"kind": "EndpointSliceList", "items": [], "metadata": {"resourceVersion": "900"}}
        fake.set_list("/apis/discovery.k8s.io/v1/endpointslices", empty)  # built in: served
        fake.writable("v1", "configmaps")  # the controller publishes the trust bundle
        fake.writable("apps/v1", "deployments")  # and would deploy waypoints (none asked here)
        for node in NODES:
            fake.set_token_review(f"projected-token-{node}", node_review(node))

    def pod(self, name: str) -> dict:
        return next(p for p in self.lists[PODS]["items"] if p["metadata"]["name"] == name)

    def update_pod(self, name: str, status: dict | None) -> None:
        """What the kubelet writes after CNI ADD (status) or when the pod is gone (None)."""
        self.version += 1
        items = self.lists[PODS]["items"]
        current = self.pod(name)
        obj = copy.deepcopy(current)
        obj["metadata"]["resourceVersion"] = str(self.version)
        items.remove(current)
        if status is not None:
            obj["status"] = status
            items.append(obj)
        self.lists[PODS]["metadata"]["resourceVersion"] = str(self.version)
        self.fake.set_list(PODS, copy.deepcopy(self.lists[PODS]))  # a relist sees the same
        event = "MODIFIED" if status is not None else "DELETED"
        self.fake.send(PODS, {"type": event, "object": {"apiVersion": "v1", "kind": "Pod", **obj}})


def running_status(pod: PodSpec) -> dict:
    ready = [
        {"type": kind, "status": "True", "lastTransitionTime": "2026-01-01T00:00:05Z"}
        for kind in ("PodReadyToStartContainers", "Initialized", "ContainersReady", "Ready")
    ]
    return {
        "phase": "Running",
        "hostIP": NODES[pod.node],
        "hostIPs": [{"ip": NODES[pod.node]}],
        "podIP": pod.ip,
        "podIPs": [{"ip": pod.ip}],
        "conditions": ready,
        "qosClass": "BestEffort",
    }


@dataclass
class Rig:
    name: str
    tmp: Path
    api: ApiServer
    sandboxes: dict[str, Sandbox] = field(default_factory=dict)  # by pod name
    sockets: dict[str, str] = field(default_factory=dict)  # CNI socket by node
    logs: list[Path] = field(default_factory=list)

    def node_netns(self, node: str) -> str:
        return f"{self.name}-{node}"


def create_network(name: str) -> None:
    """hub bridge; the host's veth (the controller's address) and each node's on it."""
    hub = f"{name}-hub"
    for ns in (hub, *(f"{name}-{node}" for node in NODES)):
        subprocess.run(["ip", "netns", "add", ns], check=True)
    cmds = ["link set lo up", "link add br0 type bridge", "link set br0 up"]
    cmds += [f"link add {node} type veth peer name eth0 netns {name}-{node}" for node in NODES]
    cmds += [f"link set {node} master br0 up" for node in NODES]
    netns.ip_batch(cmds, hub)
    host = f"{name}h"
    netns.ip_batch(
        [
            f"link add {host} type veth peer name up0 netns {hub}",
            f"addr add {CONTROLLER_IP}/24 dev {host}",
            f"link set {host} up",
        ]
    )
    netns.ip_batch(["link set up0 master br0 up"], hub)
    for node, address in NODES.items():
        ns = f"{name}-{node}"
        netns.sysctls(
            ns,
            {
                "net.ipv4.ip_forward": "1",
                "net.ipv4.conf.all.rp_filter": "0",
                "net.ipv4.conf.default.rp_filter": "0",
            },
        )
        cmds = ["link set lo up", f"addr add {address}/24 dev eth0", "link set eth0 up"]
        cmds += [
            f"route add {POD_NETS[other]}.0/24 via {other_ip} dev eth0"
            for other, other_ip in NODES.items()
            if other != node
        ]
        netns.ip_batch(cmds, ns)


def host_links(name: str) -> list[str]:
    out = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True).stdout
    return [line.split(":")[1].strip().split("@")[0] for line in out.splitlines() if name in line]


def remove_all(name: str, cgroup_root: Path, pins: dict[str, Path]) -> None:
    """The host's veth first: a deleted netns frees its veths (and their peers) only later."""
    for link in host_links(name):
        subprocess.run(["ip", "link", "del", link], check=False, capture_output=True)
    remove_everything(name, cgroup_root, *pins.values())


@pytest.fixture
def rig(request, tmp_path) -> Iterator[Rig]:
    name = "km" + cluster_name_for(request.node.nodeid)[1:7]
    cgroup_root = cgroups.cgroup2_root() / f"nodemesh-{name}"
    pins = {node: Path(f"/run/nodemesh/bpf-test-{name}-{node}") for node in NODES}
    remove_all(name, cgroup_root, pins)  # remains of a crashed earlier run
    api = ApiServer()
    rig = Rig(name, tmp_path, api)
    procs: list[subprocess.Popen] = []
    try:
        api.start()
        create_network(name)
        kubeconfig = api.fake.write_kubeconfig(tmp_path)
        rig.logs.append(tmp_path / "controller.log")
        with open(rig.logs[-1], "w") as out:
            procs.append(
                subprocess.Popen(
                    [
                        *(sys.executable, "-m", "controller"),
                        f"--kubeconfig={kubeconfig}",
                        *(f"--ca-dir={tmp_path / 'ca'}", f"--listen={CONTROLLER_IP}"),
                        *("--admin-port=0", "--metrics-port=-1", "--leader-id=controller-0"),
                    ],
                    cwd=REPO,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )
        # The agents' --bundle is the ConfigMap the controller publishes (the DaemonSet mounts it).
        published = until(lambda: api.fake.get_object(*BUNDLE), "the trust bundle", rig.logs)
        (tmp_path / "bundle.pem").write_text(published["data"][BUNDLE_KEY])
        for node in NODES:
            bpffs.ensure(pins[node])  # on the host, so the agent's pins are visible (removable)
            token = tmp_path / f"{node}.token"
            token.write_text(f"projected-token-{node}\n")
            rig.sockets[node] = str(tmp_path / f"{node}-cni.sock")
            rig.logs.append(tmp_path / f"agent-{node}.log")
            procs.append(
                spawn_in(
                    rig.node_netns(node),
                    rig.logs[-1],
                    *("-m", "node_agent", "--node", node, "--controller", CONTROLLER_IP),
                    *("--token-file", str(token), "--bundle", str(tmp_path / "bundle.pem")),
                    *("--cni-socket", rig.sockets[node], "--pin-root", str(pins[node])),
                    *("--sandbox-state", str(tmp_path / f"{node}-sandboxes.json")),
                )
            )
        for index, pod in enumerate((CLIENT, WEB), start=1):
            net = POD_NETS[pod.node]
            sandbox = Sandbox(
                rig.node_netns(pod.node),
                f"{name}-{pod.name}",
                cgroup_root / f"pod-{pod.name}",
                f"{name}v{index}",
                pod.ip,
                f"{net}.1",
            )
            sandbox.create()
            sandbox.run("sleep", "infinity")  # the sandbox's own process, as pause is
            rig.sandboxes[pod.name] = sandbox
        for node, path in rig.sockets.items():
            until(lambda path=path: Path(path).exists(), f"{node}'s CNI socket", rig.logs)
        yield rig
    finally:
        for proc in reversed(procs):  # agents first: they detach capture on SIGTERM
            with contextlib.suppress(ProcessLookupError):
                stop(proc)
        api.fake.stop()
        remove_all(name, cgroup_root, pins)
        left = netns.list_netns(name) + host_links(name)
        left += [str(p) for p in (cgroup_root, *pins.values()) if p.exists()]
        assert not left, f"teardown left {left}"


def cni_add(rig: Rig, pod: PodSpec) -> None:
    """The runtime's ADD of `pod`'s sandbox on its node; capture is in place when it returns."""
    sandbox = rig.sandboxes[pod.name]
    uid = rig.api.pod(pod.name)["metadata"]["uid"]
    config = sandbox.cni_config(rig.sockets[pod.node], rig.tmp / f"cni-{pod.node}.log")
    env = sandbox.cni_env("shop", pod.name, uid, f"sandbox-{pod.name}")
    answer = cni_add_retried(config, rig.logs, **env)
    assert answer == config["prevResult"]
    assert captured_programs(sandbox.cgroup) != [], "ADD returned before capture was in place"


def cni_del(rig: Rig, pod: PodSpec) -> None:
    sandbox = rig.sandboxes[pod.name]
    uid = rig.api.pod(pod.name)["metadata"]["uid"]
    config = sandbox.cni_config(rig.sockets[pod.node], rig.tmp / f"cni-{pod.node}.log")
    del config["prevResult"]
    env = sandbox.cni_env("shop", pod.name, uid, f"sandbox-{pod.name}")
    assert cni("DEL", config, **env) == (0, None)


def workloads(rig: Rig, node: str) -> list[dict]:
    return admin_client.get_json(rig.node_netns(node), 15000, "/debug/workloads")


def tunnel_series(rig: Rig, node: str, reporter: str) -> list[tuple[dict[str, str], float]]:
    """(labels, count) of the agent's istio_tcp_connections_opened_total series from the
    client's identity to the web's over mutual TLS, as `reporter` (source or destination)."""
    raw = admin_client.raw_get(rig.node_netns(node), "127.0.0.1", 15020, "/metrics", 5.0)
    text = raw.partition(b"\r\n\r\n")[2].decode()
    return [
        (sample.labels, sample.value)
        for family in text_string_to_metric_families(text)
        if family.name == "istio_tcp_connections_opened"
        for sample in family.samples
        if sample.name.endswith("_total")
        and sample.labels.get("reporter") == reporter
        and sample.labels.get("connection_security_policy") == "mutual_tls"
        and sample.labels.get("source_principal") == CLIENT.identity
        and sample.labels.get("destination_principal") == WEB.identity
    ]


def opened(rig: Rig, node: str, reporter: str, service: str | None = None) -> float:
    """Tunnelled connections client → web counted so far (of one destination_service)."""
    return sum(
        count
        for labels, count in tunnel_series(rig, node, reporter)
        if service is None or labels.get("destination_service") == service
    )


def curl(rig: Rig, url: str) -> str:
    client = rig.sandboxes[CLIENT.name].run("curl", "-sS", "--max-time", "10", url)
    out, err = client.communicate(timeout=30)
    return out if client.returncode == 0 else f"curl exit {client.returncode}: {err}"


def open_connections(rig: Rig, node: str, direction: str) -> list[dict]:
    """The agent's open connections client → web over mutual TLS (/debug/connections)."""
    table = admin_client.get_json(rig.node_netns(node), 15000, "/debug/connections")
    return [
        c
        for c in table
        if c["direction"] == direction
        and c["security"] == "mutual_tls"
        and (c["src.identity"], c["dst.identity"]) == (CLIENT.identity, WEB.identity)
    ]


HOLD = (  # a client that opens a connection, sends half a request and waits
    "import socket, sys, time; "
    f"s = socket.create_connection(('{WEB.ip}', {APP_PORT}), 10); "
    "s.sendall(b'GET /held HTTP/1.1\\r\\n'); print('open', flush=True); time.sleep(120)"
)


def test_two_nodes_pods_added_by_cni_talk_through_the_hbone_tunnel(rig):
    for pod in (CLIENT, WEB):
        cni_add(rig, pod)
        # ADD returned: the kubelet starts the containers and reports the IP and readiness.
        rig.api.update_pod(pod.name, running_status(pod))
    www = rig.tmp / "www"
    www.mkdir()
    (www / "hello").write_text("hello from web-0\n")
    server_log = rig.tmp / "web-app.log"
    rig.logs.append(server_log)
    app = ("-u", "-m", "http.server", str(APP_PORT), "--directory", str(www))
    server = rig.sandboxes[WEB.name].run(sys.executable, *app, log=server_log)
    until(lambda: "Serving HTTP" in server_log.read_text(), "the web app listening", rig.logs)
    # Each agent enrolls its pod under the pod's own identity, with the address CNI reported.
    for pod in (CLIENT, WEB):
        enrolled = until(
            lambda pod=pod: [w for w in workloads(rig, pod.node) if w["identity"] == pod.identity],
            f"{pod.name} enrolled on {pod.node}",
            rig.logs,
        )
        assert [w["address"] for w in enrolled] == [pod.ip]

    # By pod IP, then by the Service's ClusterIP (the agent picks the endpoint: no kube-proxy).
    service = f"web.shop.svc.{TRUST_DOMAIN}"
    for url, via in (
        (f"http://{WEB.ip}:{APP_PORT}/hello", None),
        (f"http://{CLUSTER_IP}/hello", service),
    ):
        before, answers = opened(rig, "node-1", "source", via), []

        def through_the_tunnel(url=url, via=via, before=before, answers=answers) -> bool:
            answers.append(curl(rig, url))
            done = answers[-1] == "hello from web-0\n"
            return done and opened(rig, "node-1", "source", via) > before

        until(through_the_tunnel, f"curl {url} through the mesh ({answers[-1:]})", rig.logs)
    # Both ends of the tunnel count it, with both SPIFFE identities proven by mutual TLS.
    until(lambda: opened(rig, "node-2", "destination") >= 2, "node-2's count", rig.logs)
    for node, reporter in (("node-1", "source"), ("node-2", "destination")):
        labels = [labels for labels, _ in tunnel_series(rig, node, reporter)]
        assert {(s["source_workload"], s["destination_workload"]) for s in labels} == {
            ("client-0", "web-0")
        }
    # The app saw the requests the tunnel delivered.
    assert server_log.read_text().count('"GET /hello HTTP/1.1" 200') >= 2, server_log.read_text()

    # A connection held open is in both agents' connection tables, as the two ends of a tunnel.
    held = rig.sandboxes[CLIENT.name].run(sys.executable, "-c", HOLD)
    try:
        assert held.stdout.readline() == "open\n", held.stderr.read()
        until(lambda: open_connections(rig, "node-1", "outbound"), "node-1's end", rig.logs)
        until(lambda: open_connections(rig, "node-2", "inbound"), "node-2's end", rig.logs)
    finally:
        held.kill()
        held.wait(timeout=TIMEOUT)

    # The pods go away: DEL takes capture off, and each agent lets go of its pod.
    server.terminate()
    server.wait(timeout=TIMEOUT)
    for pod in (CLIENT, WEB):
        cni_del(rig, pod)
        assert captured_programs(rig.sandboxes[pod.name].cgroup) == []
        rig.api.update_pod(pod.name, None)
    for node in NODES:
        until(lambda node=node: workloads(rig, node) == [], f"{node} lets go", rig.logs)
