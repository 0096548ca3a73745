from __future__ import annotations

import pytest

from tests.netns.cluster_helpers import LocalCluster, cluster_name_for


@pytest.fixture
def local_cluster(request):
    """A fresh cluster named after the test; removed afterwards even if the test failed."""
    cluster = LocalCluster(cluster_name_for(request.node.nodeid))
    cluster.meshctl("local", "down", check=False)  # remains of an earlier crashed run
    try:
        yield cluster
    finally:
        down = cluster.meshctl("local", "down", check=False)
        left = cluster.leftovers()
        assert not left, f"local down left: {left}\n{down.stdout}{down.stderr}"
