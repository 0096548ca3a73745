"""`make demo` is one of the README's two promises: `meshctl demo` end to end on a real cluster."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.netns


def test_the_demo_crosses_nodes_in_mtls_and_a_waypoint_refuses_admin(local_cluster):
    out = local_cluster.meshctl("demo", timeout=300).stdout
    assert "crossed from node1 to another node, by Service name" in out
    client, hello = (
        "spiffe://cluster.local/ns/demo/sa/client",
        "spiffe://cluster.local/ns/demo/sa/hello",
    )
    assert f"{client} → {hello}" in out
    assert "GET /       → hello from hello-" in out
    assert "GET /admin  → RBAC: access denied by AuthorizationPolicy demo/no-admin rule 0" in out
