"""WaypointConfig and TrafficPolicies: pushed policies become each Service's resilience settings."""

from __future__ import annotations

from dataclasses import replace

from controller import scope
from controller.model import TrafficPolicy, canonical_json
from controller.resources import to_message, to_resources
from controller.translate import translate
from nodemesh.proto import mesh_pb2
from nodemesh.xds.resources import XdsResource
from tests.unit.controller.test_translate import namespace, service
from tests.unit.controller.test_translate_traffic import traffic
from waypoint.resilience.config import traffic_policy_from_spec
from waypoint.state import WaypointConfig

DELAY = {"faults": {"delay": {"percentage": 100, "fixedDelay": "2s"}}}
LIMIT = {"rateLimit": {"maxTokens": 5, "fillInterval": "1s"}}


def spec(*services: str, sections: dict) -> str:
    refs = [{"group": "", "kind": "Service", "name": name} for name in services]
    return canonical_json({"targetRefs": refs, **sections})


def policy(name: str, *services: str, sections=DELAY, created="2025-06-02T09:14:27Z"):
    return TrafficPolicy(name, "shop", services, spec(*services, sections=sections), created)


def resource(obj: TrafficPolicy) -> XdsResource:
    return XdsResource.build(scope.TRAFFIC_POLICY, obj.key, to_message(obj).SerializeToString())


def test_a_pushed_policy_sets_its_services_resilience_end_to_end():
    """Registry objects -> translate -> the waypoint's scope -> bytes -> the waypoint's state."""
    objects = [
        namespace("shop", {"nodemesh.io/use-waypoint": "waypoint"}),
        service("web", ns="shop"),
        traffic("web", "web", sections=DELAY),
    ]
    snapshot = translate(objects).snapshot
    sent = to_resources(snapshot, scope.for_waypoint(snapshot, "shop", "waypoint"))
    config = WaypointConfig()

    for type_url in scope.WAYPOINT_TYPE_URLS:
        upserts = [
            XdsResource.build(type_url, name, message.SerializeToString())
            for name, message in sent.get(type_url, {}).items()
        ]
        assert config.apply(type_url, upserts, []) == {}

    [held] = snapshot.traffic_policies
    assert dict(config.state.traffic_policies) == {
        "shop/web": traffic_policy_from_spec(held.spec_data())
    }
    assert config.state.traffic_policies["shop/web"].faults.delay.delay == 2.0


def test_a_policy_that_does_not_parse_is_rejected_alone():
    bad = mesh_pb2.TrafficPolicy(
        name="broken", namespace="shop", services=["db"], spec=spec("db", sections={})
    )
    config = WaypointConfig()

    rejected = config.apply(
        scope.TRAFFIC_POLICY,
        [
            resource(policy("web", "web")),
            XdsResource.build(scope.TRAFFIC_POLICY, "shop/broken", bad.SerializeToString()),
        ],
        [],
    )

    assert list(rejected) == ["shop/broken"]
    assert "sets none of retries" in rejected["shop/broken"]
    assert set(config.state.traffic_policies) == {"shop/web"}


def test_a_refused_update_keeps_the_last_good_version():
    config = WaypointConfig()
    config.apply(scope.TRAFFIC_POLICY, [resource(policy("web", "web"))], [])
    broken = replace(policy("web", "web"), spec='{"targetRefs": []}')
    update = XdsResource.build(
        scope.TRAFFIC_POLICY, "shop/web", to_message(broken).SerializeToString()
    )

    rejected = config.apply(scope.TRAFFIC_POLICY, [update], [])

    assert list(rejected) == ["shop/web"]
    assert config.state.traffic_policies["shop/web"].faults.delay.percentage == 100


def test_a_removed_policy_leaves_its_services_without_one():
    config = WaypointConfig()
    config.apply(scope.TRAFFIC_POLICY, [resource(policy("web", "web"))], [])

    config.apply(scope.TRAFFIC_POLICY, [], ["shop/web"])

    assert dict(config.state.traffic_policies) == {}


def test_a_narrowed_policy_applies_only_to_the_services_it_won():
    narrowed = replace(policy("broad", "web", "api", sections=LIMIT), services=("api",))
    config = WaypointConfig()

    config.apply(scope.TRAFFIC_POLICY, [resource(narrowed)], [])

    assert set(config.state.traffic_policies) == {"shop/api"}
    assert config.state.traffic_policies["shop/api"].services == ("api",)
    assert config.state.traffic_policies["shop/api"].rate_limit.max_tokens == 5


def test_two_policies_claiming_one_service_are_settled_by_age_whatever_the_order():
    old = policy("zzz", "web", sections=LIMIT, created="2025-06-01T00:00:00Z")
    new = policy("aaa", "web", sections=DELAY, created="2025-06-02T00:00:00Z")

    for order in ([old, new], [new, old]):
        config = WaypointConfig()
        config.apply(scope.TRAFFIC_POLICY, [resource(p) for p in order], [])

        settings = config.state.traffic_policies["shop/web"]
        assert settings.rate_limit is not None and settings.faults is None


def test_other_kinds_leave_the_policies_in_place():
    config = WaypointConfig()
    config.apply(scope.TRAFFIC_POLICY, [resource(policy("web", "web"))], [])

    config.apply(scope.SERVICE, [], [])

    assert set(config.state.traffic_policies) == {"shop/web"}
