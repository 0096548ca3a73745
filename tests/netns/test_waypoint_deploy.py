"""The controller deploys waypoints in a real local cluster: a Gateway in, a Deployment and its
pod out; the Gateway gone, both gone.

Only the objects are checked: the waypoint proxy process is not part of this test (its pod may
not become ready), so nothing here waits for readiness.
"""

from __future__ import annotations

import json
import textwrap

import pytest

from tests.netns.test_mesh import until

pytestmark = pytest.mark.netns

SHOP = textwrap.dedent("""\
    apiVersion: v1
    kind: Namespace
    metadata: {name: shop, labels: {nodemesh.io/dataplane-mode: ambient}}
""")
GATEWAY_NAME = "gateway.networking.k8s.io/gateway-name"


def items(cluster, kind: str) -> list[dict]:
    out = cluster.meshctl("get", kind, "-n", "shop", "-o", "json").stdout
    return json.loads(out)["items"]


def test_a_gateway_becomes_a_waypoint_deployment_and_pod_and_goes_with_it(local_cluster, tmp_path):
    local_cluster.meshctl("local", "up", "--nodes", "1")
    (tmp_path / "shop.yaml").write_text(SHOP)
    local_cluster.meshctl("apply", "-f", str(tmp_path / "shop.yaml"))

    local_cluster.meshctl("waypoint", "apply", "-n", "shop", "--no-wait")

    def deployed():
        """the controller wrote the waypoint's Deployment"""
        return [
            d for d in items(local_cluster, "deployments") if d["metadata"]["name"] == "waypoint"
        ]

    def pod_exists():
        """the runtime started a waypoint pod"""
        return [p for p in items(local_cluster, "pods") if GATEWAY_NAME in p["metadata"]["labels"]]

    [deployment] = until(deployed, what=deployed.__doc__)
    labels = deployment["metadata"]["labels"]
    assert labels["nodemesh.io/managed-by"] == "nodemesh-controller"
    assert labels["nodemesh.io/dataplane-mode"] == "none"
    [pod] = until(pod_exists, what=pod_exists.__doc__)
    assert pod["spec"]["serviceAccountName"] == "waypoint"
    assert pod["metadata"]["labels"]["nodemesh.io/dataplane-mode"] == "none"
    listed = json.loads(
        local_cluster.meshctl("waypoint", "list", "-n", "shop", "-o", "json").stdout
    )
    assert [w["name"] for w in listed["waypoints"]] == ["waypoint"]

    local_cluster.meshctl("waypoint", "delete", "-n", "shop")

    def removed():
        """the Deployment, its ServiceAccount and its pods are gone"""
        return not deployed() and not pod_exists() and not items(local_cluster, "serviceaccounts")

    until(removed, what=removed.__doc__)
