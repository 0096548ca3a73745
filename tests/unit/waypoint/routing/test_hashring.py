"""Consistent hashing on a header: affinity, balance, and how few keys move on endpoint changes."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from tests.unit.waypoint.routing.helpers import request
from waypoint.routing import ConsistentHash, EjectionSet, Pool
from waypoint.routing.hashring import ring_hash

ENDPOINTS = tuple(f"198.18.2.{n}:8080" for n in range(10))
KEYS = tuple(f"user-{n}" for n in range(5000))


def ring(endpoints=ENDPOINTS, health=None, seed=1) -> ConsistentHash[str]:
    return ConsistentHash(Pool(endpoints, str, health), "x-user", random.Random(seed))


def assignment(balancer: ConsistentHash[str]) -> dict[str, str]:
    return {key: balancer.pick_for(key) for key in KEYS}


def test_same_header_value_same_endpoint():
    balancer = ring()
    head = request(headers=(("x-user", "alice"),))

    assert len({balancer.pick(head) for _ in range(20)}) == 1


def test_two_rings_over_the_same_endpoints_agree():
    # Separate processes and replicas must agree, so nothing may depend on per-process hashing.
    assert assignment(ring(seed=1)) == assignment(ring(seed=2))


def test_ring_hash_is_pinned():
    # Changing the hash reshuffles every key's endpoint during a rolling upgrade: do it on purpose.
    assert ring_hash("alice") == 0x4DEAEC0CCE54DA89


def test_keys_spread_over_every_endpoint():
    counts = Counter(assignment(ring()).values())

    assert set(counts) == set(ENDPOINTS)
    assert max(counts.values()) < 2 * len(KEYS) / len(ENDPOINTS)


def test_adding_an_endpoint_moves_about_one_nth_of_the_keys_all_to_it():
    before = assignment(ring())
    after = assignment(ring((*ENDPOINTS, "198.18.2.99:8080")))

    moved = [key for key in KEYS if before[key] != after[key]]

    assert len(moved) / len(KEYS) <= 1.5 / (len(ENDPOINTS) + 1)
    assert {after[key] for key in moved} == {"198.18.2.99:8080"}


def test_removing_an_endpoint_moves_only_its_keys():
    before = assignment(ring())
    gone = ENDPOINTS[3]
    after = assignment(ring(tuple(e for e in ENDPOINTS if e != gone)))

    moved = {key for key in KEYS if before[key] != after[key]}

    assert moved == {key for key in KEYS if before[key] == gone}
    assert len(moved) / len(KEYS) <= 1.5 / len(ENDPOINTS)


def test_ejection_moves_only_the_ejected_endpoints_keys_and_restore_brings_them_back():
    health = EjectionSet()
    balancer = ring(health=health)
    before = assignment(balancer)

    health.eject(ENDPOINTS[5])
    during = assignment(balancer)
    health.restore(ENDPOINTS[5])

    assert {k for k in KEYS if before[k] != during[k]} == {
        k for k in KEYS if before[k] == ENDPOINTS[5]
    }
    assert ENDPOINTS[5] not in during.values()
    assert assignment(balancer) == before


def test_all_ejected_panics_and_hashes_over_everything():
    health = EjectionSet()
    for endpoint in ENDPOINTS:
        health.eject(endpoint)

    assert assignment(ring(health=health)) == assignment(ring())


def test_missing_header_gets_a_random_endpoint():
    balancer = ring()

    picks = Counter(balancer.pick(request()) for _ in range(1000))

    assert len(picks) == len(ENDPOINTS)


def test_no_endpoints_no_pick():
    assert ring(()).pick_for("alice") is None


def test_header_name_is_case_insensitive():
    balancer = ConsistentHash(Pool(ENDPOINTS, str), "X-User", random.Random(1))

    assert balancer.pick(request(headers=(("x-user", "bob"),))) == balancer.pick_for("bob")


def test_replicas_must_be_positive():
    with pytest.raises(ValueError, match="replicas"):
        ConsistentHash(Pool(ENDPOINTS, str), "x-user", random.Random(1), replicas=0)
