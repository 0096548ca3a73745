"""Circuit breaking: per-Service caps on connections, queued requests and requests in flight.

Theory of operation. Envoy's circuit breakers are not open/closed state machines but counters with
limits, checked when something would start: a failing Service fills its limits with slow requests,
and everything beyond them is refused at once (503, response flag `UO`) instead of queueing until
the client gives up. The shell uses three counters, in Envoy's order:

- a request needs an upstream connection or stream: `try_connection()` when it would open a new
  connection; an `Overflow` there is no error yet, the request waits for a free connection;
- a waiting request holds a `try_pending()` slot until a connection takes it; an `Overflow` here
  (the pending queue is full) is the 503 `UO`;
- a request being sent holds a `try_request()` lease until its response ends; an `Overflow` is a
  503 `UO` too.

Each grant is a `Lease` released exactly once (also as a context manager), so an error path cannot
leak a slot. Limits of None are unlimited, Istio's default.
"""

from __future__ import annotations

import enum

from waypoint.resilience.config import ConnectionPoolConfig
from waypoint.resilience.errors import ResilienceConfigError
from waypoint.resilience.lease import Lease

OVERFLOW_RESPONSE_FLAG = "UO"  # Envoy: upstream overflow (circuit breaking)
OVERFLOW_STATUS = 503


class Overflow(enum.Enum):
    """Which limit refused; the value names the TrafficPolicy field to raise."""

    CONNECTIONS = "maxConnections"
    PENDING = "maxPendingRequests"
    REQUESTS = "maxRequests"

    @property
    def response_flag(self) -> str:
        return OVERFLOW_RESPONSE_FLAG

    @property
    def hint(self) -> str:
        """For logs: what the overflow means and what to change if it is not wanted."""
        return (
            f"circuit breaker overflow: connectionPool.{self.value} reached; raise it in the "
            "Service's TrafficPolicy if the Service can take more"
        )


class _Counter:
    """One limited count."""

    __slots__ = ("active", "limit")

    def __init__(self, limit: int | None) -> None:
        self.limit = limit
        self.active = 0

    def try_acquire(self, overflow: Overflow) -> Lease | Overflow:
        if self.limit is not None and self.active >= self.limit:
            return overflow
        self.active += 1
        return Lease(self._release)

    def _release(self) -> None:
        self.active -= 1


class CircuitBreaker:
    """The connection-pool limits of one Service, shared by every request to it."""

    def __init__(self, config: ConnectionPoolConfig) -> None:
        for name in ("max_connections", "max_requests"):
            limit = getattr(config, name)
            if limit is not None and limit < 1:
                raise ResilienceConfigError(f"{name} must be at least 1 or None, got {limit}")
        if config.max_pending_requests is not None and config.max_pending_requests < 0:
            raise ResilienceConfigError(
                f"max_pending_requests must be >= 0 or None, got {config.max_pending_requests}"
            )
        self.config = config
        self._connections = _Counter(config.max_connections)
        self._pending = _Counter(config.max_pending_requests)
        self._requests = _Counter(config.max_requests)

    def try_connection(self) -> Lease | Overflow:
        """A slot for one new upstream connection, held until it closes."""
        return self._connections.try_acquire(Overflow.CONNECTIONS)

    def try_pending(self) -> Lease | Overflow:
        """A place in the queue of requests waiting for a connection."""
        return self._pending.try_acquire(Overflow.PENDING)

    def try_request(self) -> Lease | Overflow:
        """A slot for one request in flight upstream, held until its response ends."""
        return self._requests.try_acquire(Overflow.REQUESTS)

    @property
    def active_connections(self) -> int:
        return self._connections.active

    @property
    def pending_requests(self) -> int:
        return self._pending.active

    @property
    def active_requests(self) -> int:
        return self._requests.active
