"""Outcome: a status or a failure, and the 5xx / gateway-error classes outlier detection counts."""

from __future__ import annotations

import pytest

from waypoint.resilience.outcome import Failure, Outcome


@pytest.mark.parametrize(
    ("outcome", "is_5xx", "is_gateway_error"),
    [
        (Outcome.response(200), False, False),
        (Outcome.response(404), False, False),
        (Outcome.response(500), True, False),
        (Outcome.response(502), True, True),
        (Outcome.response(503), True, True),
        (Outcome.response(504), True, True),
        (Outcome.response(599), True, False),
        (Outcome.response(200, grpc_status=14), False, False),
        (Outcome.failed(Failure.CONNECT_FAILURE), True, True),
        (Outcome.failed(Failure.RESET), True, True),
        (Outcome.failed(Failure.REFUSED_STREAM), True, True),
        (Outcome.failed(Failure.TIMEOUT), True, True),
        (Outcome.failed(Failure.OVERFLOW), False, False),
    ],
)
def test_classes(outcome, is_5xx, is_gateway_error):
    assert outcome.is_5xx is is_5xx
    assert outcome.is_gateway_error is is_gateway_error


@pytest.mark.parametrize("kwargs", [{}, {"status": 200, "failure": Failure.RESET}])
def test_status_xor_failure(kwargs):
    with pytest.raises(ValueError, match="either a status or a failure"):
        Outcome(**kwargs)
