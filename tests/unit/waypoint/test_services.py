"""waypoint.services.Backends: what the proxy keeps per backend Service between requests.

The balancer is resolved once per config snapshot; these tests check that the cache never
outlives what it was built from (a push with other endpoints, a new TrafficPolicy) and that it
keeps the round-robin position when a push changes nothing it depends on.
"""

from __future__ import annotations

import random
from dataclasses import replace

from controller.model import Endpoint, Service, ServicePort
from waypoint.resilience.config import traffic_policy_from_spec
from waypoint.services import Backends
from waypoint.state import WaypointState

PORT = 80
LIMIT = {"rateLimit": {"maxTokens": 5, "fillInterval": "1s"}}


def service(*ips: str) -> Service:
    return Service(
        name="web",
        namespace="shop",
        hostname="web.shop.svc.cluster.local",
        vips=("198.19.0.10",),
        ports=(ServicePort("http", PORT, "http", "TCP", "http"),),
        endpoints=tuple(Endpoint(f"uid-{ip}", ip, ((PORT, 8080),)) for ip in ips),
        waypoint="waypoint",
    )


def state(svc: Service) -> WaypointState:
    return WaypointState.build([svc], [], [], [], "cluster.local")


def backends() -> Backends:
    return Backends(random.Random(1), lambda: 0.0)


def picks(held: Backends, snapshot: WaypointState, svc: Service, n: int) -> list[str]:
    held.resilience(svc, snapshot)
    balancer = held.balancer(snapshot, svc, PORT)
    return [balancer.pick(None).key for _ in range(n)]


def test_endpoints_are_the_snapshots():
    svc = service("198.18.1.1", "198.18.1.2")
    assert sorted(picks(backends(), state(svc), svc, 2)) == ["198.18.1.1:8080", "198.18.1.2:8080"]


def test_one_snapshot_gives_one_balancer():
    held, svc = backends(), service("198.18.1.1")
    snapshot = state(svc)
    held.resilience(svc, snapshot)
    assert held.balancer(snapshot, svc, PORT) is held.balancer(snapshot, svc, PORT)


def test_a_push_with_other_endpoints_is_seen_at_once():
    held, old = backends(), service("198.18.1.1")
    picks(held, state(old), old, 1)
    new = service("198.18.1.9")
    assert picks(held, state(new), new, 3) == ["198.18.1.9:8080"] * 3


def test_a_push_that_keeps_the_endpoints_keeps_the_rotation():
    held, svc = backends(), service("198.18.1.1", "198.18.1.2")
    first = picks(held, state(svc), svc, 1)
    again = picks(held, state(svc), svc, 1)  # a new snapshot, equal endpoints
    assert first != again


def test_a_new_traffic_policy_gets_new_resilience_and_a_balancer_that_reports_to_it():
    held, svc = backends(), service("198.18.1.1")
    plain = state(svc)
    before = held.resilience(svc, plain)
    balancer = held.balancer(plain, svc, PORT)
    limited = replace(
        plain,
        traffic_policies={svc.key: traffic_policy_from_spec({"targetRefs": [], **LIMIT})},
    )
    after = held.resilience(svc, limited)
    assert after is not before
    assert held.balancer(limited, svc, PORT) is not balancer
    assert held.resilience(svc, limited) is after  # an equal policy keeps its state


def guard_for(pool: dict | None):
    svc = service("10.0.0.1")
    spec = {"targetRefs": [], "connectionPool": pool} if pool is not None else None
    policies = {svc.key: traffic_policy_from_spec(spec)} if spec else {}
    return backends().resilience(svc, replace(state(svc), traffic_policies=policies))


def test_no_connection_pool_limits_means_no_circuit_breaker_on_the_request_path():
    assert guard_for(None).gate is None
    assert guard_for({"maxRetries": 3}).gate is None  # the retry budget holds maxRetries


def test_connection_pool_limits_build_the_services_circuit_breaker():
    gate = guard_for({"maxRequests": 2, "maxPendingRequests": 0}).gate

    assert gate is not None
    assert gate.breaker.config.max_requests == 2
    assert gate.breaker.config.max_pending_requests == 0
