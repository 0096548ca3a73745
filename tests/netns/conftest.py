from __future__ import annotations

import pytest

from nodemesh.local.state import StateDir
from tests.netns.cluster_helpers import LocalCluster, cluster_name_for


@pytest.fixture
def local_cluster(request):
    """A fresh cluster named after the test; removed afterwards even if the test failed."""
    cluster = LocalCluster(cluster_name_for(request.node.nodeid))
    cluster.meshctl("local", "down", check=False)  # remains of an earlier crashed run
    try:
        yield cluster
    finally:
        log = StateDir(cluster.name).daemon_log
        if log.exists():  # shown by pytest only when the test failed
            print(f"--- {log} ---\n{log.read_text(errors='replace')[-6000:]}")
        down = cluster.meshctl("local", "down", check=False)
        left = cluster.leftovers()
        assert not left, f"local down left: {left}\n{down.stdout}{down.stderr}"
