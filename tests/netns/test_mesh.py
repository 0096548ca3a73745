"""The mesh on a real local cluster with unchanged apps: curl, python's http.server, redis.

Each test brings up a 2-node cluster with an enrolled namespace `shop`: echo servers on both
nodes, redis on node2, and clients on node1 with different service accounts. A packet capture on
node2's link shows what actually crosses the wire.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import textwrap
import time
from pathlib import Path

import pytest

from node_agent import bpf_types
from node_agent.capture import attached_programs
from nodemesh import bpffs
from nodemesh.local.addressing import plan_cluster
from nodemesh.local.state import StateDir
from nodemesh.local.system import system_manifest
from tests.netns.test_local_cluster import ECHO_SERVER, apply_text, pods

pytestmark = pytest.mark.netns
MARKER = "PLAINTEXT-MARKER-42"


def mesh_app() -> str:
    server = json.dumps(["python3", "-u", "-c", ECHO_SERVER])
    echo = textwrap.dedent("""\
        apiVersion: v1
        kind: Pod
        metadata: {{name: {name}, namespace: shop, labels: {{app: {app}}}}}
        spec:
          nodeName: {node}
          serviceAccountName: echo
          containers:
            - name: echo
              command: {server}
              env:
                - {{name: POD_NAME, value: {name}}}
                - {{name: NODE_NAME, value: {node}}}
              ports: [{{name: http, containerPort: 8080}}]
              readinessProbe: {{tcpSocket: {{port: 8080}}, periodSeconds: 1}}
        ---
        apiVersion: v1
        kind: Service
        metadata: {{name: {app}, namespace: shop}}
        spec:
          selector: {{app: {app}}}
          ports: [{{name: http, port: 80, targetPort: http}}]
        ---
    """)
    client = textwrap.dedent("""\
        apiVersion: v1
        kind: Pod
        metadata: {{name: {name}, namespace: {ns}}}
        spec:
          nodeName: node1
          serviceAccountName: {sa}
          containers: [{{name: c, command: [sleep, infinity]}}]
        ---
    """)
    return (
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: shop, labels: "
        "{nodemesh.io/dataplane-mode: ambient}}\n---\n"
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: plain}\n---\n"
        + "".join(
            f"apiVersion: v1\nkind: ServiceAccount\nmetadata: {{name: {sa}, "
            f"namespace: shop}}\n---\n"
            for sa in ("echo", "client", "other", "redis")
        )
        + echo.format(name="echo-far", app="echo", node="node2", server=server)
        + echo.format(name="echo-near", app="echo-near", node="node1", server=server)
        + client.format(name="client", ns="shop", sa="client")
        + client.format(name="other", ns="shop", sa="other")
        + client.format(name="outsider", ns="plain", sa="default")
        + textwrap.dedent("""\
            apiVersion: v1
            kind: Pod
            metadata: {name: redis, namespace: shop, labels: {app: redis}}
            spec:
              nodeName: node2
              serviceAccountName: redis
              containers:
                - name: redis
                  command: [redis-server, --port, "6379", --save, "", --appendonly, "no",
                            --protected-mode, "no"]
                  readinessProbe: {tcpSocket: {port: 6379}, periodSeconds: 1}
            ---
            apiVersion: v1
            kind: Service
            metadata: {name: redis, namespace: shop}
            spec:
              selector: {app: redis}
              ports: [{name: redis, port: 6379}]
        """)
    )


@pytest.fixture
def mesh(local_cluster, tmp_path):
    local_cluster.meshctl("local", "up", "--nodes", "2")
    apply_text(local_cluster, tmp_path, mesh_app(), "mesh.yaml")
    until(lambda: enrolled(local_cluster) >= 5, what="agents enrolled the shop pods")
    return local_cluster


def enrolled(cluster) -> int:
    logs = "".join(
        cluster.meshctl("logs", f"nodemesh-agent-{n}", "-n", "nodemesh-system").stdout
        for n in ("node1", "node2")
    )
    # ": enrolled" never matches inside ": un-enrolled".
    return logs.count(": enrolled shop/") - logs.count(": un-enrolled shop/")


def until(predicate, timeout=30.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(0.3)
    raise AssertionError(f"{what}: not reached in {timeout:g}s")


def curl(cluster, pod, url, ns="shop", check=True):
    return cluster.meshctl(
        "exec",
        pod,
        "-n",
        ns,
        "--",
        "curl",
        "-sS",
        "--max-time",
        "5",
        "-H",
        f"X-Marker: {MARKER}",
        url,
        check=check,
        timeout=30,
    )


class Capture:
    """tcpdump on node2's link in the hub namespace: what crosses between the nodes."""

    def __init__(self, cluster) -> None:
        self.proc = subprocess.Popen(
            [
                "ip",
                "netns",
                "exec",
                f"nm-{cluster.name}-net",
                "tcpdump",
                "-i",
                "node2",
                "-nn",
                "-A",
                "-s",
                "0",
                "-U",
                # Hand each packet over at once: by default the kernel delivers them in blocks
                # with a ~1 s timeout, and a capture stopped sooner shows nothing.
                "--immediate-mode",
                "tcp",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            errors="replace",
        )
        # Traffic sent before tcpdump has opened the interface is simply not seen: wait for it
        # to say so (a fixed sleep lost the race on a loaded machine).
        for line in self.proc.stderr:
            if line.startswith("listening on"):
                break

    def stop(self) -> str:
        time.sleep(0.3)
        self.proc.send_signal(signal.SIGINT)
        out, _ = self.proc.communicate(timeout=10)
        return out


def test_http_and_tcp_reach_servers_on_both_nodes_encrypted_on_the_wire(mesh):
    cap = Capture(mesh)
    try:
        assert curl(mesh, "client", "http://echo/").stdout == "echo-far node2"
        assert curl(mesh, "client", "http://echo-near.shop/").stdout == "echo-near node1"
        far_ip = next(p for p in pods(mesh, "shop") if p["metadata"]["name"] == "echo-far")[
            "status"
        ]["podIP"]
        assert curl(mesh, "client", f"http://{far_ip}:8080/").stdout == "echo-far node2"
        for host in ("redis", "redis.shop.svc.cluster.local"):
            out = mesh.exec("client", "redis-cli", "-h", host, "PING", namespace="shop")
            assert out.stdout.strip() == "PONG"
    finally:
        wire = cap.stop()
    assert ".15008" in wire  # HBONE between the pods' addresses
    assert MARKER not in wire and "echo-far node2" not in wire and "PONG" not in wire
    client_id, echo_id = (
        "spiffe://cluster.local/ns/shop/sa/client",
        "spiffe://cluster.local/ns/shop/sa/echo",
    )
    metrics = subprocess.run(
        ["ip", "netns", "exec", f"nm-{mesh.name}-node1", "curl", "-s", "198.18.0.11:15020/metrics"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    opened = [
        line
        for line in metrics.splitlines()
        if line.startswith("istio_tcp_connections_opened_total{")
        and 'reporter="source"' in line
        and f'destination_principal="{echo_id}"' in line
    ]
    assert opened and all(
        'connection_security_policy="mutual_tls"' in line
        and f'source_principal="{client_id}"' in line
        for line in opened
    )
    # The destination agent names the Service the client dialled too (the source agent's
    # baggage, checked against the Service's endpoints), not "unknown": echo-near is on node1.
    received = [
        line
        for line in metrics.splitlines()
        if line.startswith("istio_tcp_connections_opened_total{")
        and 'reporter="destination"' in line
        and f'source_principal="{client_id}"' in line
        and 'destination_workload="echo-near"' in line
    ]
    assert received and all(
        'destination_service="echo-near.shop.svc.cluster.local"' in line
        and 'destination_service_name="echo-near"' in line
        for line in received
    ), received
    log = mesh.meshctl("logs", "nodemesh-agent-node1", "-n", "nodemesh-system").stdout
    access = [json.loads(line) for line in log.splitlines() if line.startswith('{"timestamp"')]
    assert any(
        a.get("src.identity") == client_id
        and a.get("dst.identity") == echo_id
        and a["direction"] == "outbound"
        for a in access
    )
    held = json.loads(mesh.meshctl("certs", "--node", "node1", "-o", "json").stdout)
    assert client_id in {c["identity"] for c in held}


def test_allow_for_one_principal_and_deny_on_a_port_wins(mesh, tmp_path):
    allow = textwrap.dedent("""\
        apiVersion: security.nodemesh.io/v1
        kind: AuthorizationPolicy
        metadata: {name: echo-allow-client, namespace: shop}
        spec:
          selector: {matchLabels: {app: echo}}
          action: ALLOW
          rules:
            - from: [{source: {principals: [cluster.local/ns/shop/sa/client]}}]
    """)
    apply_text(mesh, tmp_path, allow, "allow.yaml")
    until(
        lambda: curl(mesh, "other", "http://echo/", check=False).returncode != 0,
        what="ALLOW for sa/client only refuses sa/other",
    )
    assert curl(mesh, "client", "http://echo/").stdout == "echo-far node2"
    deny = textwrap.dedent("""\
        apiVersion: security.nodemesh.io/v1
        kind: AuthorizationPolicy
        metadata: {name: echo-deny-8080, namespace: shop}
        spec:
          selector: {matchLabels: {app: echo}}
          action: DENY
          rules: [{to: [{operation: {ports: ["8080"]}}]}]
    """)
    apply_text(mesh, tmp_path, deny, "deny.yaml")
    until(
        lambda: curl(mesh, "client", "http://echo/", check=False).returncode != 0,
        what="DENY on port 8080 wins over the ALLOW",
    )
    logs = mesh.meshctl("logs", "nodemesh-agent-node2", "-n", "nodemesh-system").stdout
    assert "shop/echo-deny-8080" in logs  # the denial names the policy


def test_strict_refuses_plaintext_from_outside_the_mesh_and_permissive_accepts(mesh, tmp_path):
    far_ip = next(p for p in pods(mesh, "shop") if p["metadata"]["name"] == "echo-far")["status"][
        "podIP"
    ]
    url = f"http://{far_ip}:8080/"
    assert curl(mesh, "outsider", url, ns="plain").stdout == "echo-far node2"  # PERMISSIVE
    strict = (
        "apiVersion: security.nodemesh.io/v1\nkind: PeerAuthentication\n"
        "metadata: {name: default, namespace: shop}\nspec: {mtls: {mode: STRICT}}\n"
    )
    apply_text(mesh, tmp_path, strict, "strict.yaml")
    until(
        lambda: curl(mesh, "outsider", url, ns="plain", check=False).returncode != 0,
        what="STRICT refuses plaintext",
    )
    assert curl(mesh, "client", "http://echo/").stdout == "echo-far node2"  # mTLS still fine
    mesh.meshctl("delete", "-f", str(tmp_path / "strict.yaml"))
    until(
        lambda: curl(mesh, "outsider", url, ns="plain", check=False).returncode == 0,
        what="PERMISSIVE again",
    )


def _ready(cluster, name: str) -> bool:
    pod = next(p for p in pods(cluster, "shop") if p["metadata"]["name"] == name)
    return any(
        c["type"] == "Ready" and c["status"] == "True" for c in pod["status"].get("conditions", [])
    )


def test_probes_reach_the_app_itself_under_strict(mesh, tmp_path):
    """Kubelet probes bypass capture (as Istio ambient's do): an HTTP probe passes under STRICT,
    and a probe of a port nobody listens on fails although the pod is captured."""
    strict = (
        "apiVersion: security.nodemesh.io/v1\nkind: PeerAuthentication\n"
        "metadata: {name: default, namespace: shop}\nspec: {mtls: {mode: STRICT}}\n"
    )
    server = json.dumps(["python3", "-u", "-c", ECHO_SERVER])
    probed = textwrap.dedent(f"""\
        apiVersion: v1
        kind: Pod
        metadata: {{name: probed, namespace: shop}}
        spec:
          nodeName: node2
          containers:
            - name: echo
              command: {server}
              env: [{{name: POD_NAME, value: probed}}, {{name: NODE_NAME, value: node2}}]
              readinessProbe: {{httpGet: {{port: 8080, path: /}}, periodSeconds: 1}}
        ---
        apiVersion: v1
        kind: Pod
        metadata: {{name: deaf, namespace: shop}}
        spec:
          nodeName: node2
          containers:
            - name: echo
              command: {server}
              env: [{{name: POD_NAME, value: deaf}}, {{name: NODE_NAME, value: node2}}]
              readinessProbe: {{tcpSocket: {{port: 9999}}, periodSeconds: 1}}
    """)
    apply_text(mesh, tmp_path, strict, "strict.yaml")
    (tmp_path / "probed.yaml").write_text(probed)
    mesh.meshctl("apply", "-f", str(tmp_path / "probed.yaml"), "--no-wait")
    until(lambda: enrolled(mesh) >= 7, what="agents enrolled the probed pods")
    until(lambda: _ready(mesh, "probed"), timeout=30, what="HTTP probe passes under STRICT")
    time.sleep(3)  # several probe periods: a captured SYN would have made it Ready by now
    assert not _ready(mesh, "deaf")


def test_unenroll_and_reenroll_live_without_restarting_pods(mesh, tmp_path):
    before = {p["metadata"]["name"]: p["metadata"]["uid"] for p in pods(mesh, "shop")}
    plain_ns = "apiVersion: v1\nkind: Namespace\nmetadata: {name: shop}\n"
    apply_text(mesh, tmp_path, plain_ns, "ns.yaml")
    until(lambda: enrolled(mesh) == 0, what="every shop pod un-enrolled")
    cap = Capture(mesh)
    try:
        assert curl(mesh, "client", "http://echo/").stdout == "echo-far node2"
    finally:
        wire = cap.stop()
    assert MARKER in wire and ".15008" not in wire  # plain traffic again
    apply_text(mesh, tmp_path, mesh_app().split("---\n", 1)[0], "ns.yaml")
    until(lambda: enrolled(mesh) >= 5, what="re-enrolled")
    cap = Capture(mesh)
    try:
        assert curl(mesh, "client", "http://echo/").stdout == "echo-far node2"
    finally:
        wire = cap.stop()
    assert ".15008" in wire and MARKER not in wire
    after = {p["metadata"]["name"]: p["metadata"]["uid"] for p in pods(mesh, "shop")}
    assert after == before  # same pods throughout


def test_a_killed_agent_comes_back_and_readopts_its_pods(mesh):
    assert curl(mesh, "client", "http://echo/").stdout == "echo-far node2"
    agent = next(
        p for p in pods(mesh, "nodemesh-system") if p["metadata"]["name"] == "nodemesh-agent-node2"
    )
    os.kill(agent["status"]["containerStatuses"][0]["pid"], signal.SIGKILL)
    until(
        lambda: curl(mesh, "client", "http://echo/", check=False).stdout == "echo-far node2",
        timeout=40,
        what="traffic through the restarted agent",
    )
    cap = Capture(mesh)
    try:
        assert curl(mesh, "client", "http://echo/").stdout == "echo-far node2"
    finally:
        wire = cap.stop()
    assert ".15008" in wire and MARKER not in wire


def test_a_cleanly_stopped_agent_leaves_no_program_attached(mesh, tmp_path):
    client = next(p for p in pods(mesh, "shop") if p["metadata"]["name"] == "client")
    cgroup = Path(client["sandbox"]["cgroup"])
    netns = Path("/run/netns") / client["sandbox"]["netns"]

    def programs() -> list[int]:
        return [
            *attached_programs(cgroup, bpf_types.ATTACH_INET4_CONNECT),
            *attached_programs(cgroup, bpf_types.ATTACH_SOCK_OPS),
            *attached_programs(netns, bpf_types.ATTACH_SK_LOOKUP),
        ]

    assert programs()  # captured while the agent runs
    # Deleting the agent's pod stops it the graceful way (SIGTERM), and nothing restarts it.
    docs = system_manifest(StateDir(mesh.name), plan_cluster(mesh.name, 2)).split("---\n")
    agent_doc = next(d for d in docs if "name: nodemesh-agent-node1\n" in d)
    (tmp_path / "agent.yaml").write_text(agent_doc)
    mesh.meshctl("delete", "-f", str(tmp_path / "agent.yaml"))
    assert programs() == []
    pins = bpffs.LOCAL_ROOT / mesh.name / "node1"
    assert not pins.exists() or not any(pins.rglob("*"))
    # The pod, no longer captured, reaches the Service in plaintext through kube-proxy.
    assert curl(mesh, "client", "http://echo/").stdout == "echo-far node2"
