"""Checks that need a running cluster's facts: nodes, agents, pods the runtime runs."""

from __future__ import annotations

import yaml

from controller.analyze import World, run_checks
from nodemesh.cli.waypoint_ops import gateway_manifest
from tests.unit.analyze.helpers import codes, objects
from tests.unit.cli.helpers import waypoint_pod

SHOP = """
apiVersion: v1
kind: Namespace
metadata: {name: shop, labels: {nodemesh.io/dataplane-mode: ambient}}
"""


def running_pod(name: str, node: str, *, ns: str = "shop", labels=None, ip="198.18.1.5") -> dict:
    """A pod as the local runtime publishes it in status.json."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": ns, "uid": f"uid-{name}", "labels": labels or {}},
        "spec": {"nodeName": node, "containers": [{"name": "c", "command": ["sleep", "1"]}]},
        "status": {
            "phase": "Running",
            "podIP": ip,
            "conditions": [{"type": "Ready", "status": "True"}],
        },
    }


def agent(node: str, phase: str = "Running") -> dict:
    pod = running_pod(
        f"nodemesh-agent-{node}", node, ns="nodemesh-system", labels={"app": "nodemesh-agent"}
    )
    pod["spec"]["hostNetwork"] = True
    pod["status"]["phase"] = phase
    return pod


def analyze(pods: list[dict], text: str = SHOP, nodes=("node1", "node2")):
    return run_checks(World.build([*objects(text), *pods], nodes=nodes))


def test_enrolled_pods_on_a_node_without_agent_are_reported_once_per_namespace_and_node():
    pods = [running_pod("a", "node2"), running_pod("b", "node2", ip="198.18.1.6"), agent("node1")]
    found = analyze(pods)
    assert codes(found) == ["NM0401"]
    assert found[0].object_name == "Namespace shop"
    assert "node 'node2'" in found[0].message and "pods a, b" in found[0].message


def test_every_node_with_a_running_agent_is_clean():
    assert analyze([running_pod("a", "node2"), agent("node1"), agent("node2")]) == []


def test_an_agent_that_is_not_running_does_not_count():
    found = analyze([running_pod("a", "node2"), agent("node1"), agent("node2", "Pending")])
    assert codes(found) == ["NM0401"]


def test_pods_of_a_namespace_not_enrolled_need_no_agent():
    text = "apiVersion: v1\nkind: Namespace\nmetadata: {name: shop}\n"
    assert analyze([running_pod("a", "node2")], text) == []


def test_files_alone_know_no_nodes_so_the_node_check_is_silent():
    assert analyze([running_pod("a", "node2")], nodes=None) == []


WAYPOINT = yaml.safe_dump(gateway_manifest("shop", "waypoint").obj)  # as `meshctl waypoint apply`


def test_a_waypoint_with_no_ready_pod_is_reported_in_cluster_mode():
    text = SHOP + "---\n" + WAYPOINT
    pods = [agent("node1"), agent("node2"), waypoint_pod("waypoint-1", ready=False)]
    found = analyze(pods, text)
    assert codes(found) == ["NM0303"]
    assert found[0].object_name == "Gateway shop/waypoint"
    assert "no ready pod" in found[0].message


def test_a_waypoint_with_a_ready_pod_is_clean():
    text = SHOP + "---\n" + WAYPOINT
    pods = [agent("node1"), agent("node2"), waypoint_pod("waypoint-1", ready=True)]
    assert analyze(pods, text) == []


def test_a_stored_pod_and_its_running_copy_are_one_workload():
    text = (
        SHOP
        + """---
apiVersion: v1
kind: Pod
metadata: {name: a, namespace: shop, labels: {app: a}}
spec: {containers: [{name: c, command: [sleep, "1"]}]}
---
apiVersion: security.nodemesh.io/v1
kind: AuthorizationPolicy
metadata: {name: get-only, namespace: shop}
spec:
  selector: {matchLabels: {app: a}}
  rules: [{to: [{operation: {methods: [GET]}}]}]
"""
    )
    pods = [agent("node1"), running_pod("a", "node1", labels={"app": "a"})]
    found = analyze(pods, text)
    assert codes(found) == ["NM0105"]
    assert "pod/a have" in found[0].message  # named once, not once per copy
