"""TrafficPolicy <-> nodemesh.v1.TrafficPolicy, and the checks a waypoint makes before using one."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from controller import scope
from controller.model import TrafficPolicy, canonical_json
from controller.resources import ResourceError, from_resource, to_message, to_resources
from controller.translate import translate
from nodemesh.proto import mesh_pb2
from tests.unit.controller.test_translate_traffic import traffic

SPEC = {
    "targetRefs": [
        {"group": "", "kind": "Service", "name": "web"},
        {"group": "", "kind": "Service", "name": "api"},
    ],
    "faults": {"abort": {"percentage": 50, "httpStatus": 503}},
}
POLICY = TrafficPolicy("web", "shop", ("web", "api"), canonical_json(SPEC), "2025-06-02T09:14:27Z")


def roundtrip(obj: TrafficPolicy) -> TrafficPolicy:
    key = scope.key_of(obj)
    return from_resource(key.type_url, to_message(obj).SerializeToString(), key.name)


def message(**changes) -> mesh_pb2.TrafficPolicy:
    fields = {
        "name": POLICY.name,
        "namespace": POLICY.namespace,
        "services": POLICY.services,
        "spec": POLICY.spec,
        "creation_timestamp": POLICY.created,
    }
    return mesh_pb2.TrafficPolicy(**(fields | changes))


def decode(m: mesh_pb2.TrafficPolicy) -> TrafficPolicy:
    return from_resource(scope.TRAFFIC_POLICY, m.SerializeToString())


def test_a_policy_is_keyed_by_namespace_and_name_under_its_own_type():
    assert scope.key_of(POLICY) == scope.ResourceKey(
        "type.googleapis.com/nodemesh.v1.TrafficPolicy", "shop/web"
    )
    assert scope.TRAFFIC_POLICY in scope.TYPE_URLS


@pytest.mark.parametrize(
    "obj",
    [
        POLICY,
        TrafficPolicy("web", "shop", ("api",), POLICY.spec, POLICY.created),  # narrowed: lost web
        TrafficPolicy("web", "shop", ("web",), POLICY.spec, ""),  # age unknown
    ],
    ids=["whole", "narrowed", "no-timestamp"],
)
def test_a_policy_survives_the_trip(obj):
    assert roundtrip(obj) == obj


def test_the_spec_travels_as_canonical_json_text():
    sent = to_message(POLICY)

    assert sent.spec == POLICY.spec and json.loads(sent.spec) == SPEC
    assert list(sent.services) == ["web", "api"]
    assert sent.creation_timestamp == "2025-06-02T09:14:27Z"


def test_a_spec_spelled_another_way_is_read_into_the_canonical_spelling():
    spaced = json.dumps(dict(reversed(list(SPEC.items()))), indent=2)

    assert decode(message(spec=spaced)) == POLICY


_sections = st.fixed_dictionaries(
    {},
    optional={
        "retries": st.just({"attempts": 3, "retryOn": ["5xx"], "perTryTimeout": "2s"}),
        "connectionPool": st.just({"maxConnections": 10, "maxPendingRequests": 0}),
        "outlierDetection": st.just({"consecutive5xxErrors": 3, "interval": "5s"}),
        "faults": st.just({"delay": {"percentage": 0.5, "fixedDelay": "2s"}}),
        "rateLimit": st.just({"maxTokens": 10, "fillInterval": "1s"}),
    },
).filter(bool)


@given(sections=_sections, created=st.sampled_from(["", "2025-06-02T09:14:27Z"]))
def test_any_translated_policy_survives_the_trip(sections, created):
    result = translate([traffic("web", "web", "api", created=created or None, sections=sections)])
    assert result.errors == ()

    [obj] = result.snapshot.traffic_policies

    assert roundtrip(obj) == obj


@pytest.mark.parametrize(
    ("changes", "error"),
    [
        ({"name": ""}, "name is empty"),
        ({"services": []}, "services: empty"),
        ({"services": ["web", "db"]}, "'db' is not one of spec.targetRefs (api, web)"),
        ({"services": ["web", "web"]}, "listed twice"),
        ({"spec": ""}, "spec is empty"),
        ({"spec": "{retries"}, "spec: not JSON"),
        ({"spec": "[]"}, "spec: must be a JSON object, got list"),
        (
            {"spec": canonical_json({**SPEC, "faults": {"abort": {"percentage": 500}}})},
            "spec.faults.abort",
        ),
        ({"spec": canonical_json({**SPEC, "circuitBreaker": {}})}, "circuitBreaker"),
        ({"spec": canonical_json({"faults": SPEC["faults"]})}, "spec.targetRefs"),
        ({"creation_timestamp": "yesterday"}, "creation_timestamp: metadata.creationTimestamp"),
        ({"creation_timestamp": "2025-06-02T11:14:27+02:00"}, "not spelled YYYY-MM-DDTHH:MM:SSZ"),
    ],
    ids=[
        "no-name",
        "no-service",
        "untargeted-service",
        "service-twice",
        "no-spec",
        "spec-not-json",
        "spec-not-object",
        "spec-invalid",
        "spec-unknown-section",
        "spec-without-targets",
        "timestamp-not-a-time",
        "timestamp-not-canonical",
    ],
)
def test_a_policy_the_waypoint_could_not_apply_is_refused(changes, error):
    with pytest.raises(ResourceError) as caught:
        decode(message(**changes))

    assert error in str(caught.value)
    assert str(caught.value).startswith("TrafficPolicy: ")  # names the message type


def test_a_spec_the_waypoints_reader_refuses_is_refused(monkeypatch):
    """The manifest checks and the waypoint's reader both run: a reader failure alone rejects."""
    from controller import resources_traffic
    from waypoint.resilience.errors import ResilienceConfigError

    def refuse(spec):
        raise ResilienceConfigError("TrafficPolicy spec is not a normalized spec (KeyError: x)")

    monkeypatch.setattr(resources_traffic, "traffic_policy_from_spec", refuse)

    with pytest.raises(ResourceError, match="spec: TrafficPolicy spec is not a normalized spec"):
        decode(message())


def test_a_policy_named_for_another_one_is_refused():
    payload = message().SerializeToString()

    with pytest.raises(ResourceError, match="'shop/other' carries 'shop/web'"):
        from_resource(scope.TRAFFIC_POLICY, payload, "shop/other")


def test_to_resources_sends_policies_under_their_type():
    snapshot = translate([traffic("web")]).snapshot

    sent = to_resources(snapshot, {scope.ResourceKey(scope.TRAFFIC_POLICY, "shop/web")})

    assert list(sent) == [scope.TRAFFIC_POLICY]
    assert isinstance(sent[scope.TRAFFIC_POLICY]["shop/web"], mesh_pb2.TrafficPolicy)
