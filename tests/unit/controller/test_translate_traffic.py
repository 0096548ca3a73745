"""translate() and TrafficPolicies: targets, the normalized spec, conflicts reported per Service."""

from __future__ import annotations

import json

from controller.model import TrafficPolicy
from controller.registry_local import LocalRegistry
from controller.translate import translate
from nodemesh.local.state import StateDir
from nodemesh.local.store import Store
from nodemesh.manifests.load import parse_documents
from waypoint.resilience.config import traffic_policy_from_spec

ABORT = {"faults": {"abort": {"percentage": 50, "httpStatus": 503}}}


def traffic(
    name: str = "web",
    *services: str,
    ns: str = "shop",
    created: str | None = "2025-06-02T09:14:27Z",
    sections: dict | None = None,
) -> dict:
    """A TrafficPolicy as a registry holds it (services default to one named like the policy)."""
    meta: dict = {"name": name, "namespace": ns}
    if created is not None:
        meta["creationTimestamp"] = created
    refs = [{"group": "", "kind": "Service", "name": s} for s in services or (name,)]
    return {
        "apiVersion": "networking.nodemesh.io/v1",
        "kind": "TrafficPolicy",
        "metadata": meta,
        "spec": {"targetRefs": refs, **(ABORT if sections is None else sections)},
    }


def test_a_policy_applies_to_its_targets_with_its_normalized_spec():
    result = translate([traffic("resilience", "web", "api", sections={"retries": {}})])

    assert result.errors == ()
    [found] = result.snapshot.traffic_policies
    assert (found.key, found.services, found.created) == (
        "shop/resilience",
        ("web", "api"),
        "2025-06-02T09:14:27Z",
    )
    spec = found.spec_data()
    assert spec["retries"]["attempts"] == 2  # the validator's default, written for the waypoint
    assert [ref["name"] for ref in spec["targetRefs"]] == ["web", "api"]
    assert traffic_policy_from_spec(spec).retries is not None


def test_the_spec_is_canonical_json_so_equal_specs_are_equal_text():
    reordered = traffic()
    reordered["spec"] = dict(reversed(list(reordered["spec"].items())))

    [a] = translate([traffic()]).snapshot.traffic_policies
    [b] = translate([reordered]).snapshot.traffic_policies

    assert a == b
    assert a.spec == json.dumps(json.loads(a.spec), sort_keys=True, separators=(",", ":"))


def test_a_target_service_that_does_not_exist_is_kept():
    snapshot = translate([traffic("ghost")]).snapshot

    assert snapshot.services == ()
    assert snapshot.traffic_policy_by_service["shop/ghost"].name == "ghost"


def test_the_oldest_of_two_policies_gets_the_service_and_the_other_is_reported():
    older = traffic("zzz", "web", created="2025-06-01T00:00:00Z")
    newer = traffic("aaa", "web", "api", created="2025-06-02T00:00:00Z")

    result = translate([newer, older])

    by_service = result.snapshot.traffic_policy_by_service
    assert {key: p.name for key, p in by_service.items()} == {"shop/web": "zzz", "shop/api": "aaa"}
    [error] = result.errors
    assert (error.kind, error.namespace, error.name) == ("TrafficPolicy", "shop", "aaa")
    assert "not applied to Service shop/web" in error.message
    assert "TrafficPolicy shop/zzz (created 2025-06-01T00:00:00Z)" in error.message


def test_a_policy_that_wins_no_service_is_left_out():
    result = translate([traffic("b", "web"), traffic("a", "web")])  # same age: the name decides

    assert [p.name for p in result.snapshot.traffic_policies] == ["a"]
    assert [(e.name, "(left out)" in e.message) for e in result.errors] == [("b", True)]


def test_an_invalid_policy_is_reported_and_the_others_translate():
    bad = traffic("bad", sections={"faults": {"abort": {"percentage": 500, "httpStatus": 503}}})

    result = translate([bad, traffic("good")])

    assert [p.name for p in result.snapshot.traffic_policies] == ["good"]
    [error] = result.errors
    assert (error.kind, error.name) == ("TrafficPolicy", "bad")
    assert "spec.faults.abort.percentage" in error.message


def test_a_policy_whose_creation_timestamp_is_no_time_is_reported():
    result = translate([traffic(created="last tuesday")])

    assert result.snapshot.traffic_policies == ()
    [error] = result.errors
    assert "creationTimestamp" in error.message and "RFC 3339" in error.message


def test_a_policy_without_a_creation_timestamp_translates_and_loses_to_one_with_it():
    result = translate([traffic("a", "web", created=None), traffic("b", "web")])

    [kept] = result.snapshot.traffic_policies
    assert kept == TrafficPolicy("b", "shop", ("web",), kept.spec, "2025-06-02T09:14:27Z")
    assert [e.name for e in result.errors] == ["a"]


def test_between_two_policies_of_unknown_age_the_name_decides_and_the_error_says_so():
    result = translate([traffic("b", "web", created=None), traffic("a", "web", created=None)])

    [error] = result.errors
    assert error.name == "b"
    assert "TrafficPolicy shop/a (no creationTimestamp) targets it too" in error.message


def test_the_local_registry_hands_traffic_policies_to_translate(tmp_path):
    """`meshctl apply` stores a TrafficPolicy; the local registry gives it its creation time."""
    state = StateDir("t", tmp_path)
    manifest = (
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: shop}\n---\n"
        "apiVersion: networking.nodemesh.io/v1\nkind: TrafficPolicy\n"
        "metadata: {name: web, namespace: shop}\n"
        "spec: {targetRefs: [{name: web}], faults: {delay: {percentage: 100, fixedDelay: 2s}}}\n"
    )
    Store(state).apply(parse_documents(manifest, "policy.yaml"))

    result = translate(LocalRegistry(state.path).objects())

    assert result.errors == ()
    [found] = result.snapshot.traffic_policies
    assert (found.key, found.services) == ("shop/web", ("web",))
    assert found.created != ""  # the store's creation time, so precedence works locally too
    assert traffic_policy_from_spec(found.spec_data()).faults.delay.delay == 2.0
