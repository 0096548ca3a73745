"""Round robin, least request (power of two choices), ejection and the panic fallback."""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass

import pytest

from waypoint.routing import EjectionSet, InFlight, LeastRequest, Pool, RoundRobin


@dataclass(frozen=True)
class Pod:
    """An endpoint as the caller might hold it; opaque to the balancers."""

    uid: str
    address: str


PODS = tuple(Pod(f"uid-{n}", f"198.18.1.{n}") for n in range(4))


def key(pod: Pod) -> str:
    return pod.uid


def pool(pods=PODS, health=None, panic_threshold=0.0) -> Pool[Pod]:
    return Pool(pods, key, health, panic_threshold)


def names(balancer, count: int) -> list[str]:
    return [balancer.pick().uid for _ in range(count)]


def test_round_robin_cycles_in_list_order():
    assert names(RoundRobin(pool()), 9) == [
        "uid-0", "uid-1", "uid-2", "uid-3", "uid-0", "uid-1", "uid-2", "uid-3", "uid-0"
    ]  # fmt: skip


def test_round_robin_start_offset():
    assert names(RoundRobin(pool(), start=2), 3) == ["uid-2", "uid-3", "uid-0"]


def test_round_robin_skips_ejected_endpoints():
    health = EjectionSet()
    health.eject("uid-1")

    assert names(RoundRobin(pool(health=health)), 6) == [
        "uid-0", "uid-2", "uid-3", "uid-0", "uid-2", "uid-3"
    ]  # fmt: skip


def test_ejection_and_restore_take_effect_without_a_rebuild():
    health = EjectionSet()
    balancer = RoundRobin(pool(PODS[:2], health=health))
    health.eject("uid-0")
    assert names(balancer, 2) == ["uid-1", "uid-1"]

    health.restore("uid-0")

    assert set(names(balancer, 2)) == {"uid-0", "uid-1"}


def test_all_ejected_panics_to_every_endpoint():
    health = EjectionSet()
    for pod in PODS:
        health.eject(pod.uid)
    balanced = pool(health=health)

    assert balanced.panicking()
    assert names(RoundRobin(balanced), 4) == ["uid-0", "uid-1", "uid-2", "uid-3"]


def test_panic_threshold_fraction():
    health = EjectionSet()
    for uid in ("uid-0", "uid-1", "uid-2"):
        health.eject(uid)

    assert not pool(health=health, panic_threshold=0.25).panicking()  # 1 of 4 healthy: enough
    assert pool(health=health, panic_threshold=0.5).panicking()  # below half: use all
    assert set(names(RoundRobin(pool(health=health, panic_threshold=0.5)), 4)) == {
        pod.uid for pod in PODS
    }


def test_not_panicking_when_healthy():
    assert not pool().panicking()


@pytest.mark.parametrize(
    "make", [lambda p: RoundRobin(p), lambda p: LeastRequest(p, InFlight(), random.Random(1))]
)
def test_empty_pool_picks_nothing(make):
    assert make(pool(())).pick() is None


def test_least_request_prefers_the_less_loaded_of_two():
    in_flight = InFlight()
    for _ in range(5):
        in_flight.started("uid-0")
    balancer = LeastRequest(pool(PODS[:2]), in_flight, random.Random(3))

    assert names(balancer, 50) == ["uid-1"] * 50


def test_least_request_spreads_load_away_from_busy_endpoints():
    in_flight = InFlight()
    for _ in range(10):
        in_flight.started("uid-0")
    balancer = LeastRequest(pool(), in_flight, random.Random(5))

    counts = Counter(names(balancer, 3000))

    # Every pair holding uid-0 also holds an idle pod, so uid-0 never wins.
    assert counts["uid-0"] == 0
    assert all(counts[f"uid-{n}"] > 800 for n in (1, 2, 3))


def test_least_request_follows_counts_as_requests_start_and_finish():
    in_flight = InFlight()
    balancer = LeastRequest(pool(PODS[:2]), in_flight, random.Random(9))
    picks = []
    for _ in range(6):  # each pick starts a request that never finishes: they must alternate
        pod = balancer.pick()
        in_flight.started(pod.uid)
        picks.append(pod.uid)

    assert Counter(picks) == Counter({"uid-0": 3, "uid-1": 3})
    for uid in ("uid-0", "uid-1"):
        for _ in range(3):
            in_flight.finished(uid)
    assert in_flight.count("uid-0") == in_flight.count("uid-1") == 0


def test_least_request_skips_ejected_endpoints():
    health = EjectionSet()
    health.eject("uid-2")
    balancer = LeastRequest(pool(health=health), InFlight(), random.Random(11))

    assert "uid-2" not in set(names(balancer, 500))


def test_least_request_with_one_endpoint():
    assert names(LeastRequest(pool(PODS[:1]), InFlight(), random.Random(1)), 2) == ["uid-0"] * 2


def test_in_flight_never_goes_negative():
    in_flight = InFlight()
    in_flight.finished("gone")
    in_flight.started("a")
    in_flight.finished("a")
    in_flight.finished("a")

    assert in_flight.count("a") == 0 and in_flight.count("gone") == 0
