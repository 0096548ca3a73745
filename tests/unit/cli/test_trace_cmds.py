"""`meshctl trace --explain` with CliRunner, on a local cluster's files (no runtime)."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from nodemesh.cli.context import Ctx
from nodemesh.cli.trace_cmds import trace
from nodemesh.local import state as state_module
from nodemesh.local.state import StateDir, write_json_atomic
from nodemesh.local.store import Store
from nodemesh.manifests.load import parse_documents
from tests.unit.trace.objects import MESH

POLICY = """
apiVersion: security.nodemesh.io/v1
kind: AuthorizationPolicy
metadata: {name: web-deny, namespace: shop}
spec:
  selector: {matchLabels: {app: web}}
  action: DENY
  rules: [{to: [{operation: {ports: ["8080"]}}]}]
"""


@pytest.fixture
def cluster(tmp_path, monkeypatch) -> StateDir:
    """Stored objects in store.json, pods in status.json: what LocalRegistry reads."""
    monkeypatch.setattr(state_module, "DEFAULT_ROOT", tmp_path)
    state = StateDir("test")
    write_json_atomic(state.cluster_file, {"name": "test"})
    pods = [o for o in MESH if o["kind"] == "Pod"]
    write_json_atomic(state.status_file, {"pods": pods, "services": [], "nodes": []})
    stored = [o for o in MESH if o["kind"] != "Pod"]
    Store(state).apply(parse_documents(json.dumps(stored[0]), "ns.yaml"))  # JSON is YAML
    for i, obj in enumerate(stored[1:]):
        Store(state).apply(parse_documents(json.dumps(obj), f"{i}.yaml"))
    return state


def meshctl(*args: str):
    return CliRunner().invoke(trace, list(args), obj=Ctx(cluster="test"))


def test_explain_prints_the_hops_and_the_verdict(cluster):
    result = meshctl("client", "web", "-n", "shop", "--explain")
    assert result.exit_code == 0, result.output
    assert "source-agent" in result.output and "destination-agent" in result.output
    assert result.output.rstrip().splitlines()[-1].startswith("verdict: FORWARDED")


def test_a_denial_in_json_names_the_policy_and_rule(cluster):
    Store(cluster).apply(parse_documents(POLICY, "deny.yaml"))
    result = meshctl("shop/client", "web", "--explain", "-o", "json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert doc["verdict"] == "DENIED"
    assert (doc["hops"][-1]["policy"], doc["hops"][-1]["rule"]) == ("shop/web-deny", 0)


def test_http_and_headers_reach_the_waypoint(cluster):
    result = meshctl(
        "client",
        "db",
        "-n",
        "shop",
        "--explain",
        "--http",
        "post",
        "/x",
        "-H",
        "X-A: b",
        "-o",
        "yaml",
    )
    assert result.exit_code == 0, result.output
    assert "request: POST /x" in result.output and "waypoint-authz" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("client", "nothing", "-n", "shop", "--explain"), "no running pod or Service"),
        (("client", "web", "-n", "shop", "--explain", "-H", "bad"), "is not 'name: value'"),
        (("client", "web", "-n", "shop", "--explain", "--http", "GET", "x"), "must start with"),
    ],
)
def test_user_errors_exit_1_with_one_line_saying_what_to_do(cluster, args, message):
    result = meshctl(*args)
    assert result.exit_code == 1
    assert message in result.output


def test_without_a_cluster_it_says_how_to_make_one(tmp_path, monkeypatch):
    monkeypatch.setattr(state_module, "DEFAULT_ROOT", tmp_path)
    result = meshctl("client", "web", "--explain")
    assert result.exit_code == 1
    assert "meshctl local up" in result.output
