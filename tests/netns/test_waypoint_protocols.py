"""Protocols through a real waypoint on a local cluster: gRPC, websocket, retries, smuggling.

One 2-node cluster; namespace `shop` enrolled and using waypoint `waypoint`; servers on node2
(a grpcio server, a `websockets` server, an HTTP server failing every other request, the echo
server) and a client pod on node1 that runs real clients (grpcio, websockets, curl, a raw
socket). Every connection goes client → agent → waypoint → the server's agent → the server.
"""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import pytest

from tests.netns.test_local_cluster import ECHO_SERVER, apply_text
from tests.netns.test_mesh import until

pytestmark = pytest.mark.netns
APPS = Path(__file__).resolve().parent / "apps"


def server(name: str, script: str, port: int, service_port: int, *args: str) -> str:
    """Pod `name` on node2 running apps/`script` PORT *args, behind Service `name`."""
    command = json.dumps([sys.executable, str(APPS / script), str(port), *args])
    return textwrap.dedent(f"""\
        apiVersion: v1
        kind: Pod
        metadata: {{name: {name}, namespace: shop, labels: {{app: {name}}}}}
        spec:
          nodeName: node2
          containers:
            - name: server
              command: {command}
              ports: [{{name: main, containerPort: {port}}}]
              readinessProbe: {{tcpSocket: {{port: {port}}}, periodSeconds: 1}}
        ---
        apiVersion: v1
        kind: Service
        metadata: {{name: {name}, namespace: shop}}
        spec:
          selector: {{app: {name}}}
          ports: [{{name: main, port: {service_port}, targetPort: main}}]
        ---
    """)


def app() -> str:
    echo = json.dumps(["python3", "-u", "-c", ECHO_SERVER])
    return (
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: shop, labels: "
        "{nodemesh.io/dataplane-mode: ambient}}\n---\n"
        + server("grpc", "grpc_server.py", 50051, 50051)
        + server("ws", "ws_server.py", 8765, 8765)
        + server("flaky", "http_server.py", 8080, 80, "--fail-every", "2")
        + textwrap.dedent(f"""\
            apiVersion: v1
            kind: Pod
            metadata: {{name: echo, namespace: shop, labels: {{app: echo}}}}
            spec:
              nodeName: node2
              containers:
                - name: echo
                  command: {echo}
                  env: [{{name: POD_NAME, value: echo}}, {{name: NODE_NAME, value: node2}}]
                  ports: [{{name: http, containerPort: 8080}}]
                  readinessProbe: {{tcpSocket: {{port: 8080}}, periodSeconds: 1}}
            ---
            apiVersion: v1
            kind: Service
            metadata: {{name: echo, namespace: shop}}
            spec:
              selector: {{app: echo}}
              ports: [{{name: http, port: 80, targetPort: http}}]
            ---
            apiVersion: v1
            kind: Pod
            metadata: {{name: client, namespace: shop}}
            spec:
              nodeName: node1
              containers: [{{name: c, command: [sleep, infinity]}}]
            ---
            apiVersion: gateway.networking.k8s.io/v1
            kind: HTTPRoute
            metadata: {{name: flaky-retry, namespace: shop}}
            spec:
              parentRefs: [{{group: "", kind: Service, name: flaky, port: 80}}]
              rules:
                - backendRefs: [{{name: flaky, port: 80}}]
                  retry: {{attempts: 3, codes: [503], backoff: 1ms}}
        """)
    )


def vip(cluster, name: str) -> str:
    out = cluster.meshctl("get", "services", "-n", "shop", "-o", "json").stdout
    return next(s for s in json.loads(out)["items"] if s["metadata"]["name"] == name)["spec"][
        "clusterIP"
    ]


def in_client(cluster, *argv: str, check: bool = True):
    return cluster.meshctl("exec", "client", "-n", "shop", "--", *argv, check=check, timeout=120)


SMUGGLING = {
    "CL+TE": "POST / HTTP/1.1\\r\\nHost: echo\\r\\nContent-Length: 4\\r\\n"
    "Transfer-Encoding: chunked\\r\\n\\r\\n0\\r\\n\\r\\n",
    "CL twice": "POST / HTTP/1.1\\r\\nHost: echo\\r\\nContent-Length: 4\\r\\n"
    "Content-Length: 5\\r\\n\\r\\nabcde",
    "bad chunk size": "POST / HTTP/1.1\\r\\nHost: echo\\r\\nTransfer-Encoding: chunked\\r\\n\\r\\n"
    "-5\\r\\nabcde\\r\\n0\\r\\n\\r\\n",
    "obs-fold": "GET / HTTP/1.1\\r\\nHost: echo\\r\\nX-A: b\\r\\n c\\r\\n\\r\\n",
    "bare LF": "GET / HTTP/1.1\\nHost: echo\\n\\n",
    "bad header name": "GET / HTTP/1.1\\r\\nHost: echo\\r\\nBad Name: x\\r\\n\\r\\n",
}


def test_grpc_websocket_retries_and_smuggling_through_a_real_waypoint(local_cluster, tmp_path):
    cluster = local_cluster
    cluster.meshctl("local", "up", "--nodes", "2")
    apply_text(cluster, tmp_path, app())
    cluster.meshctl("waypoint", "apply", "-n", "shop", "--enroll-namespace", timeout=150)
    py = sys.executable

    # gRPC unary and server streaming, with their status codes.
    grpc_target = f"{vip(cluster, 'grpc')}:50051"
    calls = json.loads(in_client(cluster, py, str(APPS / "grpc_client.py"), grpc_target).stdout)
    assert calls["say"] == "hello mesh"
    assert calls["missing"] == "NOT_FOUND" and "missing" in calls["missing_detail"]
    assert calls["count"] == ["0", "1", "2", "3", "4"]

    # A websocket upgrade works end to end.
    ws_url = f"ws://{vip(cluster, 'ws')}:8765/chat"
    echoes = json.loads(in_client(cluster, py, str(APPS / "ws_client.py"), ws_url).stdout)
    assert echoes == ["echo hello", "echo " + "x" * 15]

    # Retries turn a backend failing half its requests into >= 99 % success.
    flaky = f"http://{vip(cluster, 'flaky')}/"
    until(
        lambda: in_client(cluster, "curl", "-s", flaky, check=False).stdout == "ok\n",
        what="the retry route reached the waypoint",
    )
    script = (
        f'for i in $(seq 200); do printf "url = \\"{flaky}\\"\\noutput = /dev/null\\n"; done'
        " | curl -s -K - -w '%{http_code}\\n'"
    )
    codes = in_client(cluster, "sh", "-c", script).stdout.split()
    assert len(codes) == 200 and codes.count("200") >= 198, codes.count("200")

    # Each smuggling shape gets a 400 and its connection closed; others keep working.
    echo = f"{vip(cluster, 'echo')}:80"
    for name, raw in SMUGGLING.items():
        answer = json.loads(in_client(cluster, py, str(APPS / "raw_http.py"), echo, raw).stdout)
        assert answer["status"].startswith("HTTP/1.1 400"), (name, answer)
        assert answer["closed"]
        ok = in_client(cluster, "curl", "-s", f"http://{echo}/").stdout
        assert ok == "echo node2", name
