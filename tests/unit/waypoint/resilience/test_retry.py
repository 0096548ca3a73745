"""RetryPolicy (Envoy's retry-on conditions, attempt limit, jittered back-off) and RetryBudget."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from waypoint.resilience.config import Backoff, RetryBudgetConfig, RetryConfig, RetryOn
from waypoint.resilience.errors import ResilienceConfigError
from waypoint.resilience.lease import Lease
from waypoint.resilience.outcome import Failure, Outcome
from waypoint.resilience.retry import RetryBudget, RetryDenied, RetryPolicy, full_jitter


def policy(*conditions: str, codes: tuple[int, ...] = (), attempts: int = 2) -> RetryPolicy:
    config = RetryConfig(
        attempts=attempts,
        retry_on=frozenset(RetryOn(condition) for condition in conditions),
        retriable_status_codes=frozenset(codes),
    )
    return RetryPolicy(config, random.Random(7))


def status(code: int, grpc: int | None = None) -> Outcome:
    return Outcome.response(code, grpc)


CONNECT = Outcome.failed(Failure.CONNECT_FAILURE)
RESET = Outcome.failed(Failure.RESET)
REFUSED = Outcome.failed(Failure.REFUSED_STREAM)
TIMEOUT = Outcome.failed(Failure.TIMEOUT)
OVERFLOW = Outcome.failed(Failure.OVERFLOW)

# (conditions, outcome, retried?) — Envoy's router semantics, row by row.
MATRIX = [
    (("5xx",), status(500), True),
    (("5xx",), status(503), True),
    (("5xx",), status(599), True),
    (("5xx",), status(499), False),
    (("5xx",), status(200), False),
    (("5xx",), RESET, True),
    (("5xx",), CONNECT, True),
    (("5xx",), REFUSED, True),
    (("5xx",), TIMEOUT, True),
    (("5xx",), OVERFLOW, False),
    (("gateway-error",), status(502), True),
    (("gateway-error",), status(503), True),
    (("gateway-error",), status(504), True),
    (("gateway-error",), status(500), False),
    (("gateway-error",), status(501), False),
    (("gateway-error",), RESET, True),
    (("gateway-error",), TIMEOUT, True),
    (("reset",), RESET, True),
    (("reset",), CONNECT, True),
    (("reset",), REFUSED, True),
    (("reset",), TIMEOUT, True),
    (("reset",), OVERFLOW, False),
    (("reset",), status(503), False),
    (("connect-failure",), CONNECT, True),
    (("connect-failure",), RESET, False),
    (("connect-failure",), TIMEOUT, False),
    (("connect-failure",), status(503), False),
    (("refused-stream",), REFUSED, True),
    (("refused-stream",), RESET, False),
    (("refused-stream",), status(503), False),
    (("retriable-4xx",), status(409), True),
    (("retriable-4xx",), status(429), False),
    (("retriable-4xx",), status(500), False),
    (("cancelled",), status(200, grpc=1), True),
    (("deadline-exceeded",), status(200, grpc=4), True),
    (("resource-exhausted",), status(200, grpc=8), True),
    (("internal",), status(200, grpc=13), True),
    (("unavailable",), status(200, grpc=14), True),
    (("unavailable",), status(200, grpc=13), False),
    (("unavailable",), status(200), False),
    (("unavailable",), status(503), False),
    (("unavailable",), RESET, False),
    (("5xx",), status(200, grpc=14), False),
    (("retriable-status-codes",), status(503), False),  # no codes listed
    ((), status(503), False),
    ((), RESET, False),
    (("connect-failure", "unavailable"), status(200, grpc=14), True),
    (("connect-failure", "unavailable"), CONNECT, True),
]


@pytest.mark.parametrize(("conditions", "outcome", "retried"), MATRIX)
def test_retry_on_matrix(conditions, outcome, retried):
    assert policy(*conditions).should_retry(1, outcome) is retried


@pytest.mark.parametrize(("code", "retried"), [(503, True), (429, True), (500, False)])
def test_retriable_status_codes(code, retried):
    retry = policy("retriable-status-codes", codes=(503, 429))

    assert retry.should_retry(1, status(code)) is retried


def test_status_codes_need_their_condition():
    assert not policy("connect-failure", codes=(503,)).should_retry(1, status(503))


def test_attempts_count_retries_after_the_original():
    retry = policy("5xx", attempts=2)

    assert [retry.should_retry(n, status(503)) for n in (1, 2, 3, 4)] == [True, True, False, False]


def test_zero_attempts_never_retries():
    assert not policy("5xx", "reset", attempts=0).should_retry(1, RESET)


@pytest.mark.parametrize(
    ("outcome", "exhausted"),
    [
        (status(503), True),  # Envoy: a retriable status passed through after the last retry
        (CONNECT, True),  # and no response at all
        (Outcome.failed(Failure.TIMEOUT), False),  # per-try timeout: not under these conditions
        (status(500), False),  # not retriable here, so no retry was ever owed
        (status(200), False),
    ],
)
def test_exhausted_when_the_last_attempt_was_retriable(outcome, exhausted):
    retry = policy("connect-failure", "retriable-status-codes", codes=(503,), attempts=2)

    assert retry.exhausted(3, outcome) is exhausted


def test_not_exhausted_while_retries_remain():
    retry = policy("5xx", attempts=2)

    assert [retry.exhausted(n, status(503)) for n in (1, 2, 3)] == [False, False, True]


def test_nothing_is_exhausted_with_retries_off():
    assert not policy("5xx", attempts=0).exhausted(1, status(503))


def test_overflow_is_never_exhausted_retries():
    assert not policy("5xx", "reset", attempts=1).exhausted(2, Outcome.failed(Failure.OVERFLOW))


def test_istio_default_conditions():
    retry = RetryPolicy(RetryConfig())

    assert retry.should_retry(1, status(503))
    assert retry.should_retry(1, CONNECT)
    assert retry.should_retry(1, status(200, grpc=14))
    assert not retry.should_retry(1, status(500))
    assert not retry.should_retry(1, RESET)
    assert not retry.should_retry(3, status(503))


@given(
    retry=st.integers(min_value=1, max_value=80),
    seed=st.integers(min_value=0, max_value=2**32),
    base=st.sampled_from([0.001, 0.025, 0.1, 1.0]),
    factor=st.sampled_from([1, 3, 10]),
    floored=st.booleans(),
)
def test_backoff_stays_between_floor_and_capped_ceiling(retry, seed, base, factor, floored):
    backoff = Backoff(base=base, cap=base * factor, floor=base if floored else 0.0)
    ceiling = min(backoff.cap, base * 2 ** (retry - 1))

    wait = full_jitter(retry, backoff, random.Random(seed))

    assert backoff.floor <= wait <= ceiling
    assert wait < ceiling or backoff.floor == ceiling


def test_backoff_is_fully_jittered_over_a_doubling_range():
    rng = random.Random(1)
    backoff = Backoff(base=0.025, cap=0.25)

    third = [full_jitter(3, backoff, rng) for _ in range(2000)]  # ceiling 0.1
    tenth = [full_jitter(10, backoff, rng) for _ in range(2000)]  # capped at 0.25

    assert min(third) < 0.005 and 0.095 < max(third) < 0.1
    assert 0.24 < max(tenth) < 0.25


def test_route_backoff_never_waits_less_than_the_minimum():
    rng = random.Random(2)
    backoff = Backoff(base=0.1, cap=1.0, floor=0.1)

    waits = [full_jitter(1, backoff, rng) for _ in range(100)]

    assert waits == [0.1] * 100  # the first ceiling equals the floor
    assert min(full_jitter(3, backoff, rng) for _ in range(1000)) >= 0.1


def test_policy_backoff_uses_its_rng():
    config = RetryConfig(backoff=Backoff(base=1.0, cap=10.0))
    first = RetryPolicy(config, random.Random(5))
    second = RetryPolicy(config, random.Random(5))

    assert [first.backoff(n) for n in (1, 2, 3)] == [second.backoff(n) for n in (1, 2, 3)]


def test_retries_are_numbered_from_one():
    with pytest.raises(ValueError, match="numbered from 1"):
        full_jitter(0, Backoff(), random.Random())


# ---- RetryBudget ------------------------------------------------------------------------------


def test_budget_allows_min_concurrency_when_idle():
    budget = RetryBudget(RetryBudgetConfig(percent=20, min_concurrency=3))

    grants = [budget.try_retry() for _ in range(4)]

    assert all(isinstance(grant, Lease) for grant in grants[:3])
    assert grants[3] is RetryDenied.BUDGET
    assert budget.active_retries == 3


def test_budget_scales_with_active_requests():
    budget = RetryBudget(RetryBudgetConfig(percent=20, min_concurrency=3))
    requests = [budget.start_request() for _ in range(100)]

    grants = [budget.try_retry() for _ in range(21)]

    assert budget.limit() == 20
    assert sum(isinstance(grant, Lease) for grant in grants) == 20
    assert grants[-1] is RetryDenied.BUDGET
    for lease in requests[:50]:
        lease.release()
    assert budget.limit() == 10
    assert budget.try_retry() is RetryDenied.BUDGET


def test_released_retry_frees_budget():
    budget = RetryBudget(RetryBudgetConfig(percent=0, min_concurrency=1))
    first = budget.try_retry()
    assert budget.try_retry() is RetryDenied.BUDGET

    assert isinstance(first, Lease)
    first.release()

    assert isinstance(budget.try_retry(), Lease)


def test_max_retries_caps_the_budget():
    budget = RetryBudget(RetryBudgetConfig(percent=100, min_concurrency=3), max_retries=2)
    for _ in range(10):
        budget.start_request()

    grants = [budget.try_retry() for _ in range(3)]

    assert grants[2] is RetryDenied.MAX_RETRIES
    assert budget.limit() == 2


@pytest.mark.parametrize(
    ("config", "max_retries"),
    [
        (RetryBudgetConfig(percent=101), None),
        (RetryBudgetConfig(min_concurrency=-1), None),
        (RetryBudgetConfig(), -1),
    ],
)
def test_budget_refuses_impossible_limits(config, max_retries):
    with pytest.raises(ResilienceConfigError):
        RetryBudget(config, max_retries)
