"""Pod sandboxes' networking on the real kernel, below the runtime."""

from __future__ import annotations

import subprocess

import pytest

from nodemesh.local import netns, network
from nodemesh.local.addressing import cluster_netns_prefix, plan_cluster, veth_name
from tests.netns.cluster_helpers import cluster_name_for

pytestmark = pytest.mark.netns


@pytest.fixture
def one_node(request):
    plan = plan_cluster(cluster_name_for(request.node.nodeid), 1)
    try:
        network.create_cluster_network(plan)
        yield plan
    finally:
        for name in netns.list_netns(cluster_netns_prefix(plan.name)):
            subprocess.run(["ip", "netns", "del", name], check=False)


def test_an_address_is_reusable_right_after_its_pod_is_deleted(one_node):
    """Namespace destruction is asynchronous; the node's stale /32 route must not block reuse."""
    node = one_node.nodes[0]
    for i in range(20):
        uid = f"{i:02d}cdef0000000000"
        pod = network.PodNet(
            one_node.pod_netns(uid), node.netns, veth_name(uid), "198.18.1.2", node.gateway
        )
        network.create_pod_network(pod)
        network.delete_pod_network(pod)
    routes = netns.run(["ip", "-n", node.netns, "route", "show", "198.18.1.2/32"])
    assert routes.strip() == ""
