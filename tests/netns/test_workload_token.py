"""A pod's service-account token on a real local cluster: the runtime mints it, the pod finds it
through NODEMESH_TOKEN_FILE, the controller trades it for the pod's identity, a restarted runtime
keeps it valid, and deleting the pod revokes it."""

from __future__ import annotations

import json
import os
import signal
import stat
import sys
import textwrap
import time
from pathlib import Path

import pytest

from nodemesh.local.credentials import digest, pod_tokens_path
from nodemesh.local.state import StateDir

pytestmark = pytest.mark.netns
TD = "cluster.local"
CONTROLLER = "198.18.0.11:15011"  # node1's address: the controller runs there, host network

# Bootstraps with the token $NODEMESH_TOKEN_FILE names (or argv[3]); prints one JSON line.
BOOTSTRAP = textwrap.dedent("""\
    import asyncio, json, os, sys, time
    import grpc
    from cryptography import x509
    from nodemesh import controlplane
    from nodemesh.identity import identity_of_certificate

    bundle, address = open(sys.argv[1], "rb").read(), sys.argv[2]
    path = sys.argv[3] if len(sys.argv) > 3 else os.environ.get("NODEMESH_TOKEN_FILE")

    async def once():
        token, key = controlplane.read_token(path), controlplane.new_key()
        got = await controlplane.bootstrap_workload(address, bundle, token, key, timeout=5)
        return str(identity_of_certificate(x509.load_pem_x509_certificate(got.chain_pem)))

    async def main():
        for _ in range(60):
            try:
                return {"tokenFile": path, "identity": await once()}
            except grpc.aio.AioRpcError as exc:
                if exc.code() != grpc.StatusCode.UNAVAILABLE:
                    return {"tokenFile": path, "refused": exc.code().name, "why": exc.details()}
            await asyncio.sleep(0.5)
        return {"error": "controller unavailable"}

    print(json.dumps(asyncio.run(main())), flush=True)
    if len(sys.argv) <= 3:
        time.sleep(1e6)  # a waypoint would now serve; stay up so the pod stays Running
""")


NAMESPACE = """\
apiVersion: v1
kind: Namespace
metadata: {name: tok}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: waypoint, namespace: tok}
---
apiVersion: v1
kind: Pod
metadata: {name: other, namespace: tok}
spec:
  nodeName: node1
  containers: [{name: c, command: [sleep, infinity]}]
"""


def waypoint_pod(script: Path, bundle: Path) -> str:
    command = json.dumps([sys.executable, str(script), str(bundle), CONTROLLER])
    return textwrap.dedent(f"""\
        apiVersion: v1
        kind: Pod
        metadata: {{name: wp, namespace: tok}}
        spec:
          nodeName: node2
          serviceAccountName: waypoint
          containers: [{{name: proxy, command: {command}}}]
    """)


def reports(cluster) -> list[dict]:
    out = cluster.meshctl("logs", "wp", "-n", "tok", check=False).stdout
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def until_reports(cluster, count: int, timeout: float = 40.0) -> list[dict]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = reports(cluster)
        if len(got) >= count:
            return got
        time.sleep(0.3)
    raise AssertionError(f"the pod reported {reports(cluster)}, wanted {count} reports")


def pod(cluster, name: str) -> dict:
    out = cluster.meshctl("get", "pods", "-n", "tok", "-o", "json").stdout
    return next(p for p in json.loads(out)["items"] if p["metadata"]["name"] == name)


def test_a_pod_trades_its_token_for_its_identity_until_it_is_deleted(local_cluster, tmp_path):
    local_cluster.meshctl("local", "up", "--nodes", "2")
    state = StateDir(local_cluster.name)
    script, bundle = tmp_path / "bootstrap.py", state.path / "ca" / "trust-bundle.pem"
    script.write_text(BOOTSTRAP)
    (tmp_path / "wp.yaml").write_text(waypoint_pod(script, bundle))
    (tmp_path / "app.yaml").write_text(NAMESPACE + "---\n" + waypoint_pod(script, bundle))
    local_cluster.meshctl("apply", "-f", str(tmp_path / "app.yaml"))

    [first] = until_reports(local_cluster, 1)
    token_file = Path(pod(local_cluster, "wp")["sandbox"]["logDir"]) / "serviceaccount" / "token"
    assert first == {"tokenFile": str(token_file), "identity": f"spiffe://{TD}/ns/tok/sa/waypoint"}
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(pod_tokens_path(state).stat().st_mode) == 0o600
    token = token_file.read_text()
    entry = json.loads(pod_tokens_path(state).read_text())[digest(token)]
    assert entry["pod"] == "wp" and entry["node"] == "node2"

    # A restarted runtime re-adopts the pod; its token is the same and still accepted.
    runtime = json.loads(local_cluster.meshctl("local", "status", "-o", "json").stdout)
    os.kill(runtime["runtimePid"], signal.SIGKILL)
    local_cluster.meshctl("local", "up")
    second = until_reports(local_cluster, 2)[1]
    assert second == first
    assert token_file.read_text() == token

    # Deleting the pod revokes its token: replayed from elsewhere, the controller refuses it.
    (tmp_path / "stolen").write_text(token)
    local_cluster.meshctl("delete", "-f", str(tmp_path / "wp.yaml"))
    assert digest(token) not in json.loads(pod_tokens_path(state).read_text())
    replay = local_cluster.exec(
        "other",
        sys.executable,
        str(script),
        str(bundle),
        CONTROLLER,
        str(tmp_path / "stolen"),
        namespace="tok",
    )
    refused = json.loads(replay.stdout.strip().splitlines()[-1])
    assert refused["refused"] == "UNAUTHENTICATED", refused
    assert "pod that is gone" in refused["why"]
