"""A whole local cluster on the real kernel, driven through `meshctl` as a user would."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import textwrap
import time

import pytest

from nodemesh.local import netns
from nodemesh.local.addressing import cluster_netns_prefix
from tests.netns.cluster_helpers import MESHCTL, LocalCluster

pytestmark = pytest.mark.netns

ECHO_SERVER = textwrap.dedent("""\
    import http.server, os, socketserver
    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = (os.environ["POD_NAME"] + " " + os.environ["NODE_NAME"]).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        def log_message(self, *args):
            pass
    socketserver.ThreadingTCPServer.allow_reuse_address = True
    socketserver.ThreadingTCPServer(("", 8080), H).serve_forever()
""")


def echo_app(replicas: int, namespace: str = "apps", client_node: str = "node1") -> str:
    server = json.dumps(["python3", "-u", "-c", ECHO_SERVER])
    return textwrap.dedent(f"""\
        apiVersion: v1
        kind: Namespace
        metadata: {{name: {namespace}}}
        ---
        apiVersion: apps/v1
        kind: Deployment
        metadata: {{name: echo, namespace: {namespace}}}
        spec:
          replicas: {replicas}
          selector: {{matchLabels: {{app: echo}}}}
          template:
            metadata: {{labels: {{app: echo}}}}
            spec:
              containers:
                - name: echo
                  command: {server}
                  env:
                    - name: POD_NAME
                      valueFrom: {{fieldRef: {{fieldPath: metadata.name}}}}
                    - name: NODE_NAME
                      valueFrom: {{fieldRef: {{fieldPath: spec.nodeName}}}}
                  ports: [{{name: http, containerPort: 8080}}]
                  readinessProbe:
                    tcpSocket: {{port: http}}
                    periodSeconds: 1
        ---
        apiVersion: v1
        kind: Service
        metadata: {{name: echo, namespace: {namespace}}}
        spec:
          selector: {{app: echo}}
          ports: [{{name: http, port: 80, targetPort: http}}]
        ---
        apiVersion: v1
        kind: Pod
        metadata: {{name: client, namespace: {namespace}}}
        spec:
          nodeName: {client_node}
          containers:
            - name: client
              command: [sleep, infinity]
    """)


def apply_text(cluster: LocalCluster, tmp_path, text: str, name: str = "app.yaml", check=True):
    path = tmp_path / name
    path.write_text(text)
    return cluster.meshctl("apply", "-f", str(path), check=check)


def pods(cluster: LocalCluster, namespace: str) -> list[dict]:
    out = cluster.meshctl("get", "pods", "-n", namespace, "-o", "json").stdout
    return json.loads(out)["items"]


def test_cross_node_request_by_service_name(local_cluster, tmp_path):
    local_cluster.meshctl("local", "up", "--nodes", "2")
    apply_text(
        local_cluster,
        tmp_path,
        echo_app(1).replace(
            "spec:\n      containers:\n        - name: echo",
            "spec:\n      nodeName: node2\n      containers:\n        - name: echo",
        ),
    )
    by_name = {p["metadata"]["name"]: p for p in pods(local_cluster, "apps")}
    assert by_name["client"]["spec"]["nodeName"] == "node1"
    server = next(p for n, p in by_name.items() if n.startswith("echo-"))
    assert server["spec"]["nodeName"] == "node2"
    for host in ("echo", "echo.apps", "echo.apps.svc.cluster.local"):
        out = local_cluster.exec(
            "client", "curl", "-sS", "--max-time", "5", f"http://{host}/", namespace="apps"
        )
        assert out.stdout == f"{server['metadata']['name']} node2", host
    # The pod IP works directly too, and an unknown name fails fast with a DNS error.
    ip = server["status"]["podIP"]
    out = local_cluster.exec(
        "client", "curl", "-sS", "--max-time", "5", f"http://{ip}:8080/", namespace="apps"
    )
    assert out.stdout.endswith("node2")
    bad = local_cluster.exec(
        "client", "curl", "-sS", "--max-time", "5", "http://nosuch/", namespace="apps", check=False
    )
    assert bad.returncode == 6, bad.stderr  # curl: could not resolve host


def test_three_replicas_reached_and_down_leaves_nothing(local_cluster, tmp_path):
    local_cluster.meshctl("local", "up", "--nodes", "3")
    apply_text(local_cluster, tmp_path, echo_app(3))
    servers = [p for p in pods(local_cluster, "apps") if p["metadata"]["name"].startswith("echo-")]
    assert sorted(p["spec"]["nodeName"] for p in servers) == ["node1", "node2", "node3"]
    script = "for i in $(seq 30); do curl -sS --max-time 5 http://echo/; echo; done"
    out = local_cluster.exec("client", "sh", "-c", script, namespace="apps")
    answers = out.stdout.split()
    reached = {line for line in out.stdout.splitlines() if line}
    assert len(reached) == 3, out.stdout
    assert len(answers) == 60  # 30 answers of "pod node"
    pids = [c["pid"] for p in servers for c in p["status"]["containerStatuses"]]
    local_cluster.meshctl("local", "down")
    assert local_cluster.leftovers() == []
    assert netns.list_netns(cluster_netns_prefix(local_cluster.name)) == []
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


BAD_DOCS = [
    ("kind: Gizmo\napiVersion: v1\nmetadata: {name: g}\n", "Gizmo"),
    ("kind: Pod\napiVersion: v1\nmetadata: {name: p}\nspec: {}\n", "spec.containers"),
    (
        "kind: Service\napiVersion: v1\nmetadata: {name: s}\n"
        "spec: {selector: {a: b}, ports: [{port: 70000}]}\n",
        "spec.ports[0].port",
    ),
]


@pytest.mark.parametrize(("bad", "field"), BAD_DOCS, ids=["unknown-kind", "missing", "range"])
def test_bad_manifest_is_refused_whole(local_cluster, tmp_path, bad, field):
    local_cluster.meshctl("local", "up", "--nodes", "1")
    good = "apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: fine}\n"
    res = apply_text(local_cluster, tmp_path, f"{good}---\n{bad}", "broken.yaml", check=False)
    assert res.returncode == 1
    assert "broken.yaml: document 2" in res.stderr and field in res.stderr, res.stderr
    listed = local_cluster.meshctl("get", "sa", "-o", "json").stdout
    assert json.loads(listed)["items"] == []  # the good document did not land either


def test_restart_policy_logs_and_exec_exit_code(local_cluster, tmp_path):
    local_cluster.meshctl("local", "up", "--nodes", "1")
    apply_text(
        local_cluster,
        tmp_path,
        textwrap.dedent("""\
        apiVersion: v1
        kind: Pod
        metadata: {name: flaky}
        spec:
          containers:
            - name: main
              command: [sh, -c, "echo started $HOSTNAME; exit 3"]
        ---
        apiVersion: v1
        kind: Pod
        metadata: {name: once}
        spec:
          restartPolicy: Never
          containers:
            - name: main
              command: [sh, -c, "echo done"]
        ---
        apiVersion: v1
        kind: Pod
        metadata: {name: idle}
        spec:
          containers:
            - name: main
              command: [sleep, infinity]
    """),
        check=False,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        flaky = next(p for p in pods(local_cluster, "default") if p["metadata"]["name"] == "flaky")
        if flaky["status"]["containerStatuses"][0]["restartCount"] >= 2:
            break
        time.sleep(0.5)
    assert flaky["status"]["containerStatuses"][0]["restartCount"] >= 2
    logs = local_cluster.meshctl("logs", "flaky").stdout
    assert logs.count("started flaky") >= 2
    once = next(p for p in pods(local_cluster, "default") if p["metadata"]["name"] == "once")
    assert once["status"]["phase"] == "Succeeded"
    assert once["status"]["containerStatuses"][0]["restartCount"] == 0
    assert local_cluster.exec("idle", "sh", "-c", "exit 7", check=False).returncode == 7
    assert local_cluster.exec("idle", "hostname").stdout.strip() == "idle"


def test_rolling_update_replaces_pods_and_service_keeps_answering(local_cluster, tmp_path):
    local_cluster.meshctl("local", "up", "--nodes", "2")
    apply_text(local_cluster, tmp_path, echo_app(2))
    before = {p["metadata"]["name"] for p in pods(local_cluster, "apps")}
    changed = echo_app(2).replace("labels: {app: echo}}", "labels: {app: echo, rev: b}}")
    apply_text(local_cluster, tmp_path, changed)
    after = {p["metadata"]["name"] for p in pods(local_cluster, "apps")}
    assert "client" in after
    new = {n for n in after if n.startswith("echo-")}
    assert len(new) == 2 and not new & before
    out = local_cluster.exec(
        "client", "curl", "-sS", "--max-time", "5", "http://echo/", namespace="apps"
    )
    assert out.stdout.split()[0] in new


@pytest.mark.parametrize("delay", [0.15, 0.4, 0.9])
def test_killed_up_then_down_leaves_machine_clean(local_cluster, delay):
    proc = subprocess.Popen(
        [MESHCTL, "local", "up", "--nodes", "3"],
        env=local_cluster.env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    local_cluster.meshctl("local", "down")
    assert local_cluster.leftovers() == []


def test_a_killed_runtime_is_restarted_by_up_and_readopts_its_pods(local_cluster, tmp_path):
    local_cluster.meshctl("local", "up", "--nodes", "2")
    apply_text(local_cluster, tmp_path, echo_app(2))
    before = {p["metadata"]["name"]: p["status"]["podIP"] for p in pods(local_cluster, "apps")}
    runtime = json.loads(local_cluster.meshctl("local", "status", "-o", "json").stdout)
    os.kill(runtime["runtimePid"], signal.SIGKILL)
    down = local_cluster.meshctl("get", "pods", "-n", "apps", check=False)
    assert down.returncode == 0  # status stays readable while the runtime is away
    out = local_cluster.meshctl("local", "up").stdout
    assert "restarted its runtime" in out
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        now = pods(local_cluster, "apps")
        if all(p["status"]["conditions"][0]["status"] == "True" for p in now):
            break
        time.sleep(0.3)
    assert {p["metadata"]["name"]: p["status"]["podIP"] for p in now} == before
    got = local_cluster.exec(
        "client", "curl", "-sS", "--max-time", "5", "http://echo/", namespace="apps"
    )
    assert got.stdout.startswith("echo-")


def test_host_network_pod_shares_its_node_namespace(local_cluster, tmp_path):
    local_cluster.meshctl("local", "up", "--nodes", "2")
    manifest = textwrap.dedent(f"""\
        apiVersion: v1
        kind: Pod
        metadata: {{name: hostsvc, labels: {{app: hostsvc}}}}
        spec:
          hostNetwork: true
          nodeName: node1
          containers:
            - name: srv
              command: {json.dumps(["python3", "-c", ECHO_SERVER])}
              env:
                - {{name: POD_NAME, value: hostsvc}}
                - {{name: NODE_NAME, valueFrom: {{fieldRef: {{fieldPath: spec.nodeName}}}}}}
              readinessProbe: {{tcpSocket: {{port: 8080}}, periodSeconds: 1}}
        ---
        apiVersion: v1
        kind: Pod
        metadata: {{name: client}}
        spec:
          nodeName: node2
          containers: [{{name: c, command: [sleep, infinity]}}]
    """)
    apply_text(local_cluster, tmp_path, manifest)
    host = next(p for p in pods(local_cluster, "default") if p["metadata"]["name"] == "hostsvc")
    assert host["status"]["podIP"] == "198.18.0.11"  # node1's own address
    node1 = f"{cluster_netns_prefix(local_cluster.name)}node1"
    assert host["sandbox"]["netns"] == node1
    out = local_cluster.exec("client", "curl", "-sS", "--max-time", "5", "http://198.18.0.11:8080/")
    assert out.stdout == "hostsvc node1"
    (tmp_path / "app.yaml").write_text(manifest)
    local_cluster.meshctl("delete", "-f", str(tmp_path / "app.yaml"))
    assert netns.netns_exists(node1)  # deleting the pod never deletes its node
    links = netns.run(["ip", "-n", node1, "-o", "link", "show", "eth0"])
    assert "state UP" in links
