"""CircuitBreaker: counters with limits; overflow is refused with flag UO, releases free slots."""

from __future__ import annotations

import pytest

from waypoint.resilience.circuit import CircuitBreaker, Overflow
from waypoint.resilience.config import ConnectionPoolConfig
from waypoint.resilience.errors import ResilienceConfigError
from waypoint.resilience.lease import Lease


def test_requests_overflow_at_the_limit_and_release_frees_a_slot():
    breaker = CircuitBreaker(ConnectionPoolConfig(max_requests=2))
    first, second = breaker.try_request(), breaker.try_request()

    third = breaker.try_request()

    assert isinstance(first, Lease) and isinstance(second, Lease)
    assert third is Overflow.REQUESTS
    assert third.response_flag == "UO"
    assert breaker.active_requests == 2
    first.release()
    assert breaker.active_requests == 1
    assert isinstance(breaker.try_request(), Lease)


def test_double_release_does_not_free_two_slots():
    breaker = CircuitBreaker(ConnectionPoolConfig(max_requests=1))
    lease = breaker.try_request()
    assert isinstance(lease, Lease)

    lease.release()
    lease.release()

    assert breaker.active_requests == 0
    assert isinstance(breaker.try_request(), Lease)
    assert breaker.try_request() is Overflow.REQUESTS


def test_lease_as_context_manager_releases_on_error():
    breaker = CircuitBreaker(ConnectionPoolConfig(max_connections=1))

    with pytest.raises(ConnectionError):
        lease = breaker.try_connection()
        assert isinstance(lease, Lease)
        with lease:
            assert breaker.try_connection() is Overflow.CONNECTIONS
            raise ConnectionError("upstream went away")

    assert breaker.active_connections == 0


def test_pending_queue_limit():
    breaker = CircuitBreaker(ConnectionPoolConfig(max_connections=1, max_pending_requests=2))
    assert isinstance(breaker.try_connection(), Lease)
    assert breaker.try_connection() is Overflow.CONNECTIONS  # the request must wait...

    queued = [breaker.try_pending(), breaker.try_pending()]
    overflow = breaker.try_pending()  # ...and the queue is full

    assert all(isinstance(slot, Lease) for slot in queued)
    assert overflow is Overflow.PENDING
    assert breaker.pending_requests == 2


def test_zero_pending_refuses_every_wait():
    breaker = CircuitBreaker(ConnectionPoolConfig(max_pending_requests=0))

    assert breaker.try_pending() is Overflow.PENDING


def test_counters_are_independent():
    breaker = CircuitBreaker(ConnectionPoolConfig(max_connections=1, max_requests=1))

    connection, request = breaker.try_connection(), breaker.try_request()

    assert isinstance(connection, Lease) and isinstance(request, Lease)
    assert breaker.try_pending() is not Overflow.PENDING  # unlimited


def test_unlimited_by_default():
    breaker = CircuitBreaker(ConnectionPoolConfig())

    leases = [breaker.try_request() for _ in range(10_000)]

    assert all(isinstance(lease, Lease) for lease in leases)
    assert breaker.active_requests == 10_000


def test_overflow_hint_names_the_field_to_raise():
    assert "connectionPool.maxPendingRequests" in Overflow.PENDING.hint


@pytest.mark.parametrize(
    "config",
    [
        ConnectionPoolConfig(max_connections=0),
        ConnectionPoolConfig(max_requests=0),
        ConnectionPoolConfig(max_pending_requests=-1),
    ],
)
def test_impossible_limits_are_refused(config):
    with pytest.raises(ResilienceConfigError):
        CircuitBreaker(config)
