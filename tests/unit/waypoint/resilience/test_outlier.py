"""OutlierDetector: consecutive-error ejection, growing ejection times, max-percent cap, timing."""

from __future__ import annotations

import pytest

from waypoint.resilience.config import OutlierConfig
from waypoint.resilience.outcome import Failure, Outcome
from waypoint.resilience.outlier import EjectionReason, OutlierDetector

OK = Outcome.response(200)
E500 = Outcome.response(500)
E503 = Outcome.response(503)
CONNECT = Outcome.failed(Failure.CONNECT_FAILURE)


def detector(clock, endpoints=("a", "b", "c"), **overrides):
    config = OutlierConfig(
        **{"consecutive_5xx": 3, "max_ejection_percent": 100, "interval": 10.0, **overrides}
    )
    outliers = OutlierDetector(config, clock)
    outliers.set_endpoints(endpoints)
    return outliers


def fail(outliers, endpoint, times, outcome=E500):
    return [outliers.record(endpoint, outcome) for _ in range(times)][-1]


def test_consecutive_5xx_eject_for_the_base_time(clock):
    outliers = detector(clock)

    assert fail(outliers, "a", 2) is None
    ejection = fail(outliers, "a", 1)

    assert ejection is not None
    assert (ejection.endpoint, ejection.reason, ejection.times) == (
        "a",
        EjectionReason.CONSECUTIVE_5XX,
        1,
    )
    assert ejection.until == clock.now + 30.0
    assert outliers.is_ejected("a") and not outliers.is_ejected("b")
    clock.advance(29.999)
    assert outliers.is_ejected("a")
    clock.advance(0.001)
    assert not outliers.is_ejected("a")


def test_a_success_resets_the_count(clock):
    outliers = detector(clock)

    fail(outliers, "a", 2)
    outliers.record("a", OK)
    fail(outliers, "a", 2)

    assert not outliers.is_ejected("a")


def test_explicit_now_overrides_the_clock(clock):
    outliers = detector(clock)
    fail(outliers, "a", 3)

    assert outliers.is_ejected("a", now=clock.now + 10)
    assert not outliers.is_ejected("a", now=clock.now + 31)


def test_repeated_ejections_last_longer(clock):
    outliers = detector(clock)
    fail(outliers, "a", 3)
    clock.advance(30)  # back in rotation, and failing again at once

    ejection = fail(outliers, "a", 3)

    assert ejection is not None
    assert ejection.times == 2
    assert ejection.until == clock.now + 60.0


def test_ejection_time_is_capped(clock):
    outliers = detector(clock, base_ejection_time=30.0, max_ejection_time=100.0)

    durations = []
    for _ in range(6):
        ejection = fail(outliers, "a", 3)
        durations.append(ejection.until - clock.now)
        clock.advance(ejection.until - clock.now)

    assert durations == [30.0, 60.0, 90.0, 100.0, 100.0, 100.0]


def test_healthy_intervals_forgive_past_ejections(clock):
    outliers = detector(clock, interval=10.0)
    fail(outliers, "a", 3)
    clock.advance(30)
    fail(outliers, "a", 3)  # times = 2, back at +60
    clock.advance(60 + 25)  # two full healthy intervals

    ejection = fail(outliers, "a", 3)

    assert ejection is not None
    assert ejection.times == 1  # 2, less 2 for the intervals, plus this one


def test_max_ejection_percent_caps_simultaneous_ejections(clock):
    outliers = detector(clock, endpoints="abcd", max_ejection_percent=50)

    assert fail(outliers, "a", 3) is not None  # 25 %
    assert fail(outliers, "b", 3) is not None  # 50 %
    assert fail(outliers, "c", 3) is None  # would be 75 %

    assert outliers.ejected() == {"a", "b"}


def test_one_endpoint_may_always_be_ejected(clock):
    outliers = detector(clock, endpoints="abcdefghij", max_ejection_percent=5)

    assert fail(outliers, "a", 3) is not None
    assert fail(outliers, "b", 3) is None
    assert outliers.ejected() == {"a"}


def test_a_refused_ejection_starts_the_count_again(clock):
    outliers = detector(clock, endpoints="ab", max_ejection_percent=50)
    fail(outliers, "a", 3)
    assert fail(outliers, "b", 3) is None  # refused: a is out
    clock.advance(30)  # a is back

    assert fail(outliers, "b", 2) is None  # the refused run does not count any more
    assert fail(outliers, "b", 1) is not None


def test_consecutive_gateway_errors(clock):
    outliers = detector(clock, consecutive_5xx=0, consecutive_gateway_errors=3)

    fail(outliers, "a", 2, E503)
    outliers.record("a", E500)  # a 5xx that is no gateway error breaks the run
    assert fail(outliers, "a", 2, E503) is None
    ejection = outliers.record("a", Outcome.response(504))

    assert ejection is not None
    assert ejection.reason is EjectionReason.CONSECUTIVE_GATEWAY_ERRORS


def test_connection_failures_count_as_errors(clock):
    outliers = detector(clock, consecutive_5xx=0, consecutive_gateway_errors=2)

    assert fail(outliers, "a", 2, CONNECT) is not None


def test_our_own_overflow_does_not_count(clock):
    outliers = detector(clock)

    fail(outliers, "a", 5, Outcome.failed(Failure.OVERFLOW))

    assert not outliers.is_ejected("a")


def test_results_while_ejected_are_ignored(clock):
    outliers = detector(clock)
    fail(outliers, "a", 3)

    fail(outliers, "a", 2)  # stragglers from before the ejection
    clock.advance(30)

    assert fail(outliers, "a", 2) is None
    assert not outliers.is_ejected("a")


def test_zero_thresholds_never_eject(clock):
    outliers = detector(clock, consecutive_5xx=0, consecutive_gateway_errors=0)

    fail(outliers, "a", 100, CONNECT)

    assert outliers.ejected() == frozenset()


@pytest.mark.parametrize("kept", [True, False])
def test_set_endpoints_keeps_or_forgets_state(clock, kept):
    outliers = detector(clock)
    fail(outliers, "a", 3)

    outliers.set_endpoints(["a", "b"] if kept else ["b", "c"])

    assert outliers.is_ejected("a") is kept
