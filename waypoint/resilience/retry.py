"""Retries: is an attempt's outcome worth another try, how long to wait, can the Service afford it.

Theory of operation. `RetryPolicy` answers two per-request questions from a `RetryConfig`:
`should_retry(attempt, outcome)` applies Envoy's retry-on conditions and the attempt limit, and
`backoff(attempt)` draws the wait before the next try. `RetryBudget` answers the per-Service one:
retries add load exactly when a Service is failing, so concurrent retries are capped at a share of
concurrent requests (Envoy's retry budget, Linkerd's idea), never below a small floor so a quiet
Service can still retry, and optionally at an absolute `maxRetries` (Istio's circuit-breaker
setting). Both are sans-I/O: the shell waits the back-off and sends the next attempt.

Attempts are numbered from 1 (the original request); after attempt n fails, the retry about to be
made is retry n, so `should_retry(n, outcome)` and `backoff(n)` take the same number.
"""

from __future__ import annotations

import enum
import random

from waypoint.resilience.config import Backoff, RetryBudgetConfig, RetryConfig, RetryOn
from waypoint.resilience.errors import ResilienceConfigError
from waypoint.resilience.lease import Lease
from waypoint.resilience.outcome import Failure, Outcome

# gRPC status codes the gRPC retry-on conditions name (grpc/status.proto).
GRPC_CONDITIONS = {
    1: RetryOn.CANCELLED,
    4: RetryOn.DEADLINE_EXCEEDED,
    8: RetryOn.RESOURCE_EXHAUSTED,
    13: RetryOn.INTERNAL,
    14: RetryOn.UNAVAILABLE,
}
# Conditions under which any failure without a response is retried (Envoy counts a reset as a 5xx).
_ANY_FAILURE = frozenset({RetryOn.FIVE_XX, RetryOn.GATEWAY_ERROR, RetryOn.RESET})
# Conditions that retry one particular failure only.
_FAILURE_CONDITIONS = {
    Failure.CONNECT_FAILURE: RetryOn.CONNECT_FAILURE,
    Failure.REFUSED_STREAM: RetryOn.REFUSED_STREAM,
}


def full_jitter(retry: int, backoff: Backoff, rng: random.Random) -> float:
    """Seconds to wait before retry number `retry` (1-based): uniform in [floor, ceiling).

    The ceiling doubles per retry from `backoff.base` up to `backoff.cap`, as Envoy's
    JitteredExponentialBackOffStrategy does; drawing from the whole range ("full jitter") spreads
    the retries of many clients that failed together, so they do not return together.
    """
    if retry < 1:
        raise ValueError(f"retries are numbered from 1, got {retry}")
    ceiling = min(backoff.cap, backoff.base * 2 ** min(retry - 1, 62))
    floor = min(backoff.floor, ceiling)
    return floor + rng.random() * (ceiling - floor)


class RetryPolicy:
    """One request's retry decisions under a RetryConfig; the RNG only draws back-offs."""

    def __init__(self, config: RetryConfig, rng: random.Random | None = None) -> None:
        self.config = config
        self._rng = rng if rng is not None else random.Random()

    @property
    def per_try_timeout(self) -> float | None:
        return self.config.per_try_timeout

    def should_retry(self, attempt: int, outcome: Outcome) -> bool:
        """Retry after attempt number `attempt` (1 = the original) ended with `outcome`?"""
        return attempt <= self.config.attempts and self.retriable(outcome)

    def exhausted(self, attempt: int, outcome: Outcome) -> bool:
        """Did attempt `attempt` end retriably with no retry left (Envoy's flag `URX`)?

        Envoy sets URX whenever a retry condition matched but `num_retries` were used up, both
        when the last attempt got no response and when its retriable status (a 503, say) is
        passed through. With retries off (`attempts: 0`) nothing was exhausted."""
        attempts = self.config.attempts
        return 0 < attempts < attempt and self.retriable(outcome)

    def retriable(self, outcome: Outcome) -> bool:
        """Does any configured condition match `outcome`, whatever the attempt count?"""
        if outcome.failure is not None:
            return self._failure_retriable(outcome.failure)
        assert outcome.status is not None  # an Outcome has a status or a failure
        return self._status_retriable(outcome.status) or self._grpc_retriable(outcome.grpc_status)

    def backoff(self, retry: int) -> float:
        """Seconds to wait before retry number `retry` (see `full_jitter`)."""
        return full_jitter(retry, self.config.backoff, self._rng)

    def _failure_retriable(self, failure: Failure) -> bool:
        if failure is Failure.OVERFLOW:
            return False  # our own circuit breaker said no: retrying would only add load
        on = self.config.retry_on
        return bool(on & _ANY_FAILURE) or _FAILURE_CONDITIONS.get(failure) in on

    def _status_retriable(self, status: int) -> bool:
        on = self.config.retry_on
        return (
            (RetryOn.FIVE_XX in on and 500 <= status <= 599)
            or (RetryOn.GATEWAY_ERROR in on and status in (502, 503, 504))
            or (RetryOn.RETRIABLE_4XX in on and status == 409)
            or (
                RetryOn.RETRIABLE_STATUS_CODES in on
                and status in self.config.retriable_status_codes
            )
        )

    def _grpc_retriable(self, grpc_status: int | None) -> bool:
        condition = GRPC_CONDITIONS.get(grpc_status) if grpc_status is not None else None
        return condition is not None and condition in self.config.retry_on


class RetryDenied(enum.Enum):
    """Why `RetryBudget.try_retry` refused (Envoy counts both as upstream_rq_retry_overflow)."""

    BUDGET = "budget"
    MAX_RETRIES = "max_retries"


class RetryBudget:
    """Active requests and active retries to one Service, and the retry limit they imply.

    A retry may start while active retries < max(min_concurrency, percent% of active requests)
    and, when `max_retries` is set, active retries < max_retries. Count each request to the
    Service for its whole life (`start_request`), and each retry from the decision to retry until
    that attempt ends (`try_retry`), so a back-off in progress counts against the budget.
    """

    def __init__(self, config: RetryBudgetConfig, max_retries: int | None = None) -> None:
        if not 0 <= config.percent <= 100 or config.min_concurrency < 0:
            raise ResilienceConfigError(
                f"retry budget needs percent in [0, 100] and min_concurrency >= 0, got {config}"
            )
        if max_retries is not None and max_retries < 0:
            raise ResilienceConfigError(f"max_retries must be >= 0 or None, got {max_retries}")
        self.config = config
        self.max_retries = max_retries
        self.active_requests = 0
        self.active_retries = 0

    def limit(self) -> int:
        """How many retries may be active right now."""
        share = int(self.active_requests * self.config.percent / 100)
        budget = max(self.config.min_concurrency, share)
        return budget if self.max_retries is None else min(budget, self.max_retries)

    def start_request(self) -> Lease:
        self.active_requests += 1
        return Lease(self._end_request)

    def try_retry(self) -> Lease | RetryDenied:
        """A lease for one retry, or why there is none (then answer with the last outcome)."""
        if self.max_retries is not None and self.active_retries >= self.max_retries:
            return RetryDenied.MAX_RETRIES
        if self.active_retries >= self.limit():
            return RetryDenied.BUDGET
        self.active_retries += 1
        return Lease(self._end_retry)

    def _end_request(self) -> None:
        self.active_requests -= 1

    def _end_retry(self) -> None:
        self.active_retries -= 1
