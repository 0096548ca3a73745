"""Weighted backendRefs: the split, zero weights, and Gateway API's 500s for nowhere to go."""

from __future__ import annotations

import random
from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.unit.waypoint.routing.helpers import backend, request, route, table
from waypoint.routing import Forward, Reply, ReplyReason
from waypoint.routing.backends import Backend, WeightedBackends
from waypoint.routing.sources import BackendTarget


def outcomes(*refs, draws=10_000, seed=1):
    """How often each Service (or each reply reason) comes out of `draws` requests."""
    routes = table(route("r", {"backendRefs": list(refs)}))
    head = request()
    found = routes.match(head)
    rng = random.Random(seed)
    counts: Counter[str] = Counter()
    for _ in range(draws):
        outcome = found.decide(head, rng)
        counts[outcome.target.name if isinstance(outcome, Forward) else outcome.reason.value] += 1
    return counts


def test_ninety_ten_split():
    counts = outcomes(backend("v1", 90), backend("v2", 10))

    assert counts["v1"] + counts["v2"] == 10_000
    assert counts["v2"] / 10_000 == pytest.approx(0.10, abs=0.015)


def test_three_way_split():
    counts = outcomes(backend("v1", 1), backend("v2", 2), backend("v3", 7))

    for name, share in [("v1", 0.1), ("v2", 0.2), ("v3", 0.7)]:
        assert counts[name] / 10_000 == pytest.approx(share, abs=0.02)


def test_zero_weight_is_never_chosen():
    counts = outcomes(backend("v1", 0), backend("v2", 1), backend("v3", 0))

    assert counts == Counter({"v2": 10_000})


def test_all_zero_weights_answer_500():
    counts = outcomes(backend("v1", 0), backend("v2", 0), draws=10)

    assert counts == Counter({"no_backend": 10})


def test_no_backend_refs_answers_500():
    routes = table(route("r", {"matches": [{"path": {"type": "Exact", "value": "/x"}}]}))
    outcome = routes.match(request("/x")).decide(request("/x"), random.Random(1))

    assert isinstance(outcome, Reply)
    assert outcome.response.status == 500 and outcome.reason is ReplyReason.NO_BACKEND
    assert "rule 0 of HTTPRoute shop/r" in outcome.detail


def test_invalid_backend_gets_its_share_of_500s():
    counts = outcomes(backend("v1", 1), backend("ghost", 1))

    assert counts["v1"] + counts["invalid_backend"] == 10_000
    assert counts["invalid_backend"] / 10_000 == pytest.approx(0.5, abs=0.02)


@pytest.mark.parametrize(
    ("ref", "detail"),
    [
        (backend("ghost"), "backendRef Service shop/ghost does not exist"),
        ({"name": "v1", "port": 9999}, "backendRef Service shop/v1 has no port 9999"),
        (
            {"group": "x.io", "kind": "Bucket", "name": "b"},
            "backendRef kind x.io/Bucket is not supported (Service)",
        ),
        (backend("api", namespace="other"), "backendRef Service other/api has no port 8080"),
    ],
)
def test_invalid_backend_reply_says_why(ref, detail):
    routes = table(route("r", {"backendRefs": [ref]}))
    outcome = routes.match(request()).decide(request(), random.Random(1))

    assert isinstance(outcome, Reply) and outcome.response.status == 500
    assert outcome.reason is ReplyReason.INVALID_BACKEND and outcome.detail == detail


def test_backend_in_another_namespace_needs_no_reference_grant():
    ref = {"name": "api", "namespace": "other", "port": 80}
    outcome = (
        table(route("r", {"backendRefs": [ref]}))
        .match(request())
        .decide(request(), random.Random(1))
    )

    assert isinstance(outcome, Forward) and str(outcome.target) == "other/api:80"


@given(
    weights=st.lists(st.integers(min_value=0, max_value=5), min_size=1, max_size=6),
    seed=st.integers(min_value=0, max_value=2**32),
)
def test_pick_never_returns_a_zero_weight(weights, seed):
    backends = WeightedBackends(
        tuple(Backend(BackendTarget("ns", f"s{i}", 80), w) for i, w in enumerate(weights))
    )
    rng = random.Random(seed)

    picks = [backends.pick(rng) for _ in range(20)]

    if sum(weights) == 0:
        assert picks == [None] * 20
    else:
        assert all(pick is not None and pick.weight > 0 for pick in picks)
