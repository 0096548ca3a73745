"""FaultInjector: delay and abort by percentage, drawn independently from a seeded RNG."""

from __future__ import annotations

import math
import random

import pytest

from waypoint.resilience.config import AbortFault, DelayFault, FaultConfig
from waypoint.resilience.fault import NO_FAULT, FaultDecision, FaultInjector

DRAWS = 10_000


def within_binomial(count: int, percentage: float, draws: int = DRAWS) -> bool:
    """count is within 4.5 standard deviations of draws x percentage (exact at 0 and 100)."""
    p = percentage / 100
    sigma = math.sqrt(draws * p * (1 - p))
    return abs(count - draws * p) <= 4.5 * sigma


@pytest.mark.parametrize("percentage", [0, 0.5, 10, 33.3, 50, 99.9, 100])
@pytest.mark.parametrize("seed", [1, 2])
def test_delay_percentage_over_ten_thousand_draws(percentage, seed):
    faults = FaultInjector(
        FaultConfig(delay=DelayFault(percentage, delay=1.5)), random.Random(seed)
    )

    decisions = [faults.decide() for _ in range(DRAWS)]
    delayed = [decision for decision in decisions if decision.delay]

    assert within_binomial(len(delayed), percentage)
    assert all(decision == FaultDecision(delay=1.5) for decision in delayed)


@pytest.mark.parametrize("percentage", [0, 0.1, 25, 100])
def test_abort_percentage_over_ten_thousand_draws(percentage):
    abort = AbortFault(percentage, http_status=503)
    faults = FaultInjector(FaultConfig(abort=abort), random.Random(3))

    aborted = sum(faults.decide().abort is abort for _ in range(DRAWS))

    assert within_binomial(aborted, percentage)


def test_delay_and_abort_are_drawn_independently():
    config = FaultConfig(delay=DelayFault(50, delay=0.2), abort=AbortFault(50, grpc_status=14))
    faults = FaultInjector(config, random.Random(4))

    decisions = [faults.decide() for _ in range(DRAWS)]
    both = sum(bool(d.delay) and d.abort is not None for d in decisions)
    delay_only = sum(bool(d.delay) and d.abort is None for d in decisions)

    assert within_binomial(both, 25)
    assert within_binomial(delay_only, 25)


def test_the_tolerance_check_can_fail():
    assert not within_binomial(1200, 10)
    assert not within_binomial(1, 0)


def test_same_seed_same_decisions():
    config = FaultConfig(delay=DelayFault(30, 1.0), abort=AbortFault(30, http_status=500))

    injectors = [FaultInjector(config, random.Random(9)) for _ in range(2)]

    runs = [[injector.decide() for _ in range(50)] for injector in injectors]

    assert runs[0] == runs[1]
    assert len(set(runs[0])) > 1


def test_no_faults_configured():
    faults = FaultInjector(FaultConfig(), random.Random(5))

    assert {faults.decide() for _ in range(100)} == {NO_FAULT}


@pytest.mark.parametrize(
    ("decision", "flags"),
    [
        (NO_FAULT, ()),
        (FaultDecision(delay=1.0), ("DI",)),
        (FaultDecision(abort=AbortFault(1, http_status=503)), ("FI",)),
        (FaultDecision(delay=1.0, abort=AbortFault(1, http_status=503)), ("DI", "FI")),
    ],
)
def test_response_flags(decision, flags):
    assert decision.response_flags == flags
