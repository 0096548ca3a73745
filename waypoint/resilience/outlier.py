"""Outlier detection: take an endpoint that keeps failing out of load balancing for a while.

Theory of operation (Envoy's consecutive-error detection, Istio's OutlierDetection fields). Every
attempt's `Outcome` is recorded against the endpoint that served it. Two counters per endpoint
count consecutive failures: any 5xx, and gateway errors (502, 503, 504); a failure to get any
response counts as both, as Envoy counts locally originated errors when it does not split them,
and a response that is not a 5xx resets both. When a counter reaches its threshold the endpoint
is ejected until `now + baseEjectionTime x n`, where n counts its ejections, so an endpoint that
keeps coming back broken stays out longer (at most `max_ejection_time`, Envoy's 300 s); n drops
by one for every `interval` the endpoint spent back in rotation, so an old ejection is forgiven.

Ejection is refused when it would put more than `maxEjectionPercent` of the known endpoints out at
once, except that one endpoint may always be ejected (Envoy's rule); either way the counter starts
again from zero. Un-ejection needs no timer: an endpoint is ejected exactly while
`now < ejected_until`, checked when the load balancer asks `is_ejected`. Results that arrive
while an endpoint is ejected (requests that were already in flight) are not counted.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Hashable, Iterable
from dataclasses import dataclass
from typing import Generic, TypeVar

from waypoint.resilience.clock import Clock
from waypoint.resilience.config import OutlierConfig
from waypoint.resilience.outcome import Failure, Outcome

K = TypeVar("K", bound=Hashable)


class EjectionReason(enum.Enum):
    CONSECUTIVE_5XX = "consecutive5xxErrors"
    CONSECUTIVE_GATEWAY_ERRORS = "consecutiveGatewayErrors"


@dataclass(frozen=True)
class Ejection(Generic[K]):
    """An ejection that just happened, for logs and metrics."""

    endpoint: K
    reason: EjectionReason
    until: float  # clock time at which the endpoint is back in rotation
    times: int  # the ejection multiplier used (1 for a first ejection)


@dataclass
class _EndpointState:
    consecutive_5xx: int = 0
    consecutive_gateway: int = 0
    times_ejected: int = 0
    ejected_until: float | None = None  # kept after it passes: decay counts from it


class OutlierDetector(Generic[K]):
    """Consecutive-error ejection over the endpoints of one Service."""

    def __init__(self, config: OutlierConfig, clock: Clock = time.monotonic) -> None:
        self.config = config
        self._clock = clock
        self._endpoints: dict[K, _EndpointState] = {}

    def set_endpoints(self, endpoints: Iterable[K]) -> None:
        """The Service's current endpoints: new ones start clean, removed ones are forgotten."""
        current = set(endpoints)
        self._endpoints = {key: self._endpoints.get(key) or _EndpointState() for key in current}

    def record(self, endpoint: K, outcome: Outcome, now: float | None = None) -> Ejection[K] | None:
        """Count one attempt's outcome; returns the ejection it caused, if any."""
        now = self._clock() if now is None else now
        state = self._endpoints.setdefault(endpoint, _EndpointState())
        if outcome.failure is Failure.OVERFLOW or self._ejected(state, now):
            return None  # our own breaker refused, or a straggler from before the ejection
        if not outcome.is_5xx:
            state.consecutive_5xx = state.consecutive_gateway = 0
            return None
        state.consecutive_5xx += 1
        state.consecutive_gateway = state.consecutive_gateway + 1 if outcome.is_gateway_error else 0
        reason = self._tripped(state)
        if reason is None:
            return None
        state.consecutive_5xx = state.consecutive_gateway = 0
        if not self._may_eject(now):
            return None
        return self._eject(endpoint, state, reason, now)

    def is_ejected(self, endpoint: K, now: float | None = None) -> bool:
        state = self._endpoints.get(endpoint)
        return state is not None and self._ejected(state, self._clock() if now is None else now)

    def ejected(self, now: float | None = None) -> frozenset[K]:
        """Every endpoint out of rotation at `now`."""
        now = self._clock() if now is None else now
        return frozenset(key for key, state in self._endpoints.items() if self._ejected(state, now))

    @staticmethod
    def _ejected(state: _EndpointState, now: float) -> bool:
        return state.ejected_until is not None and now < state.ejected_until

    def _tripped(self, state: _EndpointState) -> EjectionReason | None:
        gateway_limit = self.config.consecutive_gateway_errors
        if gateway_limit and state.consecutive_gateway >= gateway_limit:
            return EjectionReason.CONSECUTIVE_GATEWAY_ERRORS
        limit = self.config.consecutive_5xx
        if limit and state.consecutive_5xx >= limit:
            return EjectionReason.CONSECUTIVE_5XX
        return None

    def _may_eject(self, now: float) -> bool:
        """Within maxEjectionPercent after one more ejection, or nothing is ejected yet."""
        ejected = sum(1 for state in self._endpoints.values() if self._ejected(state, now))
        if ejected == 0:
            return True
        share = 100 * (ejected + 1) / len(self._endpoints)
        return share <= self.config.max_ejection_percent

    def _eject(
        self, endpoint: K, state: _EndpointState, reason: EjectionReason, now: float
    ) -> Ejection[K]:
        state.times_ejected = self._decayed_times(state, now) + 1
        base = self.config.base_ejection_time
        duration = min(base * state.times_ejected, max(self.config.max_ejection_time, base))
        state.ejected_until = now + duration
        return Ejection(endpoint, reason, state.ejected_until, state.times_ejected)

    def _decayed_times(self, state: _EndpointState, now: float) -> int:
        """Past ejections, less one per full `interval` spent back in rotation since the last."""
        if state.ejected_until is None or self.config.interval <= 0:
            return state.times_ejected
        healthy_intervals = int((now - state.ejected_until) // self.config.interval)
        return max(0, state.times_ejected - healthy_intervals)
