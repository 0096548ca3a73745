"""TrafficPolicies through KubeRegistry: listed and watched like every kind, one per Service.

The fake API server stores them as a CRD would: as the user wrote them (no defaults written), with
the server's metadata. Translation normalizes them, so the waypoint reads the same spec as in
local mode, and settles conflicts by the server's creationTimestamps.
"""

from __future__ import annotations

from controller.translate import translate
from tests.inprocess.kube_fake import collection_path, stored
from tests.inprocess.test_registry_kube_gateways import eventually, listing, registry, server

__all__ = ["registry", "server"]  # fixtures, shared with the Gateway tests

POLICIES = collection_path("networking.nodemesh.io/v1", "trafficpolicies")


def traffic(name: str, *services: str, created: str, version: str = "801") -> dict:
    obj = {
        "apiVersion": "networking.nodemesh.io/v1",
        "kind": "TrafficPolicy",
        "metadata": {"name": name, "namespace": "shop"},
        "spec": {
            "targetRefs": [{"name": service} for service in services],
            "retries": {"attempts": 1},
        },
    }
    item = stored(obj, version)
    item["metadata"]["creationTimestamp"] = created
    return item


def test_listed_policies_reach_the_model_normalized_and_one_per_service(server, registry):
    older = traffic("zzz", "web", created="2025-06-01T10:00:00Z")
    newer = traffic("aaa", "web", "api", created="2025-06-02T10:00:00Z")
    server.set_list(POLICIES, listing("TrafficPolicy", [newer, older]))
    registry.start()
    assert registry.wait_synced(5)

    result = translate(registry.objects())

    by_service = result.snapshot.traffic_policy_by_service
    assert {key: p.name for key, p in by_service.items()} == {"shop/web": "zzz", "shop/api": "aaa"}
    retries = by_service["shop/web"].spec_data()["retries"]
    assert retries["attempts"] == 1 and retries["backoff"]["baseInterval"] == "25ms"  # a default
    assert [(e.kind, e.name) for e in result.errors] == [("TrafficPolicy", "aaa")]


def test_a_watched_policy_reaches_the_model(server, registry):
    server.set_list(POLICIES, listing("TrafficPolicy", []))
    registry.start()
    assert registry.wait_synced(5)
    added = traffic("web", "web", created="2025-06-02T10:00:00Z", version="950")
    added.update(apiVersion="networking.nodemesh.io/v1", kind="TrafficPolicy")

    server.send(POLICIES, {"type": "ADDED", "object": added})

    def arrived():
        """the added TrafficPolicy is in the model"""
        return translate(registry.objects()).snapshot.traffic_policy("shop", "web")

    assert eventually(arrived).services == ("web",)


def test_without_the_traffic_policy_crd_the_registry_still_syncs(registry):
    registry.start()

    assert registry.wait_synced(5)
    assert translate(registry.objects()).snapshot.traffic_policies == ()
